"""gRPC server basics both services share: errors to status codes, health, reflection, signals."""

from __future__ import annotations

import functools
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent import futures
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Histogram

from service_common import errors
from service_common.rich_errors import rich_status
from service_common.tracing import server_interceptors

Handler = TypeVar("Handler", bound=Callable[..., Any])

STATUS_CODES: dict[type[Exception], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
}
MAX_RECEIVE_BYTES = 4 << 20


def status_code_of(
    exc: Exception, statuses: Mapping[type[Exception], grpc.StatusCode] = STATUS_CODES
) -> grpc.StatusCode | None:
    """The status a known error is answered with (its class's, or a base's); None for an
    error `statuses` does not know."""
    for cls in type(exc).__mro__:
        if cls in statuses:
            return statuses[cls]
    return None


def host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise SystemExit(f"address {address!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def error_mapper(
    rpc_seconds: Histogram,
    log: logging.Logger,
    statuses: Mapping[type[Exception], grpc.StatusCode] = STATUS_CODES,
    translate: Callable[[Exception], Exception | None] = lambda exc: None,
) -> Callable[[Handler], Handler]:
    """A decorator for servicer methods: each known error becomes its status code with its own
    message; anything else is INTERNAL with an error id that the log also has (never a
    traceback for the caller). `translate` turns an error the service knows but did not raise
    as a known one (a driver's "database unavailable", say) into a known one, or says None.
    Every call is timed into `rpc_seconds{method, code}`."""

    def status_of(exc: Exception) -> grpc.StatusCode | None:
        return status_code_of(exc, statuses)

    def decorate(method: Handler) -> Handler:
        @functools.wraps(method)
        def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return method(self, request, context)
            except Exception as exc:
                known = status_of(exc)
                translated = None if known is not None else translate(exc)
                if translated is not None and (known := status_of(translated)) is not None:
                    log.warning("%s answered %s: %s", method.__name__, known.name, translated)
                    exc = translated
                if known is not None:
                    code = known
                    # The same message, and google.rpc details (BadRequest, PreconditionFailure)
                    context.abort_with_status(rich_status(code, exc))
                aborted = context.code()  # type: ignore[attr-defined]  # missing from the stubs
                if aborted not in (None, grpc.StatusCode.OK):
                    code = aborted
                    raise  # the method called context.abort() itself
                code = grpc.StatusCode.INTERNAL
                error_id = uuid.uuid4()
                log.exception("internal error %s in %s", error_id, method.__name__)
                context.abort(code, f"internal error {error_id}; the server's log has the details")
            finally:
                rpc_seconds.labels(method.__name__, code.name).observe(
                    time.perf_counter() - started
                )

        return wrapper  # type: ignore[return-value]

    return decorate


class Health:
    """The standard gRPC health service, with two meanings: `""` is liveness (SERVING while the
    process works, so a liveness probe restarts it only when it does not), each service name is
    readiness (SERVING while it takes calls). Everything starts NOT_SERVING."""

    def __init__(self, service_names: Iterable[str]) -> None:
        self.service_names = tuple(service_names)
        self.servicer = health.HealthServicer()
        self.set_live(False)
        self.set_ready(False)

    @staticmethod
    def _status(serving: bool) -> Any:
        return (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )

    def set_live(self, live: bool) -> None:
        """Liveness: the status of `""`."""
        self.servicer.set("", self._status(live))

    def set_ready(self, ready: bool) -> None:
        """Readiness: the status of every service name."""
        for name in self.service_names:
            self.servicer.set(name, self._status(ready))


class GrpcServer:
    """A grpc.server with the standard health and reflection services, the standard gRPC
    metrics and a span per RPC, and a graceful stop."""

    def __init__(
        self,
        listen: str,
        service_names: Iterable[str],
        max_workers: int = 16,
        interceptors: Sequence[grpc.ServerInterceptor] = (),
        credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
            # The standard gRPC metrics and a span per RPC (tracing.py) around the caller's.
            interceptors=[*server_interceptors(), *interceptors],
            options=[
                ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
                ("grpc.max_send_message_length", 64 << 20),
            ],
        )
        self.service_names = tuple(service_names)
        self.health = Health(self.service_names)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, self.server)
        reflection.enable_server_reflection(
            (*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        host, _ = host_port(listen)
        if credentials is None:
            bound = self.server.add_insecure_port(listen)
        else:
            bound = self.server.add_secure_port(listen, credentials)
        if not bound:
            raise SystemExit(f"cannot listen on {listen}")
        self.address = f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}"

    def set_live(self, live: bool) -> None:
        """Liveness (`""`): SERVING while the process works, even when it takes no calls."""
        self.health.set_live(live)

    def set_ready(self, ready: bool) -> None:
        """Readiness (the service names): SERVING while the server takes calls."""
        self.health.set_ready(ready)

    def set_serving(self, serving: bool) -> None:
        """Liveness and readiness together (a server that is ready as soon as it lives)."""
        self.set_live(serving)
        self.set_ready(serving)

    def start(self, bound_address_file: Path | None = None) -> None:
        self.server.start()
        if bound_address_file:
            tmp = bound_address_file.with_suffix(".tmp")
            tmp.write_text(self.address)
            tmp.replace(bound_address_file)

    def stop(self, grace_seconds: float) -> None:
        """Health (liveness and readiness) NOT_SERVING, then let in-flight RPCs finish for up
        to `grace_seconds`."""
        self.set_serving(False)
        self.server.stop(grace_seconds).wait()


def stop_signal(log: logging.Logger) -> threading.Event:
    """An event set by SIGTERM or SIGINT."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stopping


def wait_for_stop_signal(log: logging.Logger) -> None:
    """Block until SIGTERM or SIGINT."""
    stop_signal(log).wait()


def serve_metrics(address: str | None, log: logging.Logger) -> None:
    if address:
        from prometheus_client import start_http_server

        host, port = host_port(address)
        start_http_server(port, addr=host)
        log.info("metrics at http://%s/metrics", address)
