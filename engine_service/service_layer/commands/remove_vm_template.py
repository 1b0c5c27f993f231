"""RemoveVmTemplate: a template and its disks deleted, one RemoveImage task per disk.

As with RemoveDisk, a removal is never undone: a failed or cancelled one still deletes the
template and its disks, and compensation finishes deleting their images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from engine_service.adapters.repository import Repository
from engine_service.domain.commands import CommandBatch
from engine_service.domain.inventory import DiskStatus, EntityKind, TemplateStatus
from engine_service.service_layer.commands.base import CommandBase, Params
from engine_service.service_layer.commands.remove_disk import RemoveImage, RemoveImageParams
from service_common.errors import FailedPrecondition, NotFound


@dataclass(frozen=True)
class TemplateImage:
    """One disk of the template and where its image is."""

    disk_id: str
    storage_domain_id: str
    image_id: str


@dataclass(frozen=True)
class RemoveVmTemplateParams(Params):
    """The template to remove; its disks are read when the command is validated."""

    template_id: str
    images: tuple[TemplateImage, ...] = field(default=())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        images = tuple(TemplateImage(**i) for i in data.get("images", ()))
        return cls(**{**data, "images": images})


class RemoveVmTemplate(CommandBase[RemoveVmTemplateParams]):
    """A template and its disks LOCKED while their images are removed, gone at the end."""

    action_type = "RemoveVmTemplate"
    params_type = RemoveVmTemplateParams

    @classmethod
    def create(cls, template_id: str) -> RemoveVmTemplate:
        return cls(RemoveVmTemplateParams(template_id), target_id=template_id)

    def again(self) -> RemoveVmTemplate:
        return RemoveVmTemplate.create(self.params.template_id)

    def validate(self, repo: Repository) -> None:
        template_id = self.params.template_id
        template = repo.template(template_id)
        if template is None:
            raise NotFound(f"template_id: no template {template_id}")
        subject = f"templates/{template_id}"
        holder = repo.lock_holder(EntityKind.TEMPLATE, template_id)
        if holder is not None or template.status is TemplateStatus.LOCKED:
            raise FailedPrecondition(
                f"template {template_id} is in use by command {holder or 'unknown'}",
                subject=subject,
                kind="LOCKED",
            )
        disks = repo.disks(template.disk_ids)
        for disk_id in template.disk_ids:
            holder = repo.lock_holder(EntityKind.DISK, disk_id)
            if holder is not None:
                raise FailedPrecondition(
                    f"disk {disk_id} of template {template_id} is locked by command {holder}",
                    subject=subject,
                    kind="LOCKED",
                )
        self.params = RemoveVmTemplateParams(
            template_id,
            tuple(
                TemplateImage(d, disks[d].storage_domain_id, disks[d].image_id)
                for d in template.disk_ids
                if d in disks
            ),
        )

    def build_child_commands(self) -> list[CommandBase[Any]]:
        return [
            RemoveImage(RemoveImageParams(i.storage_domain_id, i.image_id))
            for i in self.params.images
        ]

    def _disk_ids(self) -> list[str]:
        return [i.disk_id for i in self.params.images]

    def entity_locks(self) -> list[tuple[EntityKind, str]]:
        return [(EntityKind.TEMPLATE, self.params.template_id)] + [
            (EntityKind.DISK, d) for d in self._disk_ids()
        ]

    def create_locked_entities(self, repo: Repository) -> None:
        repo.set_template_status([self.params.template_id], TemplateStatus.LOCKED)
        repo.set_disk_status(self._disk_ids(), DiskStatus.LOCKED)

    @classmethod
    def succeed_many(cls, repo: Repository, commands: Sequence[Self]) -> None:
        repo.delete_templates([c.params.template_id for c in commands])  # first: they refer to
        repo.delete_disks([d for c in commands for d in c._disk_ids()])  # their disks

    @classmethod
    def fail_many(cls, repo: Repository, batch: CommandBatch) -> None:
        repo.delete_templates_locked_by(batch)  # first: they refer to their disks
        repo.delete_disks_locked_by(batch)  # their images go by compensation
