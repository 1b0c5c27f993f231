"""AddVmFromTemplate: a new VM whose disks are copies of a template's, one CreateCloneOfTemplate
child (one CopyImage task) per disk. A failed or cancelled one leaves nothing behind: the VM,
its disks and their copies are deleted (compensation deletes the images)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from engine_service.adapters.repository import Repository
from engine_service.domain.commands import CommandBatch
from engine_service.domain.inventory import DiskStatus, EntityKind, TemplateStatus, Vm
from engine_service.domain.tasks import TaskPlan, Verb, new_id
from engine_service.service_layer.commands.add_vm_template import (
    CopyImageParams,
    TemplateCopy,
    copy_plans,
    locked_copies,
    new_copies,
)
from engine_service.service_layer.commands.base import CommandBase, Params
from service_common.errors import FailedPrecondition, NotFound


@dataclass(frozen=True)
class AddVmFromTemplateParams(Params):
    """The VM to make; `copies` (a template disk, its copy) are chosen when it is built."""

    template_id: str
    name: str
    destination_storage_domain_id: str
    vm_id: str
    copies: tuple[TemplateCopy, ...] = field(default=())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        copies = tuple(TemplateCopy(**c) for c in data.get("copies", ()))
        return cls(**{**data, "copies": copies})


class AddVmFromTemplate(CommandBase[AddVmFromTemplateParams]):
    """A VM whose disks are LOCKED while the template's are copied, OK when all succeeded,
    gone if any failed."""

    action_type = "AddVmFromTemplate"
    params_type = AddVmFromTemplateParams

    @classmethod
    def create(
        cls, template_id: str, name: str, destination_storage_domain_id: str
    ) -> AddVmFromTemplate:
        vm_id = new_id()
        params = AddVmFromTemplateParams(template_id, name, destination_storage_domain_id, vm_id)
        return cls(params, target_id=vm_id)

    def again(self) -> AddVmFromTemplate:
        p = self.params
        return AddVmFromTemplate.create(p.template_id, p.name, p.destination_storage_domain_id)

    def validate(self, repo: Repository) -> None:
        p = self.params
        template = repo.template(p.template_id)
        if template is None:
            raise NotFound(f"template_id: no template {p.template_id}")
        if repo.storage_domain(p.destination_storage_domain_id) is None:
            raise NotFound(
                f"destination_storage_domain_id: no storage domain "
                f"{p.destination_storage_domain_id}"
            )
        subject = f"templates/{p.template_id}"
        holder = repo.lock_holder(EntityKind.TEMPLATE, p.template_id)
        if holder is not None or template.status is not TemplateStatus.OK:
            state = f"locked by command {holder}" if holder else template.status.value
            raise FailedPrecondition(
                f"template {p.template_id} is {state}, not OK", subject=subject, kind="LOCKED"
            )
        disks = repo.disks(template.disk_ids)
        for disk_id in template.disk_ids:
            disk = disks.get(disk_id)
            if disk is None:
                raise FailedPrecondition(f"template {p.template_id} lost its disk {disk_id}")
            holder = repo.lock_holder(EntityKind.DISK, disk_id)
            why = disk.unusable_because() or (f"locked by command {holder}" if holder else None)
            if why is not None:
                raise FailedPrecondition(why, subject=subject, kind="LOCKED")
        if not template.disk_ids:
            raise FailedPrecondition(f"template {p.template_id} has no disks to copy")
        self._disks = [disks[d] for d in template.disk_ids]

    def build_child_commands(self) -> list[CommandBase[Any]]:
        p = self.params
        copies = new_copies(self._disks)
        self.params = p = AddVmFromTemplateParams(
            p.template_id, p.name, p.destination_storage_domain_id, p.vm_id, copies
        )
        plans = copy_plans(self._disks, copies, p.destination_storage_domain_id)
        return [CreateCloneOfTemplate(plan) for plan in plans]

    def _source_ids(self) -> list[str]:
        return [c.source_disk_id for c in self.params.copies]

    def _copy_ids(self) -> list[str]:
        return [c.copy_disk_id for c in self.params.copies]

    def entity_locks(self) -> list[tuple[EntityKind, str]]:
        return [(EntityKind.TEMPLATE, self.params.template_id)] + [
            (EntityKind.DISK, d) for d in self._source_ids()
        ]

    def create_locked_entities(self, repo: Repository) -> Vm:
        p = self.params
        # The copies first: the VM's disk list refers to them.
        repo.add_disks(
            locked_copies(self._disks, p.copies, p.name, p.destination_storage_domain_id)
        )
        vm = Vm(p.vm_id, p.name, tuple(self._copy_ids()))
        repo.add_vm(vm)
        repo.set_disk_status(self._source_ids(), DiskStatus.LOCKED)
        return vm

    @classmethod
    def succeed_many(cls, repo: Repository, commands: Sequence[Self]) -> None:
        repo.set_disk_status(
            [d for c in commands for d in c._copy_ids() + c._source_ids()], DiskStatus.OK
        )

    @classmethod
    def fail_many(cls, repo: Repository, batch: CommandBatch) -> None:
        repo.delete_vms_made_by(batch)  # first: they refer to their disks
        repo.delete_disks_written_by(batch)  # the copies; their images go by compensation
        repo.unlock_disks_locked_by(batch)  # the template's


class CreateCloneOfTemplate(CommandBase[CopyImageParams]):
    """A child of AddVmFromTemplate: one CopyImage task."""

    action_type = "CreateCloneOfTemplate"
    params_type = CopyImageParams

    def task_plan(self) -> TaskPlan:
        return TaskPlan(Verb.COPY_IMAGE, self.params.to_json())
