"""Who may call the engine API, and who did: bearer tokens checked by an interceptor.

`Authenticator.decide` is the whole rule over a call's method and metadata, without a socket.
`TokenInterceptor` applies it to every `EngineService` call (health and reflection stay
open). A call it lets through that changes state (not `Get*`, `List*`, `Watch*`) is logged
with the token's name and the client's address, and runs with its `Caller` set, which
`current_caller` gives to the servicer (`ConfirmHostRebooted` records it)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc

from engine_service.entrypoints.tokens import ApiToken, is_read_only
from engine_service.v1 import engine_service_pb2 as pb

log = logging.getLogger("engine_service.audit")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EngineService"].full_name
ANONYMOUS = "anonymous"  # the name logged for a call when no token is configured
_CALLER_TOKEN: ContextVar[str | None] = ContextVar("engine_api_caller_token", default=None)


@dataclass(frozen=True)
class Caller:
    """Who made a call: the name of the token it presented (None when the API is open) and
    the client's address as gRPC gives it (`ipv4:127.0.0.1:41234`)."""

    token: str | None
    peer: str

    @property
    def name(self) -> str:
        """The token's name, or `anonymous`."""
        return self.token or ANONYMOUS

    def __str__(self) -> str:
        return f"token {self.token} from {self.peer}" if self.token else self.peer


def current_caller(peer: str | None) -> Caller:
    """The caller of the state-changing call running on this thread, given its peer (the
    servicer's `context.peer()`): the token name the interceptor set, if any."""
    return Caller(_CALLER_TOKEN.get(), peer or "unknown")


@contextlib.contextmanager
def calling_as(token: str | None) -> Iterator[None]:
    """Run the body as a call made with the token named `token` (None: no token)."""
    reset = _CALLER_TOKEN.set(token)
    try:
        yield
    finally:
        _CALLER_TOKEN.reset(reset)


@dataclass(frozen=True)
class Decision:
    """The verdict on one call: go on as `token` (None when the API is open), or refuse it
    with `code` and `message`."""

    token: ApiToken | None = None
    code: grpc.StatusCode | None = None
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.code is None


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class Authenticator:
    """The token table: which bearer token is whose, and what its role lets it call. With no
    token the API is open and every call goes on anonymously."""

    def __init__(self, tokens: Iterable[ApiToken]) -> None:
        self.tokens = tuple(tokens)
        self._digests = [(_digest(t.secret), t) for t in self.tokens]

    def identify(self, metadata: Any) -> ApiToken | str:
        """The token the call's `authorization: Bearer <secret>` presents, else why not. Every
        token is compared (digests of equal length, in constant time), so the time taken says
        nothing about which one matched or how much of a secret was right."""
        presented = [str(v) for k, v in (metadata or ()) if k == "authorization"]
        if not presented or not presented[0].startswith("Bearer "):
            return "missing bearer token: send the metadata 'authorization: Bearer <token>'"
        offered = _digest(presented[0].removeprefix("Bearer "))
        found: ApiToken | None = None
        for digest, token in self._digests:
            if hmac.compare_digest(offered, digest) and found is None:
                found = token
        return found if found is not None else "invalid bearer token"

    def decide(self, method: str, metadata: Any) -> Decision:
        """Whether a call of `method` (its bare name, `AddDisk`) with this metadata goes on."""
        if not self.tokens:
            return Decision()
        token = self.identify(metadata)
        if isinstance(token, str):
            return Decision(code=grpc.StatusCode.UNAUTHENTICATED, message=token)
        if not token.may_call(method):
            return Decision(
                token,
                grpc.StatusCode.PERMISSION_DENIED,
                f"token {token.name!r} is read-only (it may call Get*, List* and Watch*), "
                f"not {method}",
            )
        return Decision(token)


def refusal(handler: Any, code: grpc.StatusCode, message: str, note: str = "") -> Any:
    """A handler, of the same arity as `handler`, that ends the call with `code` and
    `message`; with `note`, it logs a warning naming the method and the client first."""

    def refuse(request: Any, context: grpc.ServicerContext) -> Any:
        if note:
            log.warning("%s from %s", note, context.peer())
        context.abort(code, message)

    if handler is not None and handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)


def audited(handler: Any, method: str, token: str | None) -> Any:
    """`handler` (a unary one) logging its call with who made it, and running as that caller."""
    behavior = handler.unary_unary

    def call(request: Any, context: grpc.ServicerContext) -> Any:
        caller = Caller(token, context.peer() or "unknown")
        log.info(
            "%s by %s",
            method,
            caller if token else f"{ANONYMOUS} from {caller.peer}",
            extra={"rpc": method, "token": caller.name, "peer": caller.peer},
        )
        with calling_as(token):
            return behavior(request, context)

    return grpc.unary_unary_rpc_method_handler(
        call,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class TokenInterceptor(grpc.ServerInterceptor):
    """With tokens configured, engine API calls need `authorization: Bearer <token>`, and a
    read-only token only reads; health and reflection stay open. Every state-changing call let
    through is logged with the token's name and the client's address."""

    def __init__(self, tokens: Sequence[ApiToken] | Authenticator) -> None:
        self.authenticator = tokens if isinstance(tokens, Authenticator) else Authenticator(tokens)

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        service, _, method = details.method.lstrip("/").partition("/")
        if service != SERVICE_NAME:
            return continuation(details)
        decision = self.authenticator.decide(method, details.invocation_metadata)
        handler = continuation(details)
        if decision.code is not None:
            note = ""
            if decision.code == grpc.StatusCode.PERMISSION_DENIED and decision.token:
                note = f"PERMISSION_DENIED: {method} by read-only token {decision.token.name}"
            return refusal(handler, decision.code, decision.message, note)
        if is_read_only(method) or handler is None or handler.unary_unary is None:
            return handler
        return audited(handler, method, decision.token.name if decision.token else None)
