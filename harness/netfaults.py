"""Network faults made by the kernel: a data center in a network namespace of its own, where
iptables drops or resets the traffic of one port, and heals on demand.

    with DataCenterNamespace() as ns:            # `ip netns add`, its loopback up
        agent = ns.place(AgentProcess(tmp_path / "host1"))   # started inside, port reachable
        engine = ns.place(EngineProcess(tmp_path / "engine"))
        agent.start(); engine.start()
        cut = ns.partition(agent.port, mode="drop", direction="to")   # engine -> agent lost
        ...
        cut.heal()                               # or ns.heal(): every rule goes
    # the processes left inside are killed and the namespace is deleted, even on an exception

**What a partition is.** Inside the namespace everything is on its loopback, so every packet is
local and crosses the kernel's INPUT hook once, where a chain of ours (`DC_FAULTS`, hooked from
INPUT, never created outside the namespace) matches it. `direction` says which packets of a
TCP port PORT are cut:

- `"to"`: those sent TO the port (`--dport PORT`): the callers' requests, and their SYNs. A
  caller cannot connect, and what it sends on an open connection never arrives: the server
  never sees the request. This is "engine -> agent only" when PORT is the agent's.
- `"from"`: those sent FROM the port (`--sport PORT`): the server's SYN-ACKs and replies. The
  server receives and acts on a request, its answer is lost: the caller cannot tell a request
  that never arrived from one whose reply did not. In drop mode the server's bare ACKs still
  pass: were they lost too, the caller's TCP would stop sending anything new after its first
  retransmission timeout (a fraction of a second), and whether a request made later during
  the cut reached the server would depend on timing (a poll sent just before it, say).
- `"both"`: both of the above, a full partition of that port.

`mode` says what happens to a cut packet: `"drop"` loses it silently (a caller hangs until its
deadline; TCP retransmits, so a call still within its deadline when the partition heals
completes), `"reject"` answers it with a TCP reset (`-j REJECT --reject-with tcp-reset`: a
connection attempt is refused and an open connection is reset at once, so calls fail
immediately). Resets themselves are never cut in reject mode, else the resets the rules send
would be cut by the rule of the other direction.

**How the test process reaches inside.** The test's own gRPC calls (health checks, the engine's
API, the agents' task lists) go through a small relay process (harness/netrelay.py) that listens
on 127.0.0.1:PORT of the test's namespace and connects, from inside the namespace, to
127.0.0.1:PORT there: the same address means the same service on both sides, so an `address` is
right for the engine (registering a host) and for the harness alike. The relay enters the
namespace with setns(2) for the sockets it creates, one thread at a time, in its own process:
the test process's gRPC threads never change namespace. The relay's connections come from
127.0.0.2, which every rule exempts: a partition cuts the data center's own traffic (engine <->
agent), never the test's view of it, so a test can watch an agent go on copying while the engine
cannot reach it. `probe()` and `run()` show what the data center sees.

`import_port(5432)` is the other way round: 127.0.0.1:5432 inside the namespace reaches
127.0.0.1:5432 of the test's namespace (a PostgreSQL server there). Nothing else crosses:
every address involved is a loopback address of this machine.

Needs root (CAP_SYS_ADMIN for `ip netns`, CAP_NET_ADMIN for iptables), `ip` (iproute2) and
`iptables` (Debian: `apt-get install iptables`); `unavailable()` says why not, for a skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal, TypeVar

if TYPE_CHECKING:
    from harness.processes import ServiceProcess

    Service = TypeVar("Service", bound=ServiceProcess)

NETNS_DIR = Path("/run/netns")
CHAIN = "DC_FAULTS"
LOOPBACK = "127.0.0.1"
# The relay's source address inside the namespace: exempt from every partition.
HARNESS_SOURCE = "127.0.0.2"
# A bare ACK: at most an IPv4 header (20 bytes) and a TCP header with every option (60), ACK its
# only flag. A data segment that small ends a write and carries PUSH; one without PUSH is part of
# a write split at the MSS (about 64 KiB on loopback), far larger.
BARE_ACK = ("-m", "length", "--length", "0:80")

Mode = Literal["drop", "reject"]
Direction = Literal["to", "from", "both"]
ProbeResult = Literal["connected", "refused", "timeout"]


class NetfaultsUnavailable(RuntimeError):
    """Network namespaces or iptables cannot be used here; the message says why."""


def tool(name: str) -> str | None:
    """An executable by name, also in the sbin directories a non-root PATH may lack."""
    found = shutil.which(name)
    if found:
        return found
    for directory in ("/usr/sbin", "/sbin"):
        candidate = Path(directory) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


_PROBLEM: list[str | None] = []


def unavailable() -> str | None:
    """Why a DataCenterNamespace cannot be made here, or None if it can: tries once per process
    (a throw-away namespace, its loopback up, a reject rule in it)."""
    if not _PROBLEM:
        _PROBLEM.append(_probe_support())
    return _PROBLEM[0]


def _probe_support() -> str | None:
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    missing = [name for name in ("ip", "iptables") if tool(name) is None]
    if missing:
        return f"{' and '.join(missing)} not found (Debian: apt-get install iproute2 iptables)"
    if os.geteuid() != 0:
        return "network namespaces and iptables need root (CAP_SYS_ADMIN, CAP_NET_ADMIN)"
    try:
        with DataCenterNamespace(name=f"dcprobe-{uuid.uuid4().hex[:8]}", bridge=False) as ns:
            ns.partition(9, mode="reject", direction="both").heal()
    except (NetfaultsUnavailable, OSError, subprocess.SubprocessError) as exc:
        return f"cannot make a network namespace with iptables rules here: {exc}"
    return None


@dataclass(frozen=True)
class Partition:
    """The rules of one `DataCenterNamespace.partition` call; `heal()` removes just them."""

    namespace: DataCenterNamespace
    port: int
    mode: Mode
    direction: Direction
    rules: tuple[tuple[str, ...], ...]

    def heal(self) -> None:
        """Remove these rules (those still there: after `DataCenterNamespace.heal()`, none)."""
        for rule in self.rules:
            if self.namespace.iptables("-C", CHAIN, *rule, check=False).returncode == 0:
                self.namespace.iptables("-D", CHAIN, *rule)


class DataCenterNamespace:
    """A network namespace for a test's data center (see the module's documentation). Use it as
    a context manager, or call `create()` and `close()`; `close()` is safe to call twice."""

    def __init__(
        self, name: str | None = None, log_dir: Path | None = None, bridge: bool = True
    ) -> None:
        self.name = name or f"dcnet-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.log_dir = log_dir
        self._want_bridge = bridge
        self._bridge: subprocess.Popen[bytes] | None = None
        self._bridge_lock = threading.Lock()
        self._created = False

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.name

    @property
    def prefix(self) -> list[str]:
        """The argv that runs a command inside: `ip netns exec NAME`."""
        return [self._tool("ip"), "netns", "exec", self.name]

    def create(self) -> DataCenterNamespace:
        self._check(["ip", "netns", "add", self.name])
        self._created = True
        try:
            self.run(["ip", "link", "set", "lo", "up"])
            self.iptables("-N", CHAIN)
            self.iptables("-A", "INPUT", "-j", CHAIN)
            if self._want_bridge:
                self._start_bridge()
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self) -> DataCenterNamespace:
        return self.create()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill every process still inside (only the test's own run there), stop the relay and
        delete the namespace (its rules go with it)."""
        if not self._created:
            return
        with contextlib.suppress(Exception):
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._stop_bridge()
        subprocess.run(
            [self._tool("ip"), "netns", "delete", self.name],
            capture_output=True,
            check=False,
            timeout=30,
        )
        self._created = False

    def exists(self) -> bool:
        return self.path.exists()

    def pids(self) -> list[int]:
        """The processes inside the namespace."""
        out = self._check(["ip", "netns", "pids", self.name]).stdout
        return [int(word) for word in out.split()]

    # -- running things inside ---------------------------------------------------------------

    def run(
        self, argv: Sequence[str], timeout: float = 30.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace and wait for it; its output as text."""
        argv = list(argv)
        if argv and "/" not in argv[0]:
            argv[0] = tool(argv[0]) or argv[0]
        return self._check([*self.prefix, *argv], timeout=timeout, check=check)

    def place(self, process: Service) -> Service:
        """Have a harness process (not started yet) run inside on a port of its own that the
        test reaches too: it listens on 127.0.0.1:PORT inside, the relay on the same address
        outside. Returns the process, to be started as usual. Its other ports (metrics, the
        console) are reachable from outside when they are `expose()`d ones."""
        if process.running:
            raise RuntimeError("place a process in the namespace before starting it")
        if process.host != LOOPBACK:
            raise ValueError(f"a process in the namespace listens on {LOOPBACK}")
        process.launch_prefix = self.prefix
        if not process.port:
            process.port = self.expose()
        return process

    def expose(self, port: int = 0) -> int:
        """Relay 127.0.0.1:PORT of the test's namespace (0: a free port) to 127.0.0.1:PORT
        inside; returns PORT, for a server inside to listen on."""
        return self._bridge_call(f"out {port}")

    def import_port(self, port: int) -> None:
        """Relay 127.0.0.1:PORT inside to 127.0.0.1:PORT of the test's namespace (a database
        server the engine inside uses)."""
        self._bridge_call(f"in {port}")

    def probe(self, port: int, timeout: float = 1.0, host: str = LOOPBACK) -> ProbeResult:
        """Try a TCP connection to HOST:PORT from inside, as a process of the data center
        would (from 127.0.0.1): "connected", "refused" (a reset) or "timeout" (dropped)."""
        code = (
            "import socket, sys\n"
            "s = socket.socket()\n"
            f"s.settimeout({timeout!r})\n"
            f"try: s.connect(({host!r}, {port}))\n"
            "except ConnectionRefusedError: print('refused')\n"
            "except (TimeoutError, socket.timeout): print('timeout')\n"
            "else: print('connected')\n"
        )
        out = self.run([sys.executable, "-c", code], timeout=timeout + 30).stdout.strip()
        if out not in ("connected", "refused", "timeout"):
            raise RuntimeError(f"unexpected probe output {out!r}")
        return out  # type: ignore[return-value]

    # -- faults ------------------------------------------------------------------------------

    def partition(self, port: int, mode: Mode = "drop", direction: Direction = "to") -> Partition:
        """Cut the TCP traffic of `port` inside the namespace (see the module's documentation
        for `mode` and `direction`), until `heal()`. The relay's traffic is never cut."""
        if mode not in ("drop", "reject"):
            raise ValueError(f"mode must be drop or reject, not {mode!r}")
        if direction not in ("to", "from", "both"):
            raise ValueError(f"direction must be to, from or both, not {direction!r}")
        target = ["-j", "DROP"]
        if mode == "reject":
            # A reset is never cut, and a reset is never answered with one.
            target = ["--tcp-flags", "RST", "NONE", "-j", "REJECT", "--reject-with", "tcp-reset"]
        rules: list[tuple[str, ...]] = []
        if direction in ("to", "both"):
            rules.append(("-p", "tcp", "--dport", str(port), "!", "-s", HARNESS_SOURCE, *target))
        if direction in ("from", "both"):
            replies = ("-p", "tcp", "--sport", str(port), "!", "-d", HARNESS_SOURCE)
            if direction == "from" and mode == "drop":
                # The server's bare ACKs pass (no flag but ACK, no room for data): see above.
                rules.append((*replies, "--tcp-flags", "ALL", "ACK", *BARE_ACK, "-j", "RETURN"))
            rules.append((*replies, *target))
        made = Partition(self, port, mode, direction, tuple(rules))
        added: list[tuple[str, ...]] = []
        try:
            for rule in rules:
                self.iptables("-A", CHAIN, *rule)
                added.append(rule)
        except BaseException:
            for rule in added:
                self.iptables("-D", CHAIN, *rule)
            raise
        return made

    def heal(self) -> None:
        """Remove every rule: all traffic flows again."""
        self.iptables("-F", CHAIN)

    def rules(self) -> list[str]:
        """The rules in force, as `iptables -S` prints them."""
        out = self.iptables("-S", CHAIN).stdout
        return [line for line in out.splitlines() if line.startswith("-A ")]

    def iptables(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """iptables inside the namespace (never outside)."""
        if not self._created:
            raise RuntimeError(f"namespace {self.name} does not exist")
        return self.run([self._tool("iptables"), "-w", *args], check=check)

    # -- helpers -----------------------------------------------------------------------------

    def _tool(self, name: str) -> str:
        found = tool(name)
        if found is None:
            raise NetfaultsUnavailable(f"{name} not found")
        return found

    def _check(
        self, argv: list[str], timeout: float = 30.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        if "/" not in argv[0]:
            argv = [self._tool(argv[0]), *argv[1:]]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise NetfaultsUnavailable(
                f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}"
            )
        return done

    def _start_bridge(self) -> None:
        log: IO[bytes] | int = subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log = open(self.log_dir / f"bridge-{self.name}.log", "ab")  # noqa: SIM115
        try:
            self._bridge = subprocess.Popen(
                [sys.executable, "-m", "harness.netrelay", str(self.path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        finally:
            if not isinstance(log, int):
                log.close()

    def _stop_bridge(self) -> None:
        bridge, self._bridge = self._bridge, None
        if bridge is None:
            return
        for stream in (bridge.stdin, bridge.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            bridge.wait(5)  # it exits when its stdin closes
        except subprocess.TimeoutExpired:
            bridge.kill()
            bridge.wait(5)

    def _bridge_call(self, command: str) -> int:
        with self._bridge_lock:
            bridge = self._bridge
            if bridge is None or bridge.stdin is None or bridge.stdout is None:
                raise RuntimeError("this namespace has no relay (bridge=False)")
            bridge.stdin.write(command.encode() + b"\n")
            bridge.stdin.flush()
            answer = bridge.stdout.readline().decode().split()
        if answer[:1] != ["ok"]:
            raise RuntimeError(f"relay: {command!r} failed: {' '.join(answer) or 'it exited'}")
        return int(answer[1])


# -- the relay (a process of its own: setns changes the calling thread's namespace) ----------
