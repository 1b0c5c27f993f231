"""Every query the engine makes, over one SQLAlchemy session (owned by the unit of work).

Bulk work is set-based: status updates from a poll are one executemany, ending a command
deletes its placeholders and locks with one statement each.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from itertools import groupby
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import Select, Table, bindparam, delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from engine_service.adapters.orm import (
    Base,
    ClientRequestRow,
    CommandRow,
    DiskRow,
    EntityLockRow,
    HostRow,
    StorageDomainRow,
    TaskRow,
    TemplateDiskRow,
    TemplateRow,
    VmDiskRow,
    VmRow,
)

Row = TypeVar("Row", bound=Base)


def _page(
    query: Select[Any], order: Sequence[Any], after: tuple[datetime, str] | None, limit: int
) -> Select[Any]:
    """Keyset paging on (created_at, id), ascending."""
    if after is not None:
        created_at, row_id = after
        query = query.where(
            (order[0] > created_at) | ((order[0] == created_at) & (order[1] > row_id))
        )
    return query.order_by(*order).limit(limit)


class TaskStatusRow(Protocol):
    """A task's status columns, read without loading the ORM object."""

    task_id: str
    root_command_id: str
    host_id: str
    vdsm_task_id: str | None
    submitted_at: datetime | None
    state: str | None
    result: str | None
    progress_percent: int
    message: str
    cleanup: str


STATUS_COLUMNS = (
    TaskRow.task_id,
    TaskRow.root_command_id,
    TaskRow.host_id,
    TaskRow.vdsm_task_id,
    TaskRow.submitted_at,
    TaskRow.state,
    TaskRow.result,
    TaskRow.progress_percent,
    TaskRow.message,
    TaskRow.cleanup,
)


# Statements of the submission's hot path, built once: building a statement costs about as much
# Python as executing it (bench/README.md, benchmark 1).
_STORE_AGENT_ID = (
    update(cast(Table, TaskRow.__table__))
    .where(TaskRow.__table__.c.task_id == bindparam("placeholder"))
    .values(vdsm_task_id=bindparam("agent_id"), submitted_at=bindparam("at"))
)

# A VM's disks in order, each with the command holding its lock: one row with no disk for a VM
# without disks, no row for no VM.
_VM_DISKS_AND_LOCKS = (
    select(VmRow.vm_id, DiskRow, EntityLockRow.command_id)
    .outerjoin(VmDiskRow, VmDiskRow.vm_id == VmRow.vm_id)
    .outerjoin(DiskRow, DiskRow.disk_id == VmDiskRow.disk_id)
    .outerjoin(
        EntityLockRow,
        (EntityLockRow.entity_type == "disk") & (EntityLockRow.entity_id == DiskRow.disk_id),
    )
    .where(VmRow.vm_id == bindparam("vm_id"))
    .order_by(VmDiskRow.position)
)

_COMMAND_FAMILY = (
    select(CommandRow)
    .where(
        (CommandRow.command_id == bindparam("command_id"))
        | (CommandRow.parent_id == bindparam("command_id"))
    )
    .order_by(CommandRow.created_at, CommandRow.command_id)
)
_TEMPLATE_WITH_DISKS = (
    select(TemplateRow, TemplateDiskRow.disk_id)
    .outerjoin(TemplateDiskRow, TemplateDiskRow.template_id == TemplateRow.template_id)
    .where(TemplateRow.template_id == bindparam("template_id"))
    .order_by(TemplateDiskRow.position)
)


