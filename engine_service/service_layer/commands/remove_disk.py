"""RemoveDisk: a disk deleted by one RemoveImage task on a host (VDSM's image deletion).

A removal is never undone: once accepted, the disk goes whatever happens. If the command fails
or is cancelled, its row is deleted anyway and compensation finishes the removal (the image is
deleted, through a host, as no disk owns it any more): a half-removed disk helps no one, and an
image nobody owns would be debris (docs/design.md §16)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Self

from engine_service.adapters.repository import Repository
from engine_service.domain.commands import CommandBatch
from engine_service.domain.inventory import DiskStatus, EntityKind
from engine_service.domain.tasks import TaskPlan, Verb
from engine_service.service_layer.commands.base import CommandBase, Params
from service_common.errors import FailedPrecondition, NotFound


@dataclass(frozen=True)
class RemoveDiskParams(Params):
    """The disk to remove; where its image is, read when the command is validated."""

    disk_id: str
    storage_domain_id: str = ""
    image_id: str = ""


@dataclass(frozen=True)
class RemoveImageParams(Params):
    """The RemoveImage arguments (request_id aside)."""

    storage_domain_id: str
    image_id: str


def check_disk_free(repo: Repository, disk_id: str, field: str, doing: str) -> None:
    """A disk a command may remove or move: it exists, no VM or template uses it, and no
    command holds it. Raises NotFound or FailedPrecondition naming why."""
    disk = repo.disk(disk_id)
    if disk is None:
        raise NotFound(f"{field}: no disk {disk_id}")
    subject = f"disks/{disk_id}"
    vms, templates = repo.disk_users(disk_id)
    if vms:
        raise FailedPrecondition(
            f"disk {disk_id} is used by VM {vms[0]}: it cannot be {doing}",
            subject=subject,
            kind="IN_USE",
        )
    if templates:
        raise FailedPrecondition(
            f"disk {disk_id} belongs to template {templates[0]}: it cannot be {doing} "
            "(remove the template instead)",
            subject=subject,
            kind="IN_USE",
        )
    holder = repo.lock_holder(EntityKind.DISK, disk_id)
    if holder is not None or disk.status is DiskStatus.LOCKED:
        raise FailedPrecondition(
            f"disk {disk_id} is locked by command {holder or 'unknown'}",
            subject=subject,
            kind="LOCKED",
        )


class RemoveDisk(CommandBase[RemoveDiskParams]):
    """A disk LOCKED while its image is removed, gone when the command ends."""

    action_type = "RemoveDisk"
    params_type = RemoveDiskParams

    @classmethod
    def create(cls, disk_id: str) -> RemoveDisk:
        return cls(RemoveDiskParams(disk_id), target_id=disk_id)

    def again(self) -> RemoveDisk:
        return RemoveDisk.create(self.params.disk_id)

    def validate(self, repo: Repository) -> None:
        check_disk_free(repo, self.params.disk_id, "disk_id", "removed")
        disk = repo.disk(self.params.disk_id)
        assert disk is not None
        self.params = replace(
            self.params, storage_domain_id=disk.storage_domain_id, image_id=disk.image_id
        )

    def build_child_commands(self) -> list[CommandBase[Any]]:
        p = self.params
        return [RemoveImage(RemoveImageParams(p.storage_domain_id, p.image_id))]

    def entity_locks(self) -> list[tuple[EntityKind, str]]:
        return [(EntityKind.DISK, self.params.disk_id)]

    def create_locked_entities(self, repo: Repository) -> None:
        repo.set_disk_status([self.params.disk_id], DiskStatus.LOCKED)

    @classmethod
    def succeed_many(cls, repo: Repository, commands: Sequence[Self]) -> None:
        repo.delete_disks([c.params.disk_id for c in commands])

    @classmethod
    def fail_many(cls, repo: Repository, batch: CommandBatch) -> None:
        repo.delete_disks_locked_by(batch)  # their images go by compensation


class RemoveImage(CommandBase[RemoveImageParams]):
    """A child of the removals and of MoveDisk's second phase: one RemoveImage task."""

    action_type = "RemoveImage"
    params_type = RemoveImageParams

    def task_plan(self) -> TaskPlan:
        return TaskPlan(Verb.REMOVE_IMAGE, self.params.to_json())
