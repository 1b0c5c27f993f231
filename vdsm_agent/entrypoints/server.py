"""The `vdsm-agent` process: flags (each with an environment variable), the gRPC server with
health and reflection, metrics, and a graceful stop on SIGTERM."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from service_common.config import masked, parse_layered
from service_common.grpc_server import GrpcServer, serve_metrics, wait_for_stop_signal
from service_common.logs import configure_logging
from service_common.tls import server_credentials
from vdsm_agent.adapters.storage import StorageRoot
from vdsm_agent.adapters.task_store import TaskStore
from vdsm_agent.crash import crash_point
from vdsm_agent.entrypoints.grpc_servicer import AgentServicer
from vdsm_agent.service_layer.task_manager import TaskManager
from vdsm_agent.v1 import agent_service_pb2 as pb
from vdsm_agent.v1 import agent_service_pb2_grpc as pb_grpc

log = logging.getLogger("vdsm_agent")

ENV_PREFIX = "VDSM_AGENT_"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AgentService"].full_name


@dataclass(frozen=True)
class Config:
    listen: str
    storage_root: Path
    state_dir: Path
    throttle: int | None
    workers: int
    metrics_listen: str | None
    log_format: str
    grace_seconds: float
    bound_address_file: Path | None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(
        prog="vdsm-agent",
        description="A fake VDSM host agent: storage domains are directories under the storage "
        "root, images are files, and CreateVolume / CopyImage are asynchronous tasks. Every flag "
        "also reads VDSM_AGENT_<FLAG> from the environment (--state-dir: VDSM_AGENT_STATE_DIR).",
    )
    p.add_argument(
        "--listen",
        default="127.0.0.1:54321",
        help="HOST:PORT to serve gRPC on; port 0 picks a free one (default %(default)s)",
    )
    p.add_argument(
        "--storage-root",
        type=Path,
        default="/var/lib/vdsm-agent/storage",
        help="the directory holding the storage domains, shared by every agent of a "
        "data center (default %(default)s)",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default="/var/lib/vdsm-agent/state",
        help="where this agent keeps its task records (default %(default)s)",
    )
    p.add_argument(
        "--throttle",
        type=_positive_int,
        default="0",
        help="limit each task's writing speed, bytes per second; 0 = no limit",
    )
    p.add_argument(
        "--workers",
        type=_positive_int,
        default="8",
        help="tasks that move bytes at once; more wait in state init (default %(default)s)",
    )
    p.add_argument(
        "--metrics-listen",
        default=None,
        help="HOST:PORT to serve Prometheus metrics at /metrics (default: off)",
    )
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.add_argument(
        "--grace",
        type=float,
        default="10",
        help="seconds in-flight RPCs get to finish after SIGTERM (default %(default)s)",
    )
    p.add_argument(
        "--bound-address-file",
        type=Path,
        default=None,
        help="write the HOST:PORT actually bound here once serving (for --listen :0)",
    )
    p.add_argument(
        "--tls-cert",
        type=Path,
        default=None,
        help="this agent's certificate (PEM): serve TLS instead of plaintext",
    )
    p.add_argument("--tls-key", type=Path, default=None, help="the certificate's private key")
    p.add_argument(
        "--tls-client-ca",
        type=Path,
        default=None,
        help="accept only clients with a certificate this CA signed (mutual TLS)",
    )
    ns = parse_layered(p, ENV_PREFIX, argv)
    if ns.workers < 1:
        p.error("--workers must be at least 1")
    if (ns.tls_cert is None) != (ns.tls_key is None):
        p.error("--tls-cert and --tls-key go together")
    if ns.tls_client_ca is not None and ns.tls_cert is None:
        p.error("--tls-client-ca needs --tls-cert and --tls-key")
    return Config(
        listen=ns.listen,
        storage_root=ns.storage_root,
        state_dir=ns.state_dir,
        throttle=int(ns.throttle) or None,
        workers=int(ns.workers),
        metrics_listen=ns.metrics_listen or None,
        log_format=ns.log_format,
        grace_seconds=float(ns.grace),
        bound_address_file=ns.bound_address_file,
        tls_cert=ns.tls_cert,
        tls_key=ns.tls_key,
        tls_client_ca=ns.tls_client_ca,
    )


class AgentServer:
    """The task manager and the gRPC server around it; `stop` is the graceful path of SIGTERM."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.tasks = TaskManager(
            StorageRoot(config.storage_root),
            TaskStore(config.state_dir),
            throttle_bytes_per_s=config.throttle,
            workers=config.workers,
        )
        credentials = (
            server_credentials(config.tls_cert, config.tls_key, config.tls_client_ca)
            if config.tls_cert and config.tls_key
            else None
        )
        self.grpc = GrpcServer(config.listen, [SERVICE_NAME], credentials=credentials)
        pb_grpc.add_AgentServiceServicer_to_server(AgentServicer(self.tasks), self.grpc.server)

    @property
    def address(self) -> str:
        return self.grpc.address

    def start(self) -> None:
        self.grpc.start(self.config.bound_address_file)
        self.grpc.set_serving(True)
        if self.config.tls_client_ca:
            log.info(
                "serving mutual TLS on %s: only clients signed by %s get in",
                self.address,
                self.config.tls_client_ca,
            )
        elif self.config.tls_cert:
            log.warning(
                "serving TLS on %s WITHOUT client certificates (no --tls-client-ca): "
                "any client may drive this host",
                self.address,
            )
        else:
            log.warning(
                "serving PLAINTEXT gRPC on %s: no TLS configured, for local development only",
                self.address,
            )

    def stop(self) -> None:
        log.info("stopping: health NOT_SERVING, letting in-flight RPCs finish")
        self.grpc.stop(self.config.grace_seconds)
        self.tasks.shutdown()
        log.info("stopped")


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_args(argv)
    configure_logging(config.log_format)
    crash_at = crash_point.check_configured()
    if crash_at:
        log.warning("VDSM_AGENT_CRASH_AT=%s: this process will die at that point", crash_at)
    log.info("effective configuration: %s", masked(config.__dict__))
    server = AgentServer(config)
    serve_metrics(config.metrics_listen, log)
    server.start()
    wait_for_stop_signal(log)
    server.stop()


if __name__ == "__main__":
    main()
