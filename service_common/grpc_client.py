"""Client-side helpers: a channel that sends a bearer token with every call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from service_common.tls import ClientTls, channel


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self.metadata = (("authorization", f"Bearer {token}"),)

    def _with_token(self, details: Any) -> Any:
        return details._replace(metadata=tuple(details.metadata or ()) + self.metadata)

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return continuation(self._with_token(details), request)


def client_channel(
    address: str, tls: ClientTls | None = None, token: str | None = None
) -> grpc.Channel:
    """A channel to `address`: TLS if `tls`, sending `token` as a bearer token if given."""
    made = channel(address, tls)
    return grpc.intercept_channel(made, _BearerToken(token)) if token else made
