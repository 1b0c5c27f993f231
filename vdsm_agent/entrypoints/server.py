"""The `vdsm-agent` process: its settings (declared in `settings`), the gRPC server with
health and reflection, metrics, and a graceful stop on SIGTERM."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from service_common.config import effective
from service_common.grpc_server import GrpcServer, serve_metrics, wait_for_stop_signal
from service_common.logs import configure_logging
from service_common.memory import cap_malloc_arenas, freeze_startup_objects
from service_common.secure_default import plaintext_exposed
from service_common.tls import server_credentials
from service_common.tracing import configure_tracing
from vdsm_agent.adapters.storage import StorageRoot
from vdsm_agent.adapters.task_store import TaskStore
from vdsm_agent.crash import crash_point
from vdsm_agent.entrypoints.grpc_servicer import AgentServicer
from vdsm_agent.entrypoints.settings import ENV_PREFIX, Config, parse_args
from vdsm_agent.service_layer.task_manager import TaskManager
from vdsm_agent.v1 import agent_service_pb2 as pb
from vdsm_agent.v1 import agent_service_pb2_grpc as pb_grpc

log = logging.getLogger("vdsm_agent")

__all__ = [  # parse_args, Config and ENV_PREFIX: the settings, for the tests and tools
    "ENV_PREFIX",
    "SERVICE_NAME",
    "AgentServer",
    "Config",
    "main",
    "parse_args",
]

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AgentService"].full_name


class AgentServer:
    """The task manager and the gRPC server around it; `stop` is the graceful path of SIGTERM."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.tasks = TaskManager(
            StorageRoot(config.storage_root),
            TaskStore(config.state_dir),
            throttle_bytes_per_s=config.throttle or None,
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
        elif plaintext_exposed(self.address, tls=False):
            log.warning(
                "serving PLAINTEXT gRPC on %s, a non-loopback address, as --insecure allows: "
                "anyone who reaches it may drive this host",
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
    cap_malloc_arenas()  # before any thread: the RSS stays level (service_common/memory.py)
    configure_logging(config.log_format, config.log_level)
    configure_tracing("vdsm-agent")
    crash_at = crash_point.check_configured()
    if crash_at:
        log.warning("VDSM_AGENT_CRASH_AT=%s: this process will die at that point", crash_at)
    log.info("effective configuration: %s", effective(config))
    server = AgentServer(config)
    serve_metrics(config.metrics_listen, log)
    freeze_startup_objects()  # full collections then skip them (service_common/memory.py)
    server.start()
    wait_for_stop_signal(log)
    server.stop()


if __name__ == "__main__":
    main()
