"""Errors a caller can act on, shared by both services; each class is one gRPC status code."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of the errors a service reports to its caller."""


class InvalidArgument(ServiceError):
    """Malformed input; `field` names the request field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def within(self, prefix: str) -> InvalidArgument:
        """The same error, its field named inside `prefix` (`starts[2].copy_image.`)."""
        return InvalidArgument(f"{prefix}{self.field}", self.message)


class NotFound(ServiceError):
    """A named entity does not exist."""


class AlreadyExists(ServiceError):
    """The entity exists already, or a request id was used with other arguments."""


class FailedPrecondition(ServiceError):
    """The operation does not fit the current state (a locked disk, an unfinished task).
    `subject` names the entity (`commands/ID`, `hosts/ID`; empty if none) and `kind` the
    state at fault, as the status's `google.rpc.PreconditionFailure` says them."""

    def __init__(self, message: str, *, subject: str = "", kind: str = "STATE") -> None:
        super().__init__(message)
        self.subject = subject
        self.kind = kind


class ResourceExhausted(ServiceError):
    """Out of a resource (free space, concurrent streams)."""


class Unavailable(ServiceError):
    """A service this one needs, or this one, cannot answer now; the caller may retry."""


class Unauthenticated(ServiceError):
    """No valid credentials."""
