"""MoveDisk: a disk moved to another storage domain in two phases, the framework's first
command in phases (docs/design.md §16).

1. copy: one CopyImage task copies the image to the destination (the agent verifies the copy).
2. remove the source: in the transaction that records phase 1's success, the disk is switched
   to its verified copy and the RemoveImage placeholder of the source is committed; then it is
   sent.

The source is deleted only after its copy is verified and recorded as the disk. A failure or
cancel in phase 1 leaves the disk where it was (the copy is compensated: deleted); in phase 2 the
disk stays at the destination and compensation finishes removing the source, which no disk owns
any more. Either way the disk is OK again and no image is left behind."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Self

from engine_service.adapters.repository import Repository
from engine_service.domain.commands import CommandBatch
from engine_service.domain.inventory import DiskStatus, EntityKind
from engine_service.domain.tasks import TaskPlan, Verb, new_id
from engine_service.service_layer.commands.add_vm_template import CopyImageParams
from engine_service.service_layer.commands.base import CommandBase, Params
from engine_service.service_layer.commands.remove_disk import (
    RemoveImage,
    RemoveImageParams,
    check_disk_free,
)
from service_common.errors import FailedPrecondition, NotFound


@dataclass(frozen=True)
class MoveDiskParams(Params):
    """The disk, where it goes, the image id of its copy there, and where it was (read when
    the command is validated)."""

    disk_id: str
    destination_storage_domain_id: str
    dst_image_id: str
    src_storage_domain_id: str = ""
    src_image_id: str = ""


class MoveDisk(CommandBase[MoveDiskParams]):
    """A disk LOCKED while it is copied, then switched to the copy while its source is
    removed; OK at the end, wherever the end found it."""

    action_type = "MoveDisk"
    params_type = MoveDiskParams
    has_phases = True

    @classmethod
    def create(cls, disk_id: str, destination_storage_domain_id: str) -> MoveDisk:
        params = MoveDiskParams(disk_id, destination_storage_domain_id, new_id())
        return cls(params, target_id=disk_id)

    def again(self) -> MoveDisk:
        return MoveDisk.create(self.params.disk_id, self.params.destination_storage_domain_id)

    def validate(self, repo: Repository) -> None:
        p = self.params
        check_disk_free(repo, p.disk_id, "disk_id", "moved")
        if repo.storage_domain(p.destination_storage_domain_id) is None:
            raise NotFound(
                f"destination_storage_domain_id: no storage domain "
                f"{p.destination_storage_domain_id}"
            )
        disk = repo.disk(p.disk_id)
        assert disk is not None
        if (why := disk.unusable_because()) is not None:
            raise FailedPrecondition(why, subject=f"disks/{p.disk_id}", kind=disk.status.value)
        if disk.storage_domain_id == p.destination_storage_domain_id:
            raise FailedPrecondition(
                f"disk {p.disk_id} is in storage domain {disk.storage_domain_id} already",
                subject=f"disks/{p.disk_id}",
                kind="IN_PLACE",
            )
        self.params = replace(
            p, src_storage_domain_id=disk.storage_domain_id, src_image_id=disk.image_id
        )

    def build_child_commands(self) -> list[CommandBase[Any]]:
        p = self.params
        copy = CopyImageParams(
            p.src_storage_domain_id, p.src_image_id, p.destination_storage_domain_id, p.dst_image_id
        )
        return [CopyDiskImage(copy)]

    def phase_name(self, phase: int) -> str:
        return "copy" if phase == 1 else "remove the source image"

    def next_phase(
        self, repo: Repository, children: list[CommandBase[Any]]
    ) -> list[CommandBase[Any]]:
        if any(isinstance(c, RemoveImage) for c in children):
            return []  # the source is removed: done
        p = self.params
        # The copy is verified (the agent compared it) and recorded: it is the disk now.
        repo.move_disk(p.disk_id, p.destination_storage_domain_id, p.dst_image_id)
        return [RemoveImage(RemoveImageParams(p.src_storage_domain_id, p.src_image_id))]

    def entity_locks(self) -> list[tuple[EntityKind, str]]:
        return [(EntityKind.DISK, self.params.disk_id)]

    def create_locked_entities(self, repo: Repository) -> None:
        repo.set_disk_status([self.params.disk_id], DiskStatus.LOCKED)

    @classmethod
    def succeed_many(cls, repo: Repository, commands: Sequence[Self]) -> None:
        repo.set_disk_status([c.params.disk_id for c in commands], DiskStatus.OK)

    @classmethod
    def fail_many(cls, repo: Repository, batch: CommandBatch) -> None:
        # OK where it is: at the source (its copy is compensated) or, after phase 1, at the
        # destination (the source's removal is finished by compensation).
        repo.unlock_disks_locked_by(batch)


class CopyDiskImage(CommandBase[CopyImageParams]):
    """MoveDisk's first phase: one CopyImage task."""

    action_type = "CopyDiskImage"
    params_type = CopyImageParams

    def task_plan(self) -> TaskPlan:
        return TaskPlan(Verb.COPY_IMAGE, self.params.to_json())
