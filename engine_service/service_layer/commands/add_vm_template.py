"""AddVmTemplate: a template made of copies of a VM's disks, one CreateImageTemplate child
(one CopyImage task) per disk. A failed or cancelled template leaves nothing behind: its copies
and its row are deleted and the name is free again (design section 10)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select

from engine_service.adapters.orm import (
    DiskRow,
    StorageDomainRow,
    TemplateDiskRow,
    TemplateRow,
)
from engine_service.adapters.repository import Repository
from engine_service.domain.model import DiskStatus, TemplateStatus
from engine_service.service_layer.commands.base import (
    CommandBase,
    TaskPlan,
    new_id,
)
from service_common.errors import AlreadyExists, FailedPrecondition, NotFound


class AddVmTemplate(CommandBase):
    """params: vm_id, name, destination_storage_domain_id, template_id, and after
    build_child_commands, copies: [{source_disk_id, copy_disk_id, dst_image_id}]."""

    action_type = "AddVmTemplate"

    @classmethod
    def create(cls, vm_id: str, name: str, destination_storage_domain_id: str) -> AddVmTemplate:
        template_id = new_id()
        params = {
            "vm_id": vm_id,
            "name": name,
            "destination_storage_domain_id": destination_storage_domain_id,
            "template_id": template_id,
            "copies": [],
        }
        return cls(params, target_id=template_id)

    def validate(self, repo: Repository) -> None:
        p = self.params
        disks = repo.vm_disks_and_locks(p["vm_id"])
        if disks is None:
            raise NotFound(f"vm_id: no VM {p['vm_id']}")
        if repo.get(StorageDomainRow, p["destination_storage_domain_id"]) is None:
            raise NotFound(
                f"destination_storage_domain_id: no storage domain "
                f"{p['destination_storage_domain_id']}"
            )
        existing = repo.template_by_name(p["name"])
        if existing is not None:
            raise AlreadyExists(f"name: template {p['name']!r} exists ({existing.template_id})")
        if not disks:
            raise FailedPrecondition(f"VM {p['vm_id']} has no disks to copy")
        for disk, _ in disks:
            if disk.status != DiskStatus.OK.value:
                raise FailedPrecondition(f"disk {disk.disk_id} is {disk.status}, not OK")
        for disk, holder in disks:
            if holder is not None:
                raise FailedPrecondition(f"disk {disk.disk_id} is locked by command {holder}")
        self._disks = [disk for disk, _ in disks]

    def build_child_commands(self) -> list[CommandBase]:
        p = self.params
        p["copies"] = [
            {"source_disk_id": d.disk_id, "copy_disk_id": new_id(), "dst_image_id": new_id()}
            for d in self._disks
        ]
        return [
            CreateImageTemplate(
                {
                    "src_storage_domain_id": disk.storage_domain_id,
                    "src_image_id": disk.image_id,
                    "dst_storage_domain_id": p["destination_storage_domain_id"],
                    "dst_image_id": copy["dst_image_id"],
                }
            )
            for disk, copy in zip(self._disks, p["copies"], strict=True)
        ]

    def _source_ids(self) -> list[str]:
        return [c["source_disk_id"] for c in self.params["copies"]]

    def _copy_ids(self) -> list[str]:
        return [c["copy_disk_id"] for c in self.params["copies"]]

    def entity_locks(self) -> list[tuple[str, str]]:
        return [("vm", self.params["vm_id"])] + [("disk", d) for d in self._source_ids()]

    def create_locked_entities(self, repo: Repository) -> None:
        p = self.params
        repo.insert(
            TemplateRow(
                template_id=p["template_id"],
                name=p["name"],
                vm_id=p["vm_id"],
                status=TemplateStatus.LOCKED.value,
            ),
            *(
                DiskRow(
                    disk_id=copy["copy_disk_id"],
                    name=f"{p['name']}/{disk.name}",
                    storage_domain_id=p["destination_storage_domain_id"],
                    image_id=copy["dst_image_id"],
                    size_bytes=disk.size_bytes,
                    status=DiskStatus.LOCKED.value,
                )
                for disk, copy in zip(self._disks, p["copies"], strict=True)
            ),
            *(
                TemplateDiskRow(template_id=p["template_id"], position=i, disk_id=copy_id)
                for i, copy_id in enumerate(self._copy_ids())
            ),
        )
        repo.set_disk_status(self._source_ids(), DiskStatus.LOCKED.value)

    def end_successfully(self, repo: Repository) -> None:
        template = repo.get(TemplateRow, self.params["template_id"])
        assert template is not None
        template.status = TemplateStatus.OK.value
        repo.set_disk_status(self._copy_ids() + self._source_ids(), DiskStatus.OK.value)

    @classmethod
    def fail_many(cls, repo: Repository, roots: Select[Any]) -> None:
        repo.delete_templates_made_by(roots)
        repo.delete_disks_written_by(roots)  # the copies; their images go by compensation
        repo.unlock_disks_locked_by(roots)  # the sources


class CreateImageTemplate(CommandBase):
    """A child of AddVmTemplate: one CopyImage task. params: the CopyImage arguments."""

    action_type = "CreateImageTemplate"

    def task_plan(self) -> TaskPlan:
        args: dict[str, Any] = dict(self.params)
        return TaskPlan(
            "CopyImage", args, self.params["dst_storage_domain_id"], self.params["dst_image_id"]
        )
