"""The `engine-service` process: flags (each with an environment variable), startup
reconciliation before SERVING, polling, and a graceful stop on SIGTERM."""

from __future__ import annotations

import argparse
import hmac
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from engine_service.adapters.lease import EngineLease, lease_for
from engine_service.bootstrap import EngineSettings, bootstrap
from engine_service.crash import crash_point
from engine_service.entrypoints.grpc_servicer import EngineServicer
from engine_service.service_layer.async_task_manager import PollSettings
from engine_service.v1 import engine_service_pb2 as pb
from engine_service.v1 import engine_service_pb2_grpc as pb_grpc
from service_common.config import masked, parse_layered
from service_common.grpc_server import GrpcServer, serve_metrics, stop_signal
from service_common.logs import configure_logging
from service_common.tls import ClientTls, server_credentials

log = logging.getLogger("engine_service")

ENV_PREFIX = "ENGINE_"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EngineService"].full_name


@dataclass(frozen=True)
class Config:
    listen: str
    database_url: str
    state_dir: Path
    poll_interval: float
    host_failure_polls: int
    task_timeout: float
    zombie_grace: float
    agent_deadline: float
    orphans: str
    metrics_listen: str | None
    log_format: str
    grace_seconds: float
    bound_address_file: Path | None
    agent_tls: ClientTls | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    api_tokens: tuple[str, ...] = ()
    max_watchers: int = 64


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} is not positive")
        return value

    return parse


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(
        prog="engine-service",
        description="The engine: commands, placeholders, polling and reconciliation over the "
        "hosts' vdsm-agents. Every flag also reads ENGINE_<FLAG> from the environment "
        "(--database-url: ENGINE_DATABASE_URL).",
    )
    p.add_argument(
        "--listen",
        default="127.0.0.1:50051",
        help="HOST:PORT to serve gRPC on; port 0 picks a free one (default %(default)s)",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default="/var/lib/engine-service",
        help="where the default SQLite database lives (default %(default)s)",
    )
    p.add_argument(
        "--database-url",
        default=None,
        help="an SQLAlchemy URL: sqlite:///FILE or postgresql://USER@HOST/DB "
        "(default: sqlite:///STATE_DIR/engine.db)",
    )
    p.add_argument(
        "--poll-interval",
        type=_positive(float),
        default="1.0",
        help="seconds between two polls of every host (default %(default)s)",
    )
    p.add_argument(
        "--host-failure-polls",
        type=_positive(int),
        default="3",
        help="failed polls in a row that make a host NON_RESPONSIVE (default %(default)s)",
    )
    p.add_argument(
        "--task-timeout",
        type=_positive(float),
        default="300",
        help="seconds after a host became NON_RESPONSIVE that its commands fail "
        "(default %(default)s)",
    )
    p.add_argument(
        "--zombie-grace",
        type=_positive(float),
        default="60",
        help="seconds an agent task unknown to the engine may live before it is "
        "stopped and cleared (default %(default)s)",
    )
    p.add_argument(
        "--agent-deadline",
        type=_positive(float),
        default="3",
        help="seconds a host's agent gets to answer a poll or a lookup; a slower host misses "
        "that cycle and never delays the others (default %(default)s)",
    )
    p.add_argument(
        "--orphans",
        choices=("fail", "resubmit"),
        default="fail",
        help="commands whose placeholders never reached an agent at a restart: fail "
        "them (the default) or submit those children again",
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
        help="write the HOST:PORT actually bound here once listening",
    )
    p.add_argument(
        "--agent-tls-ca",
        type=Path,
        default=None,
        help="reach agents over TLS, trusting this CA (their host names are checked)",
    )
    p.add_argument(
        "--agent-tls-cert",
        type=Path,
        default=None,
        help="the engine's client certificate for agents that require one",
    )
    p.add_argument("--agent-tls-key", type=Path, default=None, help="its private key")
    p.add_argument(
        "--tls-cert",
        type=Path,
        default=None,
        help="serve the engine API over TLS with this certificate",
    )
    p.add_argument("--tls-key", type=Path, default=None, help="its private key")
    p.add_argument(
        "--max-watchers",
        type=_positive(int),
        default="64",
        help="WatchCommand streams open at once; more get RESOURCE_EXHAUSTED (default %(default)s)",
    )
    p.add_argument(
        "--api-token",
        action="append",
        default=None,
        help="a bearer token the API accepts; repeatable (env ENGINE_API_TOKENS, "
        "comma-separated). None configured: the API is open",
    )
    ns = parse_layered(p, ENV_PREFIX, argv, env_names={"api_token": "ENGINE_API_TOKENS"})
    if (ns.tls_cert is None) != (ns.tls_key is None):
        p.error("--tls-cert and --tls-key go together")
    if (ns.agent_tls_cert is None) != (ns.agent_tls_key is None):
        p.error("--agent-tls-cert and --agent-tls-key go together")
    if ns.agent_tls_cert is not None and ns.agent_tls_ca is None:
        p.error("--agent-tls-cert needs --agent-tls-ca")
    agent_tls = (
        ClientTls(ns.agent_tls_ca, ns.agent_tls_cert, ns.agent_tls_key) if ns.agent_tls_ca else None
    )
    state_dir = Path(ns.state_dir)
    return Config(
        listen=ns.listen,
        state_dir=state_dir,
        database_url=ns.database_url or f"sqlite:///{state_dir / 'engine.db'}",
        poll_interval=float(ns.poll_interval),
        host_failure_polls=int(ns.host_failure_polls),
        task_timeout=float(ns.task_timeout),
        zombie_grace=float(ns.zombie_grace),
        agent_deadline=float(ns.agent_deadline),
        orphans=ns.orphans,
        metrics_listen=ns.metrics_listen or None,
        log_format=ns.log_format,
        grace_seconds=float(ns.grace),
        bound_address_file=ns.bound_address_file,
        agent_tls=agent_tls,
        tls_cert=ns.tls_cert,
        tls_key=ns.tls_key,
        api_tokens=tuple(ns.api_token or ()),
        max_watchers=int(ns.max_watchers),
    )


