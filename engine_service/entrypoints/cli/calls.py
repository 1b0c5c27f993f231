"""Connection and call plumbing: address, TLS, token, deadlines, gRPC status to exit code."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import grpc
from google.protobuf.message import Message

from engine_service.entrypoints.cli.output import die, render
from engine_service.v1 import engine_service_pb2 as pb
from engine_service.v1 import engine_service_pb2_grpc as pb_grpc
from service_common.grpc_client import client_channel
from service_common.health_probe import check as health_check
from service_common.rich_errors import violations
from service_common.tls import ClientTls
from service_common.tracing import configure_tracing, instrument_channel

EXIT_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: 2,
    grpc.StatusCode.NOT_FOUND: 3,
    grpc.StatusCode.ALREADY_EXISTS: 4,
    grpc.StatusCode.FAILED_PRECONDITION: 4,
    grpc.StatusCode.UNAVAILABLE: 5,
    grpc.StatusCode.DEADLINE_EXCEEDED: 5,
    grpc.StatusCode.UNAUTHENTICATED: 6,
    grpc.StatusCode.PERMISSION_DENIED: 7,
}
# The engine's readiness: SERVING only on the active engine ("" is liveness: standbys too).
READINESS = pb.DESCRIPTOR.services_by_name["EngineService"].full_name


class Client:
    """The engine as `enginectl` reaches it: where, how long to wait, with which credentials."""

    def __init__(
        self,
        address: str,
        timeout: float,
        as_json: bool,
        token: str | None = None,
        tls: ClientTls | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.as_json = as_json
        self.token = token
        self.tls = tls
        self._stub: pb_grpc.EngineServiceStub | None = None

    @property
    def stub(self) -> pb_grpc.EngineServiceStub:
        if self._stub is None:
            configure_tracing("enginectl")  # a call's trace starts here, its context sent on
            made = client_channel(self.active_address(), self.tls, self.token)
            self._stub = pb_grpc.EngineServiceStub(instrument_channel(made, metrics=False))
        return self._stub

    def active_address(self) -> str:
        """With several addresses (an active engine and standbys), the one that is ready (its
        readiness, the engine service's health, is SERVING)."""
        addresses = [a.strip() for a in self.address.split(",") if a.strip()]
        if len(addresses) == 1:
            return addresses[0]
        for address in addresses:
            try:
                status = health_check(
                    address, READINESS, timeout=min(self.timeout, 3.0), tls=self.tls
                )
                if status == "SERVING":
                    return address
            except grpc.RpcError:
                continue
        die(f"UNAVAILABLE: no engine is SERVING at {', '.join(addresses)}", 5)

    def call(self, method: str, request: Message) -> Any:
        try:
            return getattr(self.stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            fail(exc)

    def show(self, message: Message, human: Callable[[], None]) -> None:
        render(message, self.as_json, human)


def fail(exc: grpc.RpcError) -> NoReturn:
    """Print the call's status and details, then its rich details (a bad field, a failed
    precondition) one per indented line; exit with the code its status maps to."""
    code: grpc.StatusCode = exc.code()
    lines = [f"{code.name}: {exc.details()}", *(f"  {line}" for line in violations(exc))]
    die("\n".join(lines), EXIT_CODES.get(code, 10))


def pages(c: Client, method: str, request: Any, field: str) -> Iterator[Any]:
    while True:
        reply = c.call(method, request)
        yield from getattr(reply, field)
        if not reply.next_page_token:
            return
        request.page_token = reply.next_page_token
