"""AddVmTemplate: a template made of copies of a VM's disks, one CreateImageTemplate child
(one CopyImage task) per disk. A failed or cancelled template leaves nothing behind: its copies
and its row are deleted and the name is free again (docs/design.md §12)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from engine_service.adapters.repository import Repository
from engine_service.domain.commands import CommandBatch
from engine_service.domain.inventory import Disk, DiskStatus, EntityKind, Template, TemplateStatus
from engine_service.domain.tasks import TaskPlan, Verb, new_id
from engine_service.service_layer.commands.base import CommandBase, Params
from service_common.errors import AlreadyExists, FailedPrecondition, NotFound


@dataclass(frozen=True)
class TemplateCopy:
    """One disk of the template: the source disk and its copy."""

    source_disk_id: str
    copy_disk_id: str
    dst_image_id: str


@dataclass(frozen=True)
class AddVmTemplateParams(Params):
    """The template to make; `copies` are chosen by build_child_commands."""

    vm_id: str
    name: str
    destination_storage_domain_id: str
    template_id: str
    copies: tuple[TemplateCopy, ...] = field(default=())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        copies = tuple(TemplateCopy(**c) for c in data.get("copies", ()))
        return cls(**{**data, "copies": copies})


@dataclass(frozen=True)
class CopyImageParams(Params):
    """The CopyImage arguments (request_id aside)."""

    src_storage_domain_id: str
    src_image_id: str
    dst_storage_domain_id: str
    dst_image_id: str


def new_copies(disks: list[Disk]) -> tuple[TemplateCopy, ...]:
    """A new disk and image id for the copy of each of `disks`."""
    return tuple(TemplateCopy(d.disk_id, new_id(), new_id()) for d in disks)


def copy_plans(
    disks: list[Disk], copies: tuple[TemplateCopy, ...], destination: str
) -> list[CopyImageParams]:
    """The CopyImage arguments that copy each disk to its copy in `destination`."""
    return [
        CopyImageParams(disk.storage_domain_id, disk.image_id, destination, copy.dst_image_id)
        for disk, copy in zip(disks, copies, strict=True)
    ]


def locked_copies(
    disks: list[Disk], copies: tuple[TemplateCopy, ...], owner: str, destination: str
) -> list[Disk]:
    """The copies' disk rows, LOCKED, named OWNER/DISK-NAME."""
    return [
        Disk(
            copy.copy_disk_id,
            f"{owner}/{disk.name}",
            destination,
            copy.dst_image_id,
            disk.size_bytes,
            DiskStatus.LOCKED,
        )
        for disk, copy in zip(disks, copies, strict=True)
    ]


class AddVmTemplate(CommandBase[AddVmTemplateParams]):
    """A template LOCKED while its copies run, OK when all succeeded, gone if any failed."""

    action_type = "AddVmTemplate"
    params_type = AddVmTemplateParams

    @classmethod
    def create(cls, vm_id: str, name: str, destination_storage_domain_id: str) -> AddVmTemplate:
        template_id = new_id()
        params = AddVmTemplateParams(vm_id, name, destination_storage_domain_id, template_id)
        return cls(params, target_id=template_id)

    def again(self) -> AddVmTemplate:
        p = self.params
        return AddVmTemplate.create(p.vm_id, p.name, p.destination_storage_domain_id)

    def validate(self, repo: Repository) -> None:
        p = self.params
        disks = repo.vm_disks_and_locks(p.vm_id)
        if disks is None:
            raise NotFound(f"vm_id: no VM {p.vm_id}")
        if repo.storage_domain(p.destination_storage_domain_id) is None:
            raise NotFound(
                f"destination_storage_domain_id: no storage domain "
                f"{p.destination_storage_domain_id}"
            )
        existing = repo.template_by_name(p.name)
        if existing is not None:
            raise AlreadyExists(f"name: template {p.name!r} exists ({existing.template_id})")
        if not disks:
            raise FailedPrecondition(f"VM {p.vm_id} has no disks to copy")
        for disk, _ in disks:
            if (why := disk.unusable_because()) is not None:
                raise FailedPrecondition(why)
        for disk, holder in disks:
            if holder is not None:
                raise FailedPrecondition(f"disk {disk.disk_id} is locked by command {holder}")
        self._disks = [disk for disk, _ in disks]

    def build_child_commands(self) -> list[CommandBase[Any]]:
        p = self.params
        copies = new_copies(self._disks)
        self.params = p = AddVmTemplateParams(
            p.vm_id, p.name, p.destination_storage_domain_id, p.template_id, copies
        )
        plans = copy_plans(self._disks, copies, p.destination_storage_domain_id)
        return [CreateImageTemplate(plan) for plan in plans]

    def _source_ids(self) -> list[str]:
        return [c.source_disk_id for c in self.params.copies]

    def _copy_ids(self) -> list[str]:
        return [c.copy_disk_id for c in self.params.copies]

    def entity_locks(self) -> list[tuple[EntityKind, str]]:
        return [(EntityKind.VM, self.params.vm_id)] + [
            (EntityKind.DISK, d) for d in self._source_ids()
        ]

    def create_locked_entities(self, repo: Repository) -> Template:
        p = self.params
        # The copies first: the template's disk list refers to them.
        repo.add_disks(
            locked_copies(self._disks, p.copies, p.name, p.destination_storage_domain_id)
        )
        template = Template(
            p.template_id, p.name, p.vm_id, TemplateStatus.LOCKED, tuple(self._copy_ids())
        )
        repo.add_template(template)
        repo.set_disk_status(self._source_ids(), DiskStatus.LOCKED)
        return template

    @classmethod
    def succeed_many(cls, repo: Repository, commands: Sequence[Self]) -> None:
        repo.set_template_status([c.params.template_id for c in commands], TemplateStatus.OK)
        repo.set_disk_status(
            [d for c in commands for d in c._copy_ids() + c._source_ids()], DiskStatus.OK
        )

    @classmethod
    def fail_many(cls, repo: Repository, batch: CommandBatch) -> None:
        repo.delete_templates_made_by(batch)
        repo.delete_disks_written_by(batch)  # the copies; their images go by compensation
        repo.unlock_disks_locked_by(batch)  # the sources


class CreateImageTemplate(CommandBase[CopyImageParams]):
    """A child of AddVmTemplate: one CopyImage task."""

    action_type = "CreateImageTemplate"
    params_type = CopyImageParams

    def task_plan(self) -> TaskPlan:
        return TaskPlan(Verb.COPY_IMAGE, self.params.to_json())
