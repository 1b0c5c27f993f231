"""AddDisk: a new disk whose volume one CreateVolume child writes on a host."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

from engine_service.adapters.repository import Repository
from engine_service.domain.commands import CommandBatch
from engine_service.domain.inventory import Disk, DiskStatus, EntityKind
from engine_service.domain.tasks import TaskPlan, Verb, new_id
from engine_service.service_layer.commands.base import CommandBase, Params
from service_common.errors import NotFound


@dataclass(frozen=True)
class AddDiskParams(Params):
    """The disk to make; its ids are chosen when the command is created."""

    name: str
    storage_domain_id: str
    size_bytes: int
    disk_id: str
    image_id: str


@dataclass(frozen=True)
class CreateVolumeParams(Params):
    """The CreateVolume arguments (request_id aside)."""

    storage_domain_id: str
    image_id: str
    size_bytes: int


class AddDisk(CommandBase[AddDiskParams]):
    """A new disk, LOCKED until its volume is written; a failed one leaves no disk row."""

    action_type = "AddDisk"
    params_type = AddDiskParams

    @classmethod
    def create(cls, name: str, storage_domain_id: str, size_bytes: int) -> AddDisk:
        disk_id = new_id()
        return cls(
            AddDiskParams(name, storage_domain_id, size_bytes, disk_id, new_id()), target_id=disk_id
        )

    def again(self) -> AddDisk:
        p = self.params
        return AddDisk.create(p.name, p.storage_domain_id, p.size_bytes)

    def validate(self, repo: Repository) -> None:
        if repo.storage_domain(self.params.storage_domain_id) is None:
            raise NotFound(f"storage_domain_id: no storage domain {self.params.storage_domain_id}")

    def build_child_commands(self) -> list[CommandBase[Any]]:
        p = self.params
        return [CreateVolume(CreateVolumeParams(p.storage_domain_id, p.image_id, p.size_bytes))]

    def entity_locks(self) -> list[tuple[EntityKind, str]]:
        return [(EntityKind.DISK, self.params.disk_id)]

    def create_locked_entities(self, repo: Repository) -> Disk:
        p = self.params
        disk = Disk(p.disk_id, p.name, p.storage_domain_id, p.image_id, p.size_bytes)
        repo.add_disks([disk])
        return disk

    @classmethod
    def succeed_many(cls, repo: Repository, commands: Sequence[Self]) -> None:
        repo.set_disk_status([c.params.disk_id for c in commands], DiskStatus.OK)

    @classmethod
    def fail_many(cls, repo: Repository, batch: CommandBatch) -> None:
        repo.delete_disks_written_by(batch)  # their images are deleted by compensation


class CreateVolume(CommandBase[CreateVolumeParams]):
    """The child of AddDisk: one CreateVolume task."""

    action_type = "CreateVolume"
    params_type = CreateVolumeParams

    def task_plan(self) -> TaskPlan:
        return TaskPlan(Verb.CREATE_VOLUME, self.params.to_json())
