"""A failed call as one exception: its status, its message, and the rich details that say which
field was wrong or which precondition failed (`google.rpc.BadRequest`, `PreconditionFailure`)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass(frozen=True)
class PreconditionViolation:
    type: str
    subject: str
    description: str


class CallError(Exception):
    """The engine answered a call with an error (after every retry the policy allowed)."""

    def __init__(
        self,
        method: str,
        code: grpc.StatusCode,
        message: str,
        attempts: int = 1,
        field_violations: tuple[FieldViolation, ...] = (),
        precondition_violations: tuple[PreconditionViolation, ...] = (),
    ) -> None:
        super().__init__(f"{method}: {code.name}: {message}")
        self.method = method
        self.code = code
        self.message = message
        self.attempts = attempts
        self.field_violations = field_violations
        self.precondition_violations = precondition_violations

    @classmethod
    def of(cls, method: str, error: grpc.RpcError, attempts: int = 1) -> CallError:
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        message = error.details() if hasattr(error, "details") else str(error)
        fields, preconditions = _details(error)
        return cls(method, code, message or "", attempts, fields, preconditions)


def _details(
    error: grpc.RpcError,
) -> tuple[tuple[FieldViolation, ...], tuple[PreconditionViolation, ...]]:
    if not hasattr(error, "trailing_metadata"):
        return (), ()
    try:
        status = rpc_status.from_call(error)
    except ValueError:  # details that do not match the status's code or message
        return (), ()
    fields: list[FieldViolation] = []
    preconditions: list[PreconditionViolation] = []
    for detail in status.details if status is not None else ():
        bad, failure = error_details_pb2.BadRequest(), error_details_pb2.PreconditionFailure()
        if detail.Unpack(bad):
            fields += [FieldViolation(v.field, v.description) for v in bad.field_violations]
        elif detail.Unpack(failure):
            preconditions += [
                PreconditionViolation(v.type, v.subject, v.description) for v in failure.violations
            ]
    return tuple(fields), tuple(preconditions)
