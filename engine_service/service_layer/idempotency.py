"""Client request ids (docs/design.md §12, idempotency): the same id with the same arguments
returns the first result; with other arguments ALREADY_EXISTS."""

from __future__ import annotations

from engine_service.adapters.repository import Repository
from engine_service.domain.requests import ClientRequest
from service_common.ids import require_uuid


def optional_request(rpc: str, request_id: str, **arguments: object) -> ClientRequest | None:
    """The request's id as a ClientRequest, or None when the client sent none."""
    if not request_id:
        return None
    return ClientRequest(rpc, require_uuid("request_id", request_id), dict(arguments))


def first_result(repo: Repository, request: ClientRequest | None) -> str | None:
    """The id made by the first request with this request id; None if there was none."""
    if request is None:
        return None
    return request.answered_by(repo.client_request(request.rpc, request.request_id))


def record_request(repo: Repository, request: ClientRequest | None, result_id: str) -> None:
    if request is not None:
        repo.add_client_request(request.stored(result_id))
