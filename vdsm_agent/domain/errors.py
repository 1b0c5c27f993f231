"""Errors a caller can act on. The gRPC entrypoint maps each class to one status code."""

from __future__ import annotations


class AgentError(Exception):
    """Base of the errors the agent reports to its caller."""


class InvalidArgument(AgentError):
    """Malformed input; `field` names the request field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class NotFound(AgentError):
    """A named domain, image or task does not exist."""


class AlreadyExists(AgentError):
    """An image exists already, or a request id was used with other arguments."""


class FailedPrecondition(AgentError):
    """The operation does not fit the current state (e.g. clearing an unfinished task)."""


class ResourceExhausted(AgentError):
    """Not enough free space in the storage root."""


class Unavailable(AgentError):
    """The agent is shutting down and accepts no new task; retry on this or another host."""
