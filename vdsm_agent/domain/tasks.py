"""Agent tasks: what was asked (a spec), and where the work is (state, result, progress).

States and results carry VDSM's wire strings, which is also how they are stored and logged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from service_common.errors import AlreadyExists, FailedPrecondition


class TaskState(StrEnum):
    INIT = "init"
    RUNNING = "running"
    FINISHED = "finished"
    ABORTING = "aborting"
    CLEANING = "cleaning"


class TaskResult(StrEnum):
    NONE = ""
    SUCCESS = "success"
    FAILURE = "failure"
    CLEAN_SUCCESS = "cleanSuccess"
    CLEAN_FAILURE = "cleanFailure"


class Verb(StrEnum):
    CREATE_VOLUME = "CreateVolume"
    COPY_IMAGE = "CopyImage"


class Code(IntEnum):
    """The outcome code of a task, as google.rpc.Code numbers."""

    OK = 0
    CANCELLED = 1
    NOT_FOUND = 5
    RESOURCE_EXHAUSTED = 8
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15


@dataclass(frozen=True)
class ImageRef:
    storage_domain_id: str
    image_id: str


@dataclass(frozen=True)
class CreateVolumeSpec:
    target: ImageRef
    size_bytes: int
    fill_pattern: bytes = b""

    verb = Verb.CREATE_VOLUME

    def reads(self) -> tuple[ImageRef, ...]:
        return ()

    def to_record(self) -> dict[str, Any]:
        return {
            "storage_domain_id": self.target.storage_domain_id,
            "image_id": self.target.image_id,
            "size_bytes": self.size_bytes,
            "fill_pattern": self.fill_pattern.hex(),
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> CreateVolumeSpec:
        return cls(
            ImageRef(rec["storage_domain_id"], rec["image_id"]),
            int(rec["size_bytes"]),
            bytes.fromhex(rec["fill_pattern"]),
        )


@dataclass(frozen=True)
class CopyImageSpec:
    source: ImageRef
    target: ImageRef

    verb = Verb.COPY_IMAGE

    def reads(self) -> tuple[ImageRef, ...]:
        return (self.source,)

    def to_record(self) -> dict[str, Any]:
        return {
            "src_storage_domain_id": self.source.storage_domain_id,
            "src_image_id": self.source.image_id,
            "dst_storage_domain_id": self.target.storage_domain_id,
            "dst_image_id": self.target.image_id,
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> CopyImageSpec:
        return cls(
            ImageRef(rec["src_storage_domain_id"], rec["src_image_id"]),
            ImageRef(rec["dst_storage_domain_id"], rec["dst_image_id"]),
        )


TaskSpec = CreateVolumeSpec | CopyImageSpec

_SPEC_TYPES: dict[Verb, type[CreateVolumeSpec] | type[CopyImageSpec]] = {
    Verb.CREATE_VOLUME: CreateVolumeSpec,
    Verb.COPY_IMAGE: CopyImageSpec,
}


@dataclass
class Task:
    """One accepted job. Mutated only by the service layer, under its lock."""

    task_id: str
    request_id: str
    spec: TaskSpec
    state: TaskState = TaskState.INIT
    result: TaskResult = TaskResult.NONE
    progress_percent: int = 0
    message: str = ""
    code: Code = Code.OK
    accepted_at: float = field(default_factory=time.time)

    @property
    def verb(self) -> Verb:
        return self.spec.verb

    @property
    def finished(self) -> bool:
        return self.state is TaskState.FINISHED

    def check_same_request(self, spec: TaskSpec) -> None:
        """A reused request id is fine only for the very same request."""
        if spec != self.spec:
            raise AlreadyExists(
                f"request_id {self.request_id} was already used for another request "
                f"({self.verb.value} task {self.task_id}); use a new request id"
            )

    def start(self) -> None:
        self.state = TaskState.RUNNING

    def begin_abort(self) -> None:
        self.state = TaskState.ABORTING

    def begin_cleaning(self) -> None:
        self.state = TaskState.CLEANING

    def finish(self, result: TaskResult, code: Code = Code.OK, message: str = "") -> None:
        self.state = TaskState.FINISHED
        self.result = result
        self.code = code
        self.message = message
        if result is TaskResult.SUCCESS:
            self.progress_percent = 100

    def check_clearable(self) -> None:
        if not self.finished:
            raise FailedPrecondition(
                f"task {self.task_id} is {self.state.value}, not finished: stop it and wait "
                "for it to finish before clearing it"
            )

    def to_record(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "request_id": self.request_id,
            "verb": self.verb.value,
            "spec": self.spec.to_record(),
            "state": self.state.value,
            "result": self.result.value,
            "progress_percent": self.progress_percent,
            "message": self.message,
            "code": int(self.code),
            "accepted_at": self.accepted_at,
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Task:
        verb = Verb(rec["verb"])
        return cls(
            task_id=rec["task_id"],
            request_id=rec["request_id"],
            spec=_SPEC_TYPES[verb].from_record(rec["spec"]),
            state=TaskState(rec["state"]),
            result=TaskResult(rec["result"]),
            progress_percent=int(rec["progress_percent"]),
            message=rec["message"],
            code=Code(rec["code"]),
            accepted_at=float(rec["accepted_at"]),
        )