def _refusal(handler: Any, code: grpc.StatusCode, message: str) -> Any:
    def refuse(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    if handler is not None and handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)


class TokenInterceptor(grpc.ServerInterceptor):
    """With tokens configured, engine API calls need `authorization: Bearer <token>`; health
    and reflection stay open. Tokens are compared in constant time."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self.tokens = [t.encode() for t in tokens]

    def accepts(self, metadata: Any) -> str | None:
        """None if the call may go on, else why not."""
        presented = [v for k, v in (metadata or ()) if k == "authorization"]
        if not presented or not str(presented[0]).startswith("Bearer "):
            return "missing bearer token: send the metadata 'authorization: Bearer <token>'"
        offered = str(presented[0]).removeprefix("Bearer ").encode()
        matched = False
        for token in self.tokens:  # every one, so the time says nothing about which matched
            matched |= hmac.compare_digest(offered, token)
        return None if matched else "invalid bearer token"

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        if not self.tokens or not details.method.startswith(f"/{SERVICE_NAME}/"):
            return continuation(details)
        problem = self.accepts(details.invocation_metadata)
        if problem is None:
            return continuation(details)
        return _refusal(continuation(details), grpc.StatusCode.UNAUTHENTICATED, problem)


class ReadinessInterceptor(grpc.ServerInterceptor):
    """Engine API calls wait for the startup reconciliation: UNAVAILABLE until then."""

    def __init__(self) -> None:
        self.ready = threading.Event()

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        if self.ready.is_set() or not details.method.startswith(f"/{SERVICE_NAME}/"):
            return continuation(details)

        return _refusal(
            continuation(details),
            grpc.StatusCode.UNAVAILABLE,
            "the engine is not serving (standing by, or reconciling at startup); "
            "retry when its health is SERVING",
        )


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_args(argv)
    configure_logging(config.log_format)
    crash_at = crash_point.check_configured()
    if crash_at:
        log.warning("ENGINE_CRASH_AT=%s: this process will die at that point", crash_at)
    log.info("effective configuration: %s", masked(config.__dict__))
    stopping = stop_signal(log)
    readiness = ReadinessInterceptor()
    credentials = (
        server_credentials(config.tls_cert, config.tls_key)
        if config.tls_cert and config.tls_key
        else None
    )
    server = GrpcServer(
        config.listen,
        [SERVICE_NAME],
        credentials=credentials,
        interceptors=[TokenInterceptor(config.api_tokens), readiness],
    )
    serve_metrics(config.metrics_listen, log)
    servicer = DeferredServicer(config.max_watchers)
    pb_grpc.add_EngineServiceServicer_to_server(servicer, server.server)
    server.start(config.bound_address_file)
    log_security(config, server.address)
    lease = lease_for(config.database_url)
    if not wait_for_lease(lease, stopping):
        server.stop(config.grace_seconds)
        log.info("stopped while standby")
        return
    settings = EngineSettings(
        agent_tls=config.agent_tls,
        database_url=config.database_url,
        orphans=config.orphans,
        poll=PollSettings(
            interval=config.poll_interval,
            host_failure_polls=config.host_failure_polls,
            task_timeout=config.task_timeout,
            zombie_grace=config.zombie_grace,
            agent_deadline=config.agent_deadline,
        ),
    )
    engine = bootstrap(settings)
    servicer.engine = engine
    report = engine.start()
    readiness.ready.set()
    server.set_serving(True)
    log.info("SERVING as the active engine; startup reconciliation: %s", report)
    watch_lease(lease, stopping)
    stopping.wait()
    log.info("stopping: health NOT_SERVING, letting in-flight RPCs finish")
    server.stop(config.grace_seconds)
    engine.stop()
    lease.release()
    log.info("stopped")


def log_security(config: Config, address: str) -> None:
    api = "TLS" if config.tls_cert else "PLAINTEXT (no --tls-cert; local development only)"
    auth = f"{len(config.api_tokens)} bearer token(s)" if config.api_tokens else "NO token (open)"
    if config.agent_tls is None:
        agents = "PLAINTEXT (no --agent-tls-ca; local development only)"
    elif config.agent_tls.cert is None:
        agents = "TLS trusting the agent CA, without a client certificate"
    else:
        agents = "mutual TLS"
    level = (
        logging.INFO
        if config.tls_cert and config.api_tokens and config.agent_tls
        else logging.WARNING
    )
    log.log(
        level,
        "API on %s: %s, %s; to agents: %s. NOT_SERVING until this engine is the "
        "active one and its startup reconciliation committed",
        address,
        api,
        auth,
        agents,
    )


class DeferredServicer(EngineServicer):
    """The servicer is registered before the engine exists (a standby serves health only);
    the readiness interceptor keeps calls away until `engine` is set."""

    def __init__(self, max_watchers: int) -> None:
        self.watchers = threading.BoundedSemaphore(max_watchers)
        self.max_watchers = max_watchers


def wait_for_lease(lease: EngineLease, stopping: threading.Event, retry: float = 1.0) -> bool:
    """Become the active engine; a standby waits here, NOT_SERVING. False if told to stop."""
    announced = False
    while not stopping.is_set():
        try:
            if lease.try_acquire():
                log.info("this engine holds the lease: it is the active engine")
                return True
            if not announced:
                log.warning("another engine is active on this database: standing by")
                announced = True
        except Exception as exc:  # the database is not up yet, or went away
            log.warning("cannot reach the database for the engine lease yet: %s", exc)
        stopping.wait(retry)
    return False


def watch_lease(lease: EngineLease, stopping: threading.Event, every: float = 2.0) -> None:
    """Fencing: an engine that lost its lease stops at once, so two never work together."""

    def watch() -> None:
        while not stopping.wait(every):
            if not lease.held():
                log.critical(
                    "the engine lease was lost (database session gone): exiting so "
                    "that a standby can take over"
                )
                os._exit(3)

    threading.Thread(target=watch, name="lease-watchdog", daemon=True).start()


if __name__ == "__main__":
    main()
