"""The engine's tables, as SQLAlchemy 2 typed models. Migrations (adapters/migrations) create
them; a test checks that the migrated schema equals these models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID = String(36)
NAME = String(255)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class HostRow(Base):
    __tablename__ = "hosts"

    host_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME, unique=True)
    address: Mapped[str] = mapped_column(String(300), unique=True)
    status: Mapped[str] = mapped_column(String(20))
    # Polls in a row that the agent did not answer; NON_RESPONSIVE from --host-failure-polls.
    failed_polls: Mapped[int] = mapped_column(Integer, default=0)
    # When it became NON_RESPONSIVE: its commands fail --task-timeout after this.
    unreachable_since: Mapped[datetime | None] = mapped_column(DateTime)
    # When its agent last answered a poll (migration 0002).
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class StorageDomainRow(Base):
    __tablename__ = "storage_domains"

    storage_domain_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DiskRow(Base):
    __tablename__ = "disks"

    disk_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME)
    storage_domain_id: Mapped[str] = mapped_column(
        ForeignKey("storage_domains.storage_domain_id"), index=True
    )
    image_id: Mapped[str] = mapped_column(ID)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class VmRow(Base):
    __tablename__ = "vms"

    vm_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class VmDiskRow(Base):
    __tablename__ = "vm_disks"

    vm_id: Mapped[str] = mapped_column(ForeignKey("vms.vm_id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    disk_id: Mapped[str] = mapped_column(ForeignKey("disks.disk_id"), index=True)


class TemplateRow(Base):
    __tablename__ = "vm_templates"

    template_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME, unique=True)
    vm_id: Mapped[str] = mapped_column(ForeignKey("vms.vm_id"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class TemplateDiskRow(Base):
    __tablename__ = "vm_template_disks"

    template_id: Mapped[str] = mapped_column(
        ForeignKey("vm_templates.template_id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    disk_id: Mapped[str] = mapped_column(ForeignKey("disks.disk_id"), index=True)


class CommandRow(Base):
    __tablename__ = "commands"

    command_id: Mapped[str] = mapped_column(ID, primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("commands.command_id"), index=True)
    action_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    # The command's own parameters, as its class reads them back after a restart.
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The entity it creates (a disk id, a template id).
    target_id: Mapped[str | None] = mapped_column(ID)
    failure_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_commands_listing", "parent_id", "status", "created_at"),)


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
    state: Mapped[str | None] = mapped_column(String(20))
    result: Mapped[str | None] = mapped_column(String(20))
    progress_percent: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    # What is left to do once the command is terminal (TaskCleanup).
    cleanup: Mapped[str] = mapped_column(String(20), default="", index=True)
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
    result_id: Mapped[str] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
