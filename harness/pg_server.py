"""A PostgreSQL server of the tests' own, to stop, restart and kill -9 under a running engine
(the shared server at 127.0.0.1:5432 is never touched).

    with PostgresServer.create() as pg:      # initdb in a temporary directory, then start
        url = pg.create_database()            # a fresh database; its SQLAlchemy URL
        pg.stop()                             # a clean shutdown ("fast": clients disconnected)
        pg.start()                            # same port, same data
        pg.restart()
        pg.kill9()                            # SIGKILL the postmaster and every child
        pg.start()                            # crash recovery, then serving again
    # cleanup(): killed if running, its directory removed

The server listens on 127.0.0.1 on a free port (kept across restarts) with trust
authentication, runs `postgres` from the binaries `bindir()` finds (PG_BINDIR, `pg_config
--bindir`, or /usr/lib/postgresql/*/bin), and writes its log to `log_path`. PostgreSQL refuses
to run as root: a root process runs it as the `postgres` user, in a directory that user owns.
`fsync=off` speeds it up; that is safe for what it is for, since kill -9 of the server loses
nothing the kernel has (a power cut would).

`problem()` says why no such server can run here (no binaries; root without a `postgres`
user), or None; the pytest fixtures (harness.pytest_plugin) skip with it, or fail under
REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql

from harness.ports import free_port

BINARIES = ("initdb", "postgres")
SERVICE_USER = "postgres"  # who runs the server when the caller is root


class PostgresFailed(RuntimeError):
    """The server did not start, or did not stop, in time; the message ends with its log."""


def bindir() -> Path | None:
    """Where initdb and postgres are: PG_BINDIR, `pg_config --bindir`, or the newest
    /usr/lib/postgresql/*/bin (Debian's layout); None if nowhere."""
    candidates: list[str] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if found.returncode == 0:
            candidates.append(found.stdout.strip())
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(versions, key=lambda p: int(Path(p).parent.name or 0), reverse=True)
    candidates.append("/usr/local/pgsql/bin")
    for candidate in candidates:
        path = Path(candidate)
        if all(os.access(path / name, os.X_OK) for name in BINARIES):
            return path
    return None


def problem() -> str | None:
    """Why a PostgreSQL of the tests' own cannot run here, or None if it can."""
    if bindir() is None:
        return (
            "no PostgreSQL server binaries (initdb, postgres): install postgresql, or set PG_BINDIR"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            return f"running as root, and there is no {SERVICE_USER!r} user to run PostgreSQL as"
        if shutil.which("setpriv") is None and not os.access("/usr/bin/setpriv", os.X_OK):
            return "running as root without setpriv(1) (util-linux) to run PostgreSQL as postgres"
    return None


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, run as a child process."""

    def __init__(self, base_dir: Path | None = None, port: int = 0) -> None:
        found = bindir()
        why = problem()
        if found is None or why is not None:
            raise PostgresFailed(why or "no PostgreSQL binaries")
        self.bindir = found
        self.root = Path(tempfile.mkdtemp(prefix="own-pg-", dir=base_dir))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        # Root runs it as SERVICE_USER (None: as whoever runs the tests).
        self.uid: int | None = None
        self.gid: int | None = None
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVICE_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.uid, self.gid = user.pw_uid, user.pw_gid

    @classmethod
    def create(cls, base_dir: Path | None = None) -> PostgresServer:
        """initdb, then start: a running server."""
        server = cls(base_dir)
        try:
            server.initdb()
            server.start()
        except BaseException:
            server.cleanup()
            raise
        return server

    # -- what clients use --------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of its `postgres` database (psycopg 3, as the engine uses)."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; its SQLAlchemy URL."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.database_url(name)

    # -- lifecycle ---------------------------------------------------------------------------

    def initdb(self) -> None:
        command = [
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]
        done = subprocess.run(
            self._as_owner(command),
            capture_output=True,
            cwd=self.root,
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")
            raise PostgresFailed(f"initdb failed ({done.returncode}):\n{output}")

    def _as_owner(self, command: list[str]) -> list[str]:
        """`command` run as the directory's owner, through setpriv(1). Not with Popen's
        user/group arguments: with those, Python forks instead of using vfork, and the fork
        handlers of gRPC's threads (a test process or the nemesis has them) run in the child,
        which then died of SIGABRT before it could exec PostgreSQL."""
        if self.uid is None:
            return command
        setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        return [
            setpriv,
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--clear-groups",
            "--",
            *command,
        ]

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Start on the same port and data (after a kill -9, crash recovery first); returns
        once it accepts connections."""
        if self.running:
            raise RuntimeError("PostgreSQL is already running")
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.root),
            "fsync": "off",
            "max_connections": "200",
            "shared_buffers": "32MB",
        }
        command = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start: {' '.join(command)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self._as_owner(command),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
                start_new_session=True,  # a Ctrl-C at the terminal is the test's, not its
            )
        self._wait_accepting(timeout)

    def _wait_accepting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise PostgresFailed(
                    f"PostgreSQL exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                with psycopg.connect(self.url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise PostgresFailed(
                        f"PostgreSQL did not accept connections in {timeout}s:\n" + self.log_tail()
                    ) from None
                time.sleep(0.05)

    def stop(self, mode: str = "fast", timeout: float = 60.0) -> None:
        """Shut down: "fast" (clients disconnected, their transactions rolled back: what an
        operator's restart does), "smart" (waits for clients to leave) or "immediate" (no
        shutdown checkpoint; recovery at the next start)."""
        signals = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(signals[mode])
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            message = f"PostgreSQL did not stop in {timeout}s:\n{self.log_tail()}"
            raise PostgresFailed(message) from None

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def kill9(self) -> None:
        """SIGKILL the postmaster and every process it started, all at once, as a crash
        would; returns once they are gone. `start` then runs crash recovery."""
        if not self.running:
            return
        assert self.proc is not None
        postmaster = self.proc.pid
        os.kill(postmaster, signal.SIGSTOP)  # it starts no new child meanwhile
        children = _children_of(postmaster)
        for pid in children:
            _kill(pid)
        os.kill(postmaster, signal.SIGKILL)
        self.proc.wait(30)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in children):
            if time.monotonic() > deadline:
                raise PostgresFailed(f"PostgreSQL's processes {children} outlived SIGKILL")
            time.sleep(0.02)

    def ensure_running(self) -> None:
        if not self.running:
            self.start()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def cleanup(self) -> None:
        """Kill the server if it runs and remove its directory."""
        if self.running:
            self.kill9()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


def _children_of(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == parent:
            found.append(int(entry.name))
    return found


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Running (a zombie, exited but not reaped by its new parent, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"
