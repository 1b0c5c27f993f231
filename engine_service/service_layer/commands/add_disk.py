"""AddDisk: a new disk whose volume one CreateVolume child writes on a host."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select

from engine_service.adapters.orm import DiskRow, StorageDomainRow
from engine_service.adapters.repository import Repository
from engine_service.domain.model import DiskStatus
from engine_service.service_layer.commands.base import (
    CommandBase,
    TaskPlan,
    new_id,
)
from service_common.errors import NotFound


class AddDisk(CommandBase):
    """params: name, storage_domain_id, size_bytes, disk_id, image_id."""

    action_type = "AddDisk"

    @classmethod
    def create(cls, name: str, storage_domain_id: str, size_bytes: int) -> AddDisk:
        disk_id = new_id()
        params = {
            "name": name,
            "storage_domain_id": storage_domain_id,
            "size_bytes": size_bytes,
            "disk_id": disk_id,
            "image_id": new_id(),
        }
        return cls(params, target_id=disk_id)

    def validate(self, repo: Repository) -> None:
        if repo.get(StorageDomainRow, self.params["storage_domain_id"]) is None:
            raise NotFound(
                f"storage_domain_id: no storage domain {self.params['storage_domain_id']}"
            )

    def build_child_commands(self) -> list[CommandBase]:
        p = self.params
        child = CreateVolume(
            {
                "storage_domain_id": p["storage_domain_id"],
                "image_id": p["image_id"],
                "size_bytes": p["size_bytes"],
            }
        )
        return [child]

    def entity_locks(self) -> list[tuple[str, str]]:
        return [("disk", self.params["disk_id"])]

    def create_locked_entities(self, repo: Repository) -> None:
        p = self.params
        repo.insert(
            DiskRow(
                disk_id=p["disk_id"],
                name=p["name"],
                storage_domain_id=p["storage_domain_id"],
                image_id=p["image_id"],
                size_bytes=p["size_bytes"],
                status=DiskStatus.LOCKED.value,
            )
        )

    def end_successfully(self, repo: Repository) -> None:
        repo.set_disk_status([self.params["disk_id"]], DiskStatus.OK.value)

    @classmethod
    def fail_many(cls, repo: Repository, roots: Select[Any]) -> None:
        repo.delete_disks_written_by(roots)  # their images are deleted by compensation


class CreateVolume(CommandBase):
    """The child of AddDisk: one CreateVolume task. params: storage_domain_id, image_id,
    size_bytes."""

    action_type = "CreateVolume"

    def task_plan(self) -> TaskPlan:
        args: dict[str, Any] = dict(self.params)
        return TaskPlan(
            "CreateVolume", args, self.params["storage_domain_id"], self.params["image_id"]
        )
