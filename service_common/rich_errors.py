"""Errors as rich gRPC statuses: beside the status message clients already read (kept exactly),
INVALID_ARGUMENT carries a `google.rpc.BadRequest` naming the field at fault and
FAILED_PRECONDITION a `google.rpc.PreconditionFailure` (`type`, `subject`, `description`), in
the `grpc-status-details-bin` trailer that `grpc_status.rpc_status.from_call` reads."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from service_common import errors


def details_of(exc: Exception) -> list[Message]:
    """The `google.rpc` error details that say what `exc` is about (none for most errors)."""
    if isinstance(exc, errors.InvalidArgument):
        message = str(exc)
        prefix = f"{exc.field}: "
        description = message[len(prefix) :] if message.startswith(prefix) else message
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=exc.field, description=description
        )
        return [error_details_pb2.BadRequest(field_violations=[violation])]
    if isinstance(exc, errors.FailedPrecondition):
        failure = error_details_pb2.PreconditionFailure.Violation(
            type=exc.kind, subject=exc.subject, description=str(exc)
        )
        return [error_details_pb2.PreconditionFailure(violations=[failure])]
    return []


def rich_status(code: grpc.StatusCode, exc: Exception) -> grpc.Status:
    """The status to abort with: `code`, `str(exc)` as its message, and `details_of(exc)`."""
    packed = []
    for detail in details_of(exc):
        wrapped = any_pb2.Any()
        wrapped.Pack(detail)
        packed.append(wrapped)
    status = status_pb2.Status(code=code.value[0], message=str(exc), details=packed)
    return rpc_status.to_status(status)


def violations(call: grpc.Call | grpc.RpcError) -> list[str]:
    """A failed call's error details as lines for a person: `field NAME: WHY` for a bad
    argument, `TYPE SUBJECT: WHY` for a precondition; none if it has none (or an old server)."""
    if not hasattr(call, "trailing_metadata"):
        return []
    try:
        status = rpc_status.from_call(call)
    except ValueError:  # details that do not match the status's code or message
        return []
    lines: list[str] = []
    for detail in status.details if status is not None else ():
        bad, failure = error_details_pb2.BadRequest(), error_details_pb2.PreconditionFailure()
        if detail.Unpack(bad):
            lines += [f"field {v.field}: {v.description}" for v in bad.field_violations]
        elif detail.Unpack(failure):
            lines += [
                " ".join(filter(None, [v.type, v.subject])) + f": {v.description}"
                for v in failure.violations
            ]
    return lines
