"""What a task was asked to do: its verb and its spec (the arguments of its start RPC).

A spec is a plain value: two requests are the same request when their specs are equal, and a spec
is stored in the task's record as `to_record` gives it. Every spec has a `target`, the image the
task writes (or, for RemoveImage, removes), and `reads()`, the images it reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from service_common.errors import InvalidArgument

MAX_VOLUME_BYTES = 1 << 40
MAX_FILL_PATTERN_BYTES = 4096


class Verb(StrEnum):
    """The kinds of task the agent runs, named as VDSM names the verbs."""

    CREATE_VOLUME = "CreateVolume"
    COPY_IMAGE = "CopyImage"
    REMOVE_IMAGE = "RemoveImage"


@dataclass(frozen=True)
class ImageRef:
    """An image: its storage domain and its id."""

    storage_domain_id: str
    image_id: str


@dataclass(frozen=True)
class CreateVolumeSpec:
    """A CreateVolume request: a new image of `size_bytes`, filled with a repeated pattern."""

    target: ImageRef
    size_bytes: int
    fill_pattern: bytes = b""

    verb = Verb.CREATE_VOLUME

    def check_bounds(self) -> None:
        """Refuse a size or a fill pattern the agent does not write."""
        if not 0 < self.size_bytes <= MAX_VOLUME_BYTES:
            raise InvalidArgument(
                "size_bytes", f"must be from 1 to {MAX_VOLUME_BYTES}, not {self.size_bytes}"
            )
        if len(self.fill_pattern) > MAX_FILL_PATTERN_BYTES:
            raise InvalidArgument(
                "fill_pattern",
                f"is {len(self.fill_pattern)} bytes; at most {MAX_FILL_PATTERN_BYTES}",
            )

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
    """A CopyImage request: copy the `source` image to a new `target` image."""

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


@dataclass(frozen=True)
class RemoveImageSpec:
    """A RemoveImage request: remove the `target` image (and stray partial files of it).

    It holds its image as a writer does: while it is unfinished no other task may read, write
    or remove that image (TaskBook)."""

    target: ImageRef

    verb = Verb.REMOVE_IMAGE

    def reads(self) -> tuple[ImageRef, ...]:
        return ()

    def to_record(self) -> dict[str, Any]:
        return {
            "storage_domain_id": self.target.storage_domain_id,
            "image_id": self.target.image_id,
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> RemoveImageSpec:
        return cls(ImageRef(rec["storage_domain_id"], rec["image_id"]))


TaskSpec = CreateVolumeSpec | CopyImageSpec | RemoveImageSpec

SPEC_TYPES: dict[Verb, type[TaskSpec]] = {
    Verb.CREATE_VOLUME: CreateVolumeSpec,
    Verb.COPY_IMAGE: CopyImageSpec,
    Verb.REMOVE_IMAGE: RemoveImageSpec,
}
