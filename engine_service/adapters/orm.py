"""The engine's tables, as SQLAlchemy 2 typed models. Migrations (adapters/migrations) create
them; a test checks that the migrated schema equals these models. Status columns are stored as
their enum's string and read back as the domain's enums (`EnumText`); the repository turns rows
into the domain's objects."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from engine_service.domain.clock import utcnow
from engine_service.domain.commands import CommandStatus
from engine_service.domain.history import EventKind
from engine_service.domain.hosts import HostStatus
from engine_service.domain.inventory import DiskStatus, TemplateStatus
from engine_service.domain.tasks import TaskCleanup
from service_common.vdsm_tasks import TaskResult, TaskState

ID = String(36)
NAME = String(255)


class EnumText(TypeDecorator[Any]):
    """A StrEnum stored as its value in a VARCHAR(20), read back as the enum."""

    impl = String(20)
    cache_ok = True

    def __init__(self, enum: type[StrEnum]) -> None:
        super().__init__()
        self.enum = enum

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> StrEnum | None:
        return None if value is None else self.enum(value)


class Base(DeclarativeBase):
    """The models' declarative base, with the constraint naming convention migrations use."""

    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class HostRow(Base):
    """A host (domain: Host)."""

    __tablename__ = "hosts"

    host_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME, unique=True)
    address: Mapped[str] = mapped_column(String(300), unique=True)
    status: Mapped[HostStatus] = mapped_column(EnumText(HostStatus))
    # Polls in a row that the agent did not answer; NON_RESPONSIVE from --host-failure-polls.
    failed_polls: Mapped[int] = mapped_column(Integer, default=0)
    # When it stopped answering (in any status): its commands fail --task-timeout after this.
    unreachable_since: Mapped[datetime | None] = mapped_column(DateTime)
    # When its agent last answered a poll (migration 0002).
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Fencing: when an operator confirmed it rebooted, who, and why (migration 0003).
    confirmed_rebooted_at: Mapped[datetime | None] = mapped_column(DateTime)
    confirmed_rebooted_by: Mapped[str] = mapped_column(String(255), default="")
    confirmed_rebooted_reason: Mapped[str] = mapped_column(Text, default="")


