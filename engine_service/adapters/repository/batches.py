"""Set-based changes to many commands at once (reconciliation fails thousands in one
transaction): a `CommandBatch` becomes a subquery of command ids here, and nowhere else."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, select

from engine_service.adapters.orm import (
    COMMANDS,
    DISKS,
    LOCKS,
    TASKS,
    TEMPLATE_DISKS,
    TEMPLATES,
    VM_DISKS,
    VMS,
)
from engine_service.adapters.repository.shared import Part
from engine_service.domain.commands import (
    CommandBatch,
    CommandRecord,
    CommandSelection,
    CommandStatus,
    CreatedBefore,
    OnHosts,
    Outcome,
)
from engine_service.domain.inventory import DiskStatus, EntityKind
from engine_service.domain.tasks import TaskCleanup, Verb

_TOP_LEVEL = COMMANDS.c.parent_id.is_(None)


def ids_of(batch: CommandBatch) -> Select[Any]:
    """The batch as a subquery of top-level command ids."""
    query = select(COMMANDS.c.command_id)
    if batch.ids is not None:
        query = query.where(COMMANDS.c.command_id.in_(batch.ids))
    if batch.ended is not None:
        query = query.where(
            _TOP_LEVEL,
            COMMANDS.c.status == batch.ended.status,
            COMMANDS.c.failure_reason == batch.ended.reason,
            COMMANDS.c.ended_at == batch.ended_at,
        )
    if batch.action_type is not None:
        query = query.where(COMMANDS.c.action_type == batch.action_type)
    return query


def _selected(selection: CommandSelection) -> ColumnElement[bool]:
    """The condition on top-level commands that a selection makes."""
    if isinstance(selection, CreatedBefore):
        return COMMANDS.c.created_at < selection.cutoff
    if isinstance(selection, OnHosts):
        on_hosts = select(TASKS.c.root_command_id).where(
            TASKS.c.host_id.in_(list(selection.host_ids)), TASKS.c.cleanup == TaskCleanup.NONE
        )
        return COMMANDS.c.command_id.in_(on_hosts)
    orphaned = select(TASKS.c.root_command_id).where(
        TASKS.c.vdsm_task_id.is_(None),
        TASKS.c.cleanup == TaskCleanup.NONE,
        TASKS.c.created_at < selection.cutoff,
        TASKS.c.root_command_id.not_in(list(selection.executing)),
    )
    if selection.only_hosts is not None:
        orphaned = orphaned.where(TASKS.c.host_id.in_(list(selection.only_hosts)))
    return COMMANDS.c.command_id.in_(orphaned)


class BatchQueries(Part):
    """Set-based statements over a CommandBatch."""

    def end_active_commands(
        self, selection: CommandSelection, outcome: Outcome, now: datetime
    ) -> CommandBatch:
        """End with `outcome`, in one statement each for parents and children, every ACTIVE
        top-level command that `selection` selects. Returns them as a batch."""
        values = {"status": outcome.status, "failure_reason": outcome.reason, "ended_at": now}
        self.db.execute(
            COMMANDS.update()
            .where(
                _TOP_LEVEL,
                COMMANDS.c.status == CommandStatus.ACTIVE,
                _selected(selection),
            )
            .values(values)
        )
        batch = CommandBatch.ended_together(outcome, now)
        self.db.execute(
            COMMANDS.update()
            .where(
                COMMANDS.c.parent_id.in_(ids_of(batch)),
                COMMANDS.c.status == CommandStatus.ACTIVE,
            )
            .values(values)
        )
        return batch

    def created_times_in(self, batch: CommandBatch) -> list[tuple[str, datetime]]:
        """(action type, when accepted) of each command of the batch."""
        query = select(COMMANDS.c.action_type, COMMANDS.c.created_at).where(
            COMMANDS.c.command_id.in_(ids_of(batch))
        )
        return [(t, at) for t, at in self.db.execute(query).all()]

    def command_ids_in(self, batch: CommandBatch, limit: int | None = None) -> list[str]:
        """The batch's ids, oldest command first; the first `limit` of them if given."""
        query = ids_of(batch).order_by(COMMANDS.c.created_at, COMMANDS.c.command_id)
        return list(self.db.scalars(query if limit is None else query.limit(limit)))

    def commands_in(self, batch: CommandBatch) -> Iterator[CommandRecord]:
        query = select(COMMANDS).where(COMMANDS.c.command_id.in_(ids_of(batch)))
        for row in self.db.execute(query.execution_options(yield_per=500)):
            yield CommandRecord(**row._mapping)

    def delete_disks_written_by(self, batch: CommandBatch) -> None:
        """The disks whose images the commands' tasks write: what the commands created."""
        images = select(TASKS.c.image_id).where(TASKS.c.root_command_id.in_(ids_of(batch)))
        self.db.execute(DISKS.delete().where(DISKS.c.image_id.in_(images)))

    def delete_templates_made_by(self, batch: CommandBatch) -> None:
        targets = select(COMMANDS.c.target_id).where(COMMANDS.c.command_id.in_(ids_of(batch)))
        self.db.execute(TEMPLATE_DISKS.delete().where(TEMPLATE_DISKS.c.template_id.in_(targets)))
        self.db.execute(TEMPLATES.delete().where(TEMPLATES.c.template_id.in_(targets)))

    def _locked_by(self, kind: EntityKind, batch: CommandBatch) -> Select[Any]:
        return select(LOCKS.c.entity_id).where(
            LOCKS.c.entity_type == kind.value, LOCKS.c.command_id.in_(ids_of(batch))
        )

    def delete_disks_locked_by(self, batch: CommandBatch) -> None:
        """The disks the commands hold (removals: they go whatever the end)."""
        self.db.execute(
            DISKS.delete().where(DISKS.c.disk_id.in_(self._locked_by(EntityKind.DISK, batch)))
        )

    def delete_templates_locked_by(self, batch: CommandBatch) -> None:
        locked = self._locked_by(EntityKind.TEMPLATE, batch)
        self.db.execute(TEMPLATE_DISKS.delete().where(TEMPLATE_DISKS.c.template_id.in_(locked)))
        self.db.execute(TEMPLATES.delete().where(TEMPLATES.c.template_id.in_(locked)))

    def delete_vms_made_by(self, batch: CommandBatch) -> None:
        targets = select(COMMANDS.c.target_id).where(COMMANDS.c.command_id.in_(ids_of(batch)))
        self.db.execute(VM_DISKS.delete().where(VM_DISKS.c.vm_id.in_(targets)))
        self.db.execute(VMS.delete().where(VMS.c.vm_id.in_(targets)))

    def unlock_disks_locked_by(self, batch: CommandBatch) -> None:
        """Disks the commands held locked are usable again."""
        locked = select(LOCKS.c.entity_id).where(
            LOCKS.c.entity_type == EntityKind.DISK.value, LOCKS.c.command_id.in_(ids_of(batch))
        )
        self.db.execute(
            DISKS.update().where(DISKS.c.disk_id.in_(locked)).values(status=DiskStatus.OK)
        )

    def settle_tasks_of(
        self, batch: CommandBatch, cleanup: TaskCleanup, keep_hosts: Iterable[str] = ()
    ) -> int:
        """Delete the placeholders of the commands that never reached an agent (but keep, as
        debt, those on `keep_hosts`, which could not be asked, and those of removals, whose
        compensation finishes the removal); mark every other task with what is left to do.
        Returns the placeholders deleted."""
        roots = TASKS.c.root_command_id.in_(ids_of(batch))
        removed = self.db.execute(
            TASKS.delete().where(
                roots,
                TASKS.c.vdsm_task_id.is_(None),
                TASKS.c.cleanup == TaskCleanup.NONE,
                TASKS.c.host_id.not_in(list(keep_hosts)),
                TASKS.c.verb != Verb.REMOVE_IMAGE.value,
            )
        ).rowcount
        self.db.execute(
            TASKS.update().where(roots, TASKS.c.cleanup == TaskCleanup.NONE).values(cleanup=cleanup)
        )
        return int(removed)

    def release_locks_of(self, batch: CommandBatch) -> None:
        self.db.execute(LOCKS.delete().where(LOCKS.c.command_id.in_(ids_of(batch))))
