"""Real service processes for tests: start on a free port, wait until ready, kill, restart.

Usable outside this project's own tests, by anyone who tests a client against these services:

    agent = AgentProcess(tmp_path / "agent1", storage_root=tmp_path / "storage")
    agent.start()                  # blocks until its readiness reports SERVING
    stub = agent.stub()            # a vdsm_agent.v1.AgentServiceStub
    agent.kill()                   # SIGKILL, no cleanup
    agent.start()                  # same port, same state directory
    agent.terminate()              # SIGTERM; returns the exit status

A process's stdout and stderr go to `log_path` (appended across restarts); a process that dies
before it serves raises ProcessFailed with the end of that log.

Health has two names: `""` is liveness (SERVING while the process works: a standby engine
too), the service name is readiness (SERVING while it takes calls: only the active engine, once
reconciled). `health()` and `wait_serving()` mean readiness; `health("")` is liveness.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from engine_service.v1 import engine_service_pb2, engine_service_pb2_grpc
from service_common.crash import CRASH_EXIT_CODE
from service_common.grpc_client import client_channel
from service_common.tls import ClientTls, channel
from vdsm_agent.v1 import agent_service_pb2_grpc


class ProcessFailed(RuntimeError):
    """A service process exited when it should not have (or not at its crash point), or did
    not start serving in time; the message ends with the tail of its log."""


class ServiceProcess:
    """One service process with a fixed working directory; restartable on the same port."""

    module: str = ""  # python -m MODULE
    env_prefix: str = ""
    readiness: str = ""  # the health name that is SERVING while it takes calls ("": the server)

    def __init__(
        self,
        workdir: Path,
        extra_args: list[str] | None = None,
        env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        # How the harness itself reaches the process: TLS, and a bearer token for the API.
        self.client_tls: ClientTls | None = None
        self.token: str | None = None
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.extra_args = list(extra_args or [])
        self.env = dict(env or {})
        self.host = host
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "process.log"
        self._address_file = workdir / "bound-address"
        self._channel: grpc.Channel | None = None
        # Put before the interpreter on the command line: ["ip", "netns", "exec", NAME] runs it
        # in a network namespace (harness.netfaults.DataCenterNamespace.place sets it).
        self.launch_prefix: list[str] = []

    # -- what a subclass provides ------------------------------------------------------------

    def service_args(self) -> list[str]:
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def address(self) -> str:
        if not self.port:
            raise RuntimeError("the process has not been started yet")
        return f"{self.host}:{self.port}"

    def start(self, crash_at: str | None = None, wait: bool = True, timeout: float = 30.0) -> None:
        """Start (or restart, on the same port); `crash_at` sets the crash point for this run."""
        if self.running:
            raise RuntimeError(
                f"{self.module} is already running (pid {self.proc and self.proc.pid})"
            )
        self._address_file.unlink(missing_ok=True)
        env = {**os.environ, **self.env}
        env.pop(f"{self.env_prefix}CRASH_AT", None)
        if crash_at:
            env[f"{self.env_prefix}CRASH_AT"] = crash_at
        argv = [
            *self.launch_prefix,
            sys.executable,
            "-m",
            self.module,
            "--listen",
            f"{self.host}:{self.port}",
            "--bound-address-file",
            str(self._address_file),
            *self.service_args(),
            *self.extra_args,
        ]
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start: {' '.join(argv)} (crash_at={crash_at})\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL
            )
        if wait:
            self.wait_serving(timeout)

    def learn_port(self) -> int:
        """The port it listens on, from its bound-address file once written (0 until then)."""
        if not self.port and self._address_file.exists():
            self.port = int(self._address_file.read_text().rsplit(":", 1)[1])
        return self.port

    def wait_serving(self, timeout: float = 30.0) -> None:
        """Wait until the process is ready: its readiness reports SERVING."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ProcessFailed(
                    f"{self.module} exited with {self.proc.returncode} before serving:\n"
                    + self.log_tail()
                )
            self.learn_port()
            if self.port and self.health() == "SERVING":
                return
            time.sleep(0.05)
        raise ProcessFailed(
            f"{self.module} did not report SERVING in {timeout}s:\n" + self.log_tail()
        )

    def wait_listening(self, timeout: float = 30.0) -> str:
        """Wait until the process is live (its liveness, `""`, reports SERVING), ready or not;
        returns its readiness status (a standby engine: NOT_SERVING)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ProcessFailed(
                    f"{self.module} exited with {self.proc.returncode}:\n" + self.log_tail()
                )
            self.learn_port()
            if self.port and self.health("") == "SERVING":
                return self.health()
            time.sleep(0.05)
        raise ProcessFailed(f"{self.module} was not live in {timeout}s:\n" + self.log_tail())

    def health(self, service: str | None = None, timeout: float = 1.0) -> str:
        """The health status name of `service` (default: readiness; `""`: liveness), or
        "UNREACHABLE"."""
        if service is None:
            service = self.readiness
        try:
            with channel(self.address, self.client_tls) as health_channel:
                reply = health_pb2_grpc.HealthStub(health_channel).Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=timeout
                )
        except grpc.RpcError:
            return "UNREACHABLE"
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.proc is not None and self.running:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait; returns the exit status."""
        assert self.proc is not None
        if self.running:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def wait_crashed(self, timeout: float = 30.0) -> None:
        """Wait for the process to die at its crash point."""
        code = self.wait_exit(timeout)
        if code != CRASH_EXIT_CODE:
            raise ProcessFailed(
                f"{self.module} exited {code}, not at a crash point:\n" + self.log_tail()
            )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def channel(self) -> grpc.Channel:
        """One channel per process, kept across restarts (gRPC reconnects by itself)."""
        if self._channel is None:
            self._channel = client_channel(self.address, self.client_tls, self.token)
        return self._channel

    def close(self) -> None:
        """Kill the process if it runs and close the channel."""
        self.kill()
        if self._channel is not None:
            self._channel.close()
            self._channel = None