class StorageDomainRow(Base):
    """A storage domain (domain: StorageDomain)."""

    __tablename__ = "storage_domains"

    storage_domain_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DiskRow(Base):
    """A disk image (domain: Disk)."""

    __tablename__ = "disks"

    disk_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME)
    storage_domain_id: Mapped[str] = mapped_column(
        ForeignKey("storage_domains.storage_domain_id"), index=True
    )
    image_id: Mapped[str] = mapped_column(ID)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[DiskStatus] = mapped_column(EnumText(DiskStatus))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class VmRow(Base):
    """A VM (domain: Vm, with its disks from vm_disks)."""

    __tablename__ = "vms"

    vm_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class VmDiskRow(Base):
    """A VM's disk, by position."""

    __tablename__ = "vm_disks"

    vm_id: Mapped[str] = mapped_column(ForeignKey("vms.vm_id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    disk_id: Mapped[str] = mapped_column(ForeignKey("disks.disk_id"), index=True)


class TemplateRow(Base):
    """A VM template (domain: Template, with its disks from vm_template_disks)."""

    __tablename__ = "vm_templates"

    template_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME, unique=True)
    vm_id: Mapped[str] = mapped_column(ForeignKey("vms.vm_id"), index=True)
    status: Mapped[TemplateStatus] = mapped_column(EnumText(TemplateStatus))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class TemplateDiskRow(Base):
    """A template's disk (a copy), by position."""

    __tablename__ = "vm_template_disks"

    template_id: Mapped[str] = mapped_column(
        ForeignKey("vm_templates.template_id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    disk_id: Mapped[str] = mapped_column(ForeignKey("disks.disk_id"), index=True)


class CommandRow(Base):
    """A command, top-level or child (domain: CommandRecord)."""

    __tablename__ = "commands"

    command_id: Mapped[str] = mapped_column(ID, primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("commands.command_id"), index=True)
    action_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[CommandStatus] = mapped_column(EnumText(CommandStatus))
    # The command's own parameters, as its class reads them back after a restart.
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The entity it creates (a disk id, a template id).
    target_id: Mapped[str | None] = mapped_column(ID)
    failure_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_commands_listing", "parent_id", "status", "created_at"),
        # Retention prunes the oldest ended commands first (migration 0003).
        Index("ix_commands_ended_at", "ended_at"),
    )


class TaskRow(Base):
    """An async task: a placeholder until `vdsm_task_id` is set, kept until cleared."""

    __tablename__ = "async_tasks"

    task_id: Mapped[str] = mapped_column(ID, primary_key=True)  # engine-generated
    command_id: Mapped[str] = mapped_column(ForeignKey("commands.command_id"), index=True)
    root_command_id: Mapped[str] = mapped_column(ForeignKey("commands.command_id"), index=True)
    host_id: Mapped[str] = mapped_column(ForeignKey("hosts.host_id"), index=True)
    vdsm_task_id: Mapped[str | None] = mapped_column(ID, index=True)
    # When the agent's id was stored: a poll that started earlier cannot have seen the task.
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime)
    verb: Mapped[str] = mapped_column(String(32))
    # The agent call's arguments (without request_id, which is task_id).
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The image it writes: compensation deletes it.
    storage_domain_id: Mapped[str] = mapped_column(ID)
    image_id: Mapped[str] = mapped_column(ID)
    state: Mapped[TaskState | None] = mapped_column(EnumText(TaskState))
    result: Mapped[TaskResult | None] = mapped_column(EnumText(TaskResult))
    progress_percent: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    # What is left to do once the command is terminal (TaskCleanup).
    cleanup: Mapped[TaskCleanup] = mapped_column(
        EnumText(TaskCleanup), default=TaskCleanup.NONE, index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class EntityLockRow(Base):
    """A lock a command holds on an entity; released in the transaction that ends it."""

    __tablename__ = "entity_locks"

    entity_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    entity_id: Mapped[str] = mapped_column(ID, primary_key=True)
    command_id: Mapped[str] = mapped_column(ForeignKey("commands.command_id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ClientRequestRow(Base):
    """A client's request id, so that the same request sent twice makes one thing."""

    __tablename__ = "client_requests"

    rpc: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(ID, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    result_id: Mapped[str] = mapped_column(ID, index=True)  # retention: by command (0003)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)  # (0003)


class ZombieSightingRow(Base):
    """When an agent task unknown to the engine was first seen (migration 0003): its grace
    period counts from here, across slow polls and engine restarts."""

    __tablename__ = "zombie_sightings"

    host_id: Mapped[str] = mapped_column(ID, primary_key=True)
    vdsm_task_id: Mapped[str] = mapped_column(ID, primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime)


class CommandEventRow(Base):
    """One event of a top-level command's history (migration 0004; domain: CommandEvent)."""

    __tablename__ = "command_events"

    event_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    command_id: Mapped[str] = mapped_column(ForeignKey("commands.command_id"), index=True)
    time: Mapped[datetime] = mapped_column(DateTime)
    kind: Mapped[EventKind] = mapped_column(EnumText(EventKind))
    task_id: Mapped[str | None] = mapped_column(ID)
    host_id: Mapped[str | None] = mapped_column(ID)
    message: Mapped[str] = mapped_column(Text, default="")


def table(row: type[Base]) -> Table:
    """The Core table of a model: the repository reads and writes most rows through it."""
    return cast(Table, row.__table__)


HOSTS = table(HostRow)
STORAGE_DOMAINS = table(StorageDomainRow)
DISKS = table(DiskRow)
VMS = table(VmRow)
VM_DISKS = table(VmDiskRow)
TEMPLATES = table(TemplateRow)
TEMPLATE_DISKS = table(TemplateDiskRow)
COMMANDS = table(CommandRow)
TASKS = table(TaskRow)
LOCKS = table(EntityLockRow)
CLIENT_REQUESTS = table(ClientRequestRow)
ZOMBIE_SIGHTINGS = table(ZombieSightingRow)
EVENTS = table(CommandEventRow)
