"""Idempotent requests: the same request id with the same arguments makes one thing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine_service.domain.clock import utcnow
from service_common.errors import AlreadyExists


@dataclass(frozen=True)
class ClientRequest:
    """A client's request id for one RPC, and what the request asked."""

    rpc: str
    request_id: str
    arguments: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.arguments, sort_keys=True).encode()).hexdigest()

    def answered_by(self, earlier: StoredRequest | None) -> str | None:
        """The id the first request with this id made; None if there was none; ALREADY_EXISTS
        if that request asked for something else."""
        if earlier is None:
            return None
        if earlier.fingerprint != self.fingerprint:
            raise AlreadyExists(
                f"request_id: {self.request_id} was already used for a different {self.rpc} "
                "request; use a new request id"
            )
        return earlier.result_id

    def stored(self, result_id: str) -> StoredRequest:
        return StoredRequest(self.rpc, self.request_id, self.fingerprint, result_id)


@dataclass(frozen=True)
class StoredRequest:
    """A request id as recorded: which RPC, what it asked (hashed) and what it made."""

    rpc: str
    request_id: str
    fingerprint: str
    result_id: str
    created_at: datetime = field(default_factory=utcnow)  # retention deletes it after a while


class Conflict(Exception):
    """A concurrent transaction took a name, a lock or a request id first (a uniqueness rule
    of the database); validating again says which."""