class AgentProcess(ServiceProcess):
    """A `vdsm-agent`. Agents of one data center share `storage_root`; each has its own state."""

    module = "vdsm_agent.entrypoints.server"
    env_prefix = "VDSM_AGENT_"

    def __init__(
        self,
        workdir: Path,
        storage_root: Path | None = None,
        throttle: int | None = None,
        extra_args: list[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(workdir, extra_args, env)
        self.storage_root = storage_root or workdir / "storage"
        self.state_dir = workdir / "state"
        self.throttle = throttle

    def service_args(self) -> list[str]:
        args = ["--storage-root", str(self.storage_root), "--state-dir", str(self.state_dir)]
        if self.throttle:
            args += ["--throttle", str(self.throttle)]
        return args

    def stub(self) -> agent_service_pb2_grpc.AgentServiceStub:
        return agent_service_pb2_grpc.AgentServiceStub(self.channel())

    def image_path(self, storage_domain_id: str, image_id: str) -> Path:
        return self.storage_root / storage_domain_id / "images" / image_id


class EngineProcess(ServiceProcess):
    """An `engine-service` on `database_url` (default: SQLite in its working directory).

    With `ui_listen` (HOST:PORT, port 0 for a free one, kept across restarts) or `--ui-listen`
    among `extra_args`, it serves its console once active: `ui_address` and `ui_url()`."""

    module = "engine_service.entrypoints.server"
    env_prefix = "ENGINE_"
    readiness = engine_service_pb2.DESCRIPTOR.services_by_name["EngineService"].full_name

    def __init__(
        self,
        workdir: Path,
        database_url: str | None = None,
        poll_interval: float = 0.2,
        extra_args: list[str] | None = None,
        env: Mapping[str, str] | None = None,
        ui_listen: str | None = None,
    ) -> None:
        super().__init__(workdir, extra_args, env)
        self.database_url = database_url or f"sqlite:///{workdir / 'engine.db'}"
        self.poll_interval = poll_interval
        self.ui_listen = ui_listen
        self.ui_port = 0
        self._ui_address_file = workdir / "ui-bound-address"

    def service_args(self) -> list[str]:
        args = [
            "--state-dir",
            str(self.workdir),
            "--database-url",
            self.database_url,
            "--poll-interval",
            str(self.poll_interval),
            "--ui-bound-address-file",
            str(self._ui_address_file),
        ]
        if self.ui_listen:
            host, _, port = self.ui_listen.rpartition(":")
            args += ["--ui-listen", f"{host}:{self.ui_port or port}"]
        return args

    def start(self, crash_at: str | None = None, wait: bool = True, timeout: float = 30.0) -> None:
        self._ui_address_file.unlink(missing_ok=True)
        super().start(crash_at, wait, timeout)
        if wait and self._ui_address_file.exists():
            self.ui_address  # noqa: B018  (learns the port, kept for a restart)

    @property
    def ui_address(self) -> str:
        """The console's HOST:PORT; it is written once the console serves (an active engine
        started with --ui-listen), which is before readiness reports SERVING."""
        if not self._ui_address_file.exists():
            raise RuntimeError("the console is not serving: no --ui-listen, or not active yet")
        address = self._ui_address_file.read_text()
        self.ui_port = int(address.rsplit(":", 1)[1])
        return address

    def ui_url(self, path: str = "/") -> str:
        """The console's URL of `path`: HTTPS when the harness reaches the engine over TLS."""
        return f"{'https' if self.client_tls else 'http'}://{self.ui_address}{path}"

    def stub(self) -> engine_service_pb2_grpc.EngineServiceStub:
        return engine_service_pb2_grpc.EngineServiceStub(self.channel())