class Repository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- generic ---------------------------------------------------------------------------

    def add(self, *rows: Base) -> None:
        self.session.add_all(rows)

    def insert(self, *rows: Base) -> None:
        """INSERT new rows at once, in the order given (parents before children), as one
        executemany per run of rows of one table. Unlike `add`, the rows do not join the
        session: a submission writes about twenty of them, and the unit-of-work bookkeeping of
        `add` + flush cost it more than the statements themselves. Columns left unset get
        their defaults."""
        for table, run in groupby(rows, key=lambda row: cast(Table, row.__table__)):
            values = [
                {k: v for k, v in vars(row).items() if not k.startswith("_sa_")} for row in run
            ]
            self.session.execute(insert(table), values)

    def delete(self, row: Base) -> None:
        self.session.delete(row)

    def flush(self) -> None:
        self.session.flush()

    def get(self, cls: type[Row], key: Any) -> Row | None:
        return self.session.get(cls, key)

    def get_for_update(self, cls: type[Row], key: Any) -> Row | None:
        return self.session.get(cls, key, with_for_update=True)

    # -- hosts -----------------------------------------------------------------------------

    def hosts_for_update(self, host_ids: Sequence[str]) -> dict[str, HostRow]:
        """These hosts, locked for this transaction (on PostgreSQL), in one query."""
        rows = self.session.scalars(
            select(HostRow)
            .where(HostRow.host_id.in_(list(host_ids)))
            .order_by(HostRow.host_id)
            .with_for_update()
        )
        return {h.host_id: h for h in rows}

    def host_by(self, *, name: str | None = None, address: str | None = None) -> HostRow | None:
        column, value = (HostRow.name, name) if name is not None else (HostRow.address, address)
        return self.session.scalars(select(HostRow).where(column == value)).first()

    def refresh_statistics(self) -> None:
        """Let PostgreSQL plan reconciliation's set-based statements on current row counts.
        Without statistics (tables filled since the last autovacuum analyze) it picks nested
        loops for the IN (subquery) joins: 16 s instead of 20 ms for 4,000 commands."""
        bind = self.session.get_bind()
        if bind.dialect.name == "postgresql":
            self.session.execute(text("ANALYZE commands, async_tasks, disks, entity_locks"))

    def hosts(self) -> list[HostRow]:
        return list(self.session.scalars(select(HostRow).order_by(HostRow.name)))

    def hosts_with_status(self, status: str) -> list[HostRow]:
        return list(self.session.scalars(select(HostRow).where(HostRow.status == status)))

    def tasks_per_host(self) -> dict[str, int]:
        rows = self.session.execute(
            select(TaskRow.host_id, func.count()).group_by(TaskRow.host_id)
        ).all()
        return {host_id: count for host_id, count in rows}

    # -- storage domains, disks, VMs, templates -----------------------------------------------

    def storage_domain_by_name(self, name: str) -> StorageDomainRow | None:
        return self.session.scalars(
            select(StorageDomainRow).where(StorageDomainRow.name == name)
        ).first()

    def storage_domains(self) -> list[StorageDomainRow]:
        return list(self.session.scalars(select(StorageDomainRow).order_by(StorageDomainRow.name)))

    def disks(self, ids: Iterable[str]) -> dict[str, DiskRow]:
        ids = list(ids)
        if not ids:
            return {}
        return {
            d.disk_id: d
            for d in self.session.scalars(select(DiskRow).where(DiskRow.disk_id.in_(ids)))
        }

    def disk_page(self, after: tuple[datetime, str] | None, limit: int) -> list[DiskRow]:
        query = _page(select(DiskRow), (DiskRow.created_at, DiskRow.disk_id), after, limit)
        return list(self.session.scalars(query))

    def vm_disk_ids(self, vm_id: str) -> list[str]:
        return list(
            self.session.scalars(
                select(VmDiskRow.disk_id)
                .where(VmDiskRow.vm_id == vm_id)
                .order_by(VmDiskRow.position)
            )
        )

    def vm_disks_and_locks(self, vm_id: str) -> list[tuple[DiskRow, str | None]] | None:
        """The VM's disks in order, each with the command holding its lock (or None), in one
        query; None if there is no such VM."""
        rows = self.session.execute(_VM_DISKS_AND_LOCKS, {"vm_id": vm_id}).all()
        if not rows:
            return None
        return [(disk, holder) for _, disk, holder in rows if disk is not None]

    def template_by_name(self, name: str) -> TemplateRow | None:
        return self.session.scalars(select(TemplateRow).where(TemplateRow.name == name)).first()

    def template_with_disks(self, template_id: str) -> tuple[TemplateRow, list[str]] | None:
        """The template and its disk ids in order, in one query; None if there is none."""
        rows = self.session.execute(_TEMPLATE_WITH_DISKS, {"template_id": template_id}).all()
        if not rows:
            return None
        return rows[0][0], [disk_id for _, disk_id in rows if disk_id is not None]

    def template_disk_ids(self, template_ids: Sequence[str]) -> dict[str, list[str]]:
        """Each template's disk ids in order, in one query."""
        found: dict[str, list[str]] = {t: [] for t in template_ids}
        if template_ids:
            for template_id, disk_id in self.session.execute(
                select(TemplateDiskRow.template_id, TemplateDiskRow.disk_id)
                .where(TemplateDiskRow.template_id.in_(list(template_ids)))
                .order_by(TemplateDiskRow.template_id, TemplateDiskRow.position)
            ):
                found[template_id].append(disk_id)
        return found

    def template_page(self, after: tuple[datetime, str] | None, limit: int) -> list[TemplateRow]:
        query = _page(
            select(TemplateRow), (TemplateRow.created_at, TemplateRow.template_id), after, limit
        )
        return list(self.session.scalars(query))

    def set_disk_status(self, disk_ids: Iterable[str], status: str) -> None:
        """(Disk rows already loaded in this session keep their old status attribute.)"""
        self.session.execute(
            update(DiskRow)
            .where(DiskRow.disk_id.in_(list(disk_ids)))
            .values(status=status)
            .execution_options(synchronize_session=False)
        )

    # -- commands --------------------------------------------------------------------------

    def children(self, command_id: str) -> list[CommandRow]:
        return self.children_of_many([command_id]).get(command_id, [])

    def children_of_many(self, command_ids: Sequence[str]) -> dict[str, list[CommandRow]]:
        """Each command's children, oldest first, in one query."""
        found: dict[str, list[CommandRow]] = {}
        if command_ids:
            for row in self.session.scalars(
                select(CommandRow)
                .where(CommandRow.parent_id.in_(list(command_ids)))
                .order_by(CommandRow.created_at, CommandRow.command_id)
            ):
                found.setdefault(cast(str, row.parent_id), []).append(row)
        return found

    def command_family(self, command_id: str) -> list[CommandRow]:
        """The command and its children (oldest first, as `children_of_many`), in one query."""
        return list(self.session.scalars(_COMMAND_FAMILY, {"command_id": command_id}))

    def command_page(
        self, status: str | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[CommandRow]:
        """Top-level commands, newest first."""
        query = select(CommandRow).where(CommandRow.parent_id.is_(None))
        if status:
            query = query.where(CommandRow.status == status)
        if after is not None:
            created_at, command_id = after
            query = query.where(
                (CommandRow.created_at < created_at)
                | ((CommandRow.created_at == created_at) & (CommandRow.command_id < command_id))
            )
        query = query.order_by(CommandRow.created_at.desc(), CommandRow.command_id.desc())
        return list(self.session.scalars(query.limit(limit)))

    def end_command_tree(self, root_id: str, status: str, reason: str, now: datetime) -> bool:
        """Make the command and its children terminal, if the command is still ACTIVE.

        The condition on status is what makes ending happen exactly once, even when the
        poller, a cancel and a reconciliation race for the same command."""
        ended = self.session.execute(
            update(CommandRow)
            .where(CommandRow.command_id == root_id, CommandRow.status == "ACTIVE")
            .values(status=status, failure_reason=reason, ended_at=now)
        )
        if ended.rowcount != 1:  # type: ignore[attr-defined]
            return False
        self.session.execute(
            update(CommandRow)
            .where(CommandRow.parent_id == root_id, CommandRow.status == "ACTIVE")
            .values(status=status, failure_reason=reason, ended_at=now)
        )
        return True

    def active_root_ids(self) -> list[str]:
        return list(
            self.session.scalars(
                select(CommandRow.command_id).where(
                    CommandRow.parent_id.is_(None), CommandRow.status == "ACTIVE"
                )
            )
        )

    def count_active_roots(self) -> int:
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(CommandRow)
                .where(CommandRow.parent_id.is_(None), CommandRow.status == "ACTIVE")
            )
            or 0
        )

    # -- async tasks -----------------------------------------------------------------------

    def tasks_of(self, root_id: str) -> list[TaskRow]:
        return list(
            self.session.scalars(
                select(TaskRow)
                .where(TaskRow.root_command_id == root_id)
                .order_by(TaskRow.created_at, TaskRow.task_id)
            )
        )

    def tasks_of_many(self, root_ids: Iterable[str]) -> list[TaskRow]:
        root_ids = list(root_ids)
        if not root_ids:
            return []
        return list(
            self.session.scalars(
                select(TaskRow)
                .where(TaskRow.root_command_id.in_(root_ids))
                .order_by(TaskRow.created_at, TaskRow.task_id)
            )
        )

    def active_tasks(
        self, host_ids: Sequence[str] | None = None, decidable_only: bool = False
    ) -> list[TaskStatusRow]:
        """Tasks of commands that are still ACTIVE (on `host_ids`, if given; of commands with
        at least one FINISHED task, if `decidable_only`), as plain rows of the status columns:
        a poll reads tasks in flight, and loading thousands of ORM objects each cycle cost it
        more than everything else together."""
        query = select(*STATUS_COLUMNS).where(TaskRow.cleanup == "")
        if host_ids is not None:
            query = query.where(TaskRow.host_id.in_(list(host_ids)))
        if decidable_only:
            finished = select(TaskRow.root_command_id).where(
                TaskRow.cleanup == "", TaskRow.state == "finished"
            )
            query = query.where(TaskRow.root_command_id.in_(finished))
        return cast(list[TaskStatusRow], self.session.execute(query).all())

    def submitted_tasks_on(self, host_ids: Sequence[str]) -> list[TaskStatusRow]:
        """The tasks on these hosts that have an agent id, as plain rows (see active_tasks)."""
        if not host_ids:
            return []
        return cast(
            list[TaskStatusRow],
            self.session.execute(
                select(*STATUS_COLUMNS).where(
                    TaskRow.host_id.in_(list(host_ids)), TaskRow.vdsm_task_id.is_not(None)
                )
            ).all(),
        )

    def tasks_to_clean(self) -> list[TaskRow]:
        return list(self.session.scalars(select(TaskRow).where(TaskRow.cleanup != "")))

    def set_vdsm_task_id(self, task_id: str, vdsm_task_id: str, now: datetime) -> bool:
        """Store the agent's id on a placeholder; False if the placeholder is gone."""
        result = self.session.connection().execute(
            _STORE_AGENT_ID, {"placeholder": task_id, "agent_id": vdsm_task_id, "at": now}
        )
        return result.rowcount == 1

    def update_task_statuses(self, changes: Sequence[dict[str, Any]]) -> None:
        """One executemany for a whole poll: dicts with task_id and the changed columns."""
        if changes:
            self.session.execute(update(TaskRow), list(changes))

    def settle_tasks(self, root_id: str, cleanup: str) -> int:
        return self.settle_tasks_of(self.one_command(root_id), cleanup)

    def mark_unresolved(self, task_ids: Sequence[str], cleanup: str) -> None:
        """Placeholders that may or may not have reached an agent that did not answer: kept
        as debt, looked up by request id when the host answers again."""
        if task_ids:
            self.session.execute(
                update(TaskRow).where(TaskRow.task_id.in_(list(task_ids))).values(cleanup=cleanup)
            )

    def active_placeholders(self) -> list[TaskRow]:
        return list(
            self.session.scalars(
                select(TaskRow).where(TaskRow.vdsm_task_id.is_(None), TaskRow.cleanup == "")
            )
        )

    def delete_tasks(self, task_ids: Sequence[str]) -> None:
        for start in range(0, len(task_ids), 500):
            chunk = list(task_ids[start : start + 500])
            self.session.execute(delete(TaskRow).where(TaskRow.task_id.in_(chunk)))

    def known_among(self, column: str, ids: Sequence[str]) -> set[str]:
        """Which of `ids` the engine has as task `column` ("task_id" or "vdsm_task_id")."""
        col = getattr(TaskRow, column)
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            found.update(self.session.scalars(select(col).where(col.in_(ids[start : start + 500]))))
        return found

    def disk_with_image(self, storage_domain_id: str, image_id: str) -> DiskRow | None:
        return self.session.scalars(
            select(DiskRow).where(
                DiskRow.storage_domain_id == storage_domain_id, DiskRow.image_id == image_id
            )
        ).first()

    # -- failing many commands at once (set-based) -------------------------------------------

    @staticmethod
    def one_command(command_id: str) -> Select[Any]:
        """A command id as a subquery, so that single commands take the set-based paths."""
        return select(CommandRow.command_id).where(CommandRow.command_id == command_id)

    def fail_orphaned_commands(
        self,
        reason: str,
        now: datetime,
        cutoff: datetime,
        executing: Iterable[str],
        only_hosts: Iterable[str] | None = None,
    ) -> Select[Any]:
        """Make FAILED, in one statement each for parents and children, every ACTIVE command
        with a placeholder written before `cutoff` that is not being submitted (and, with
        `only_hosts`, that is on one of those hosts). Returns the batch as a subquery."""
        orphaned = select(TaskRow.root_command_id).where(
            TaskRow.vdsm_task_id.is_(None),
            TaskRow.cleanup == "",
            TaskRow.created_at < cutoff,
            TaskRow.root_command_id.not_in(list(executing)),
        )
        if only_hosts is not None:
            orphaned = orphaned.where(TaskRow.host_id.in_(list(only_hosts)))
        self.session.execute(
            update(CommandRow)
            .where(
                CommandRow.parent_id.is_(None),
                CommandRow.status == "ACTIVE",
                CommandRow.command_id.in_(orphaned),
            )
            .values(status="FAILED", failure_reason=reason, ended_at=now)
            .execution_options(synchronize_session=False)
        )
        batch = select(CommandRow.command_id).where(
            CommandRow.parent_id.is_(None),
            CommandRow.status == "FAILED",
            CommandRow.failure_reason == reason,
            CommandRow.ended_at == now,
        )
        self.session.execute(
            update(CommandRow)
            .where(CommandRow.parent_id.in_(batch), CommandRow.status == "ACTIVE")
            .values(status="FAILED", failure_reason=reason, ended_at=now)
            .execution_options(synchronize_session=False)
        )
        return batch

    def action_types_in(self, roots: Select[Any]) -> dict[str, int]:
        return {
            t: int(n)
            for t, n in self.session.execute(
                select(CommandRow.action_type, func.count())
                .where(CommandRow.command_id.in_(roots))
                .group_by(CommandRow.action_type)
            ).all()
        }

    def command_ids_in(self, roots: Select[Any]) -> list[str]:
        return list(self.session.scalars(roots))

    def commands_in(self, roots: Select[Any]) -> Iterator[CommandRow]:
        yield from self.session.scalars(
            select(CommandRow)
            .where(CommandRow.command_id.in_(roots))
            .execution_options(yield_per=500)
        )

    def delete_disks_written_by(self, roots: Select[Any]) -> None:
        """The disks whose images the commands' tasks write: what the commands created."""
        images = select(TaskRow.image_id).where(TaskRow.root_command_id.in_(roots))
        self.session.execute(
            delete(DiskRow)
            .where(DiskRow.image_id.in_(images))
            .execution_options(synchronize_session=False)
        )

    def delete_templates_made_by(self, roots: Select[Any]) -> None:
        targets = select(CommandRow.target_id).where(CommandRow.command_id.in_(roots))
        for table, key in (
            (TemplateDiskRow, TemplateDiskRow.template_id),
            (TemplateRow, TemplateRow.template_id),
        ):
            self.session.execute(
                delete(table).where(key.in_(targets)).execution_options(synchronize_session=False)
            )

    def unlock_disks_locked_by(self, roots: Select[Any]) -> None:
        """Disks the commands held locked are usable again."""
        locked = select(EntityLockRow.entity_id).where(
            EntityLockRow.entity_type == "disk", EntityLockRow.command_id.in_(roots)
        )
        self.session.execute(
            update(DiskRow)
            .where(DiskRow.disk_id.in_(locked))
            .values(status="OK")
            .execution_options(synchronize_session=False)
        )

    def settle_tasks_of(
        self, roots: Select[Any], cleanup: str, keep_hosts: Iterable[str] = ()
    ) -> int:
        """Delete the placeholders of the commands that never reached an agent (but keep, as
        debt, those on `keep_hosts`, which could not be asked); mark every other task with
        what is left to do. Returns the placeholders deleted."""
        removed = self.session.execute(
            delete(TaskRow)
            .where(
                TaskRow.root_command_id.in_(roots),
                TaskRow.vdsm_task_id.is_(None),
                TaskRow.cleanup == "",
                TaskRow.host_id.not_in(list(keep_hosts)),
            )
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        self.session.execute(
            update(TaskRow)
            .where(TaskRow.root_command_id.in_(roots), TaskRow.cleanup == "")
            .values(cleanup=cleanup)
            .execution_options(synchronize_session=False)
        )
        return int(removed)

    def release_locks_of(self, roots: Select[Any]) -> None:
        self.session.execute(
            delete(EntityLockRow)
            .where(EntityLockRow.command_id.in_(roots))
            .execution_options(synchronize_session=False)
        )

    def hosts_with_placeholders(self, cutoff: datetime) -> list[HostRow]:
        with_placeholders = select(TaskRow.host_id).where(
            TaskRow.vdsm_task_id.is_(None), TaskRow.cleanup == "", TaskRow.created_at < cutoff
        )
        return list(
            self.session.scalars(select(HostRow).where(HostRow.host_id.in_(with_placeholders)))
        )

    def placeholders_among(self, task_ids: Sequence[str]) -> set[str]:
        """Which of these task ids are placeholders (no agent id yet), in chunks."""
        found: set[str] = set()
        for start in range(0, len(task_ids), 500):
            chunk = list(task_ids[start : start + 500])
            found.update(
                self.session.scalars(
                    select(TaskRow.task_id).where(
                        TaskRow.task_id.in_(chunk), TaskRow.vdsm_task_id.is_(None)
                    )
                )
            )
        return found

    # -- locks and client requests ---------------------------------------------------------

    def release_locks(self, command_id: str) -> None:
        self.release_locks_of(self.one_command(command_id))

    def client_request(self, rpc: str, request_id: str) -> ClientRequestRow | None:
        return self.session.get(ClientRequestRow, (rpc, request_id))
