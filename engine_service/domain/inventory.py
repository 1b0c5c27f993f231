"""What the engine manages besides commands: storage domains, disks, VMs and templates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from engine_service.domain.clock import utcnow


class DiskStatus(StrEnum):
    """A disk is LOCKED while a command writes or copies it."""

    OK = "OK"
    LOCKED = "LOCKED"
    ILLEGAL = "ILLEGAL"


class TemplateStatus(StrEnum):
    """A template is LOCKED while its copies run, OK when all succeeded."""

    OK = "OK"
    LOCKED = "LOCKED"
    ILLEGAL = "ILLEGAL"


class EntityKind(StrEnum):
    """What an entity lock names."""

    DISK = "disk"
    VM = "vm"
    TEMPLATE = "template"


@dataclass(frozen=True)
class StorageDomain:
    """A directory under the agents' shared storage root."""

    storage_domain_id: str
    name: str
    created_at: datetime = field(default_factory=utcnow)


@dataclass
class Disk:
    """A disk image: the file STORAGE_ROOT/<storage_domain_id>/images/<image_id>."""

    disk_id: str
    name: str
    storage_domain_id: str
    image_id: str
    size_bytes: int
    status: DiskStatus = DiskStatus.LOCKED
    created_at: datetime = field(default_factory=utcnow)

    def unusable_because(self) -> str | None:
        """Why a command cannot read it now, or None."""
        if self.status is not DiskStatus.OK:
            return f"disk {self.disk_id} is {self.status.value}, not OK"
        return None


@dataclass(frozen=True)
class Vm:
    """A VM: a name and its disks, in order."""

    vm_id: str
    name: str
    disk_ids: tuple[str, ...] = ()
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class Template:
    """A VM template: copies of a VM's disks."""

    template_id: str
    name: str
    vm_id: str
    status: TemplateStatus
    disk_ids: tuple[str, ...] = ()
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class EntityLock:
    """A lock a command holds on an entity, released in the transaction that ends it."""

    kind: EntityKind
    entity_id: str
    command_id: str
