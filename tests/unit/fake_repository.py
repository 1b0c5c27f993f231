"""An in-memory repository with the semantics of `engine_service.adapters.repository`. It returns
copies, as rows read back would be (a change is saved only through a repository method); params
and args go through JSON like the real columns; an insert that breaks a uniqueness rule raises
the domain's Conflict, as the real unit of work does."""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, TypeVar

from engine_service.domain.commands import (
    CommandBatch,
    CommandRecord,
    CommandSelection,
    CommandStatus,
    CreatedBefore,
    OnHosts,
    Outcome,
)
from engine_service.domain.history import CommandEvent
from engine_service.domain.hosts import Host, HostStatus
from engine_service.domain.inventory import (
    Disk,
    DiskStatus,
    EntityKind,
    EntityLock,
    StorageDomain,
    Template,
    TemplateStatus,
    Vm,
)
from engine_service.domain.requests import Conflict, StoredRequest
from engine_service.domain.tasks import AsyncTask, TaskCleanup, TaskUpdate, TaskView, Verb
from service_common.vdsm_tasks import TaskState
from tests.unit.fake_history import FakeHistory
from tests.unit.fake_retention import FakeRetention

T = TypeVar("T")
NONE = TaskCleanup.NONE


def _json(value: T) -> T:
    return json.loads(json.dumps(value))


def _put(table: dict[Any, T], key: object, value: T) -> None:
    """An insert: a key taken already breaks the database's uniqueness rule."""
    if key in table:
        raise Conflict(f"duplicate key {key!r}")
    table[key] = value


def _first(found: Iterable[T]) -> T | None:
    return copy.deepcopy(next(iter(found), None))


def view(task: AsyncTask) -> TaskView:
    return TaskView(**{name: getattr(task, name) for name in TaskView.__dataclass_fields__})


@dataclass
class Store:
    """The tables, as dictionaries of the domain's objects."""

    hosts: dict[str, Host] = field(default_factory=dict)
    domains: dict[str, StorageDomain] = field(default_factory=dict)
    disks: dict[str, Disk] = field(default_factory=dict)
    vms: dict[str, Vm] = field(default_factory=dict)
    templates: dict[str, Template] = field(default_factory=dict)
    commands: dict[str, CommandRecord] = field(default_factory=dict)
    tasks: dict[str, AsyncTask] = field(default_factory=dict)
    locks: dict[tuple[EntityKind, str], EntityLock] = field(default_factory=dict)
    requests: dict[tuple[str, str], StoredRequest] = field(default_factory=dict)
    # (host id, agent task id) -> when a poll first saw that zombie
    zombie_sightings: dict[tuple[str, str], datetime] = field(default_factory=dict)
    events: list[CommandEvent] = field(default_factory=list)  # in insertion order


class FakeRepository(FakeRetention, FakeHistory):
    """The repository's public methods that the service layer calls, over a Store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def host(self, host_id: str, for_update: bool = False) -> Host | None:
        return copy.deepcopy(self.store.hosts.get(host_id))

    def host_by(self, *, name: str | None = None, address: str | None = None) -> Host | None:
        key, value = ("name", name) if name is not None else ("address", address)
        return _first(h for h in self.store.hosts.values() if getattr(h, key) == value)

    def hosts(self, after: str | None = None, limit: int | None = None) -> list[Host]:
        found = sorted(self.store.hosts.values(), key=lambda h: h.name)
        return copy.deepcopy([h for h in found if after is None or h.name > after][:limit])

    def hosts_with_status(self, status: HostStatus) -> list[Host]:
        return [h for h in self.hosts() if h.status == status]

    def unreachable_hosts(self) -> list[Host]:
        return [h for h in self.hosts() if h.unreachable_since is not None]

    def hosts_in(self, host_ids: Sequence[str]) -> dict[str, Host]:
        return {h.host_id: h for h in self.hosts() if h.host_id in host_ids}

    def hosts_for_update(self, host_ids: Sequence[str]) -> dict[str, Host]:
        return {h.host_id: h for h in self.hosts() if h.host_id in host_ids}

    def add_host(self, host: Host) -> None:
        _put(self.store.hosts, host.host_id, copy.deepcopy(host))

    def save_hosts(self, hosts: Iterable[Host]) -> None:
        """Only the columns a transition changes."""
        for h in hosts:
            if (stored := self.store.hosts.get(h.host_id)) is not None:
                stored.status, stored.failed_polls = h.status, h.failed_polls
                stored.unreachable_since, stored.last_seen_at = h.unreachable_since, h.last_seen_at

    def save_fencing(self, host: Host) -> None:
        stored = self.store.hosts[host.host_id]
        stored.confirmed_rebooted_at = host.confirmed_rebooted_at
        stored.confirmed_rebooted_by = host.confirmed_rebooted_by
        stored.confirmed_rebooted_reason = host.confirmed_rebooted_reason

    def images_owed_on(self, host_id: str) -> list[tuple[str, str]]:
        return [
            (t.storage_domain_id, t.image_id)
            for t in self.store.tasks.values()
            if t.host_id == host_id and t.cleanup is TaskCleanup.COMPENSATE
        ]

    def delete_tasks_on_host(self, host_id: str) -> int:
        doomed = [t for t, task in self.store.tasks.items() if task.host_id == host_id]
        for task_id in doomed:
            del self.store.tasks[task_id]
        return len(doomed)

    def remove_host(self, host_id: str) -> None:
        self.store.hosts.pop(host_id, None)

    def up_hosts_with_load(self) -> tuple[list[Host], dict[str, int]]:
        load = self.tasks_per_host()
        up = self.hosts_with_status(HostStatus.UP)
        return up, {h.host_id: load.get(h.host_id, 0) for h in up}

    def tasks_per_host(self) -> dict[str, int]:
        return dict(Counter(t.host_id for t in self.store.tasks.values()))

    def hosts_with_placeholders(self, cutoff: datetime) -> list[Host]:
        ids = {t.host_id for t in self._unsent() if t.created_at < cutoff}
        return [h for h in self.hosts() if h.host_id in ids]

    def refresh_statistics(self) -> None:
        pass

    def storage_domain(self, storage_domain_id: str) -> StorageDomain | None:
        return self.store.domains.get(storage_domain_id)

    def storage_domain_by_name(self, name: str) -> StorageDomain | None:
        return _first(d for d in self.store.domains.values() if d.name == name)

    def storage_domains(
        self, after: str | None = None, limit: int | None = None
    ) -> list[StorageDomain]:
        found = sorted(self.store.domains.values(), key=lambda d: d.name)
        return [d for d in found if after is None or d.name > after][:limit]

    def add_storage_domain(self, domain: StorageDomain) -> None:
        _put(self.store.domains, domain.storage_domain_id, domain)

    def disk(self, disk_id: str) -> Disk | None:
        return self.disks([disk_id]).get(disk_id)

    def disks(self, ids: Iterable[str]) -> dict[str, Disk]:
        return copy.deepcopy({i: self.store.disks[i] for i in ids if i in self.store.disks})

    def disk_with_image(self, storage_domain_id: str, image_id: str) -> Disk | None:
        image = (storage_domain_id, image_id)
        return _first(
            d for d in self.store.disks.values() if (d.storage_domain_id, d.image_id) == image
        )

    def add_disks(self, disks: Iterable[Disk]) -> None:
        for d in disks:
            _put(self.store.disks, d.disk_id, copy.deepcopy(d))

    def set_disk_status(self, disk_ids: Iterable[str], status: DiskStatus) -> None:
        for disk_id in disk_ids:
            if disk_id in self.store.disks:
                self.store.disks[disk_id].status = status

    def disk_users(self, disk_id: str) -> tuple[list[str], list[str]]:
        vms = [v.vm_id for v in self.store.vms.values() if disk_id in v.disk_ids]
        templates = [t.template_id for t in self.store.templates.values() if disk_id in t.disk_ids]
        return vms, templates

    def lock_holder(self, kind: EntityKind, entity_id: str) -> str | None:
        lock = self.store.locks.get((kind, entity_id))
        return lock.command_id if lock is not None else None

    def move_disk(self, disk_id: str, storage_domain_id: str, image_id: str) -> None:
        disk = self.store.disks[disk_id]
        disk.storage_domain_id, disk.image_id = storage_domain_id, image_id

    def delete_disks(self, disk_ids: Iterable[str]) -> None:
        for disk_id in disk_ids:
            self.store.disks.pop(disk_id, None)

    def delete_templates(self, template_ids: Iterable[str]) -> None:
        for template_id in template_ids:
            self.store.templates.pop(template_id, None)

    def vm(self, vm_id: str) -> Vm | None:
        return self.store.vms.get(vm_id)

    def add_vm(self, vm: Vm) -> None:
        _put(self.store.vms, vm.vm_id, vm)

    def vm_disks_and_locks(self, vm_id: str) -> list[tuple[Disk, str | None]] | None:
        """The VM's disks in order, each with the command locking it; None without the VM."""
        vm, disks = self.store.vms.get(vm_id), self.store.disks
        if vm is None:
            return None
        locks = self.store.locks.items()
        holders = {e: lock.command_id for (k, e), lock in locks if k == EntityKind.DISK}
        return [(copy.deepcopy(disks[d]), holders.get(d)) for d in vm.disk_ids if d in disks]

    def template(self, template_id: str) -> Template | None:
        return self.store.templates.get(template_id)

    def template_by_name(self, name: str) -> Template | None:
        return next((t for t in self.store.templates.values() if t.name == name), None)

    def add_template(self, template: Template) -> None:
        if self.template_by_name(template.name) is not None:
            raise Conflict(f"template name {template.name!r} is taken")
        _put(self.store.templates, template.template_id, template)

    def set_template_status(self, template_ids: Iterable[str], status: TemplateStatus) -> None:
        for template_id in template_ids:
            if (found := self.store.templates.get(template_id)) is not None:
                self.store.templates[template_id] = replace(found, status=status)

    def command(self, command_id: str) -> CommandRecord | None:
        return copy.deepcopy(self.store.commands.get(command_id))

    def command_for_update(self, command_id: str) -> CommandRecord | None:
        return self.command(command_id)

    def commands_for_update(self, command_ids: Sequence[str]) -> dict[str, CommandRecord]:
        return {
            i: copy.deepcopy(c)
            for i in sorted(set(command_ids))
            if (c := self.store.commands.get(i)) is not None
        }

    def _family(self, ids: set[str]) -> list[CommandRecord]:
        found = [c for c in self.store.commands.values() if {c.command_id, c.parent_id} & ids]
        return copy.deepcopy(sorted(found, key=lambda c: (c.created_at, c.command_id)))

    def command_family(self, command_id: str) -> list[CommandRecord]:
        return self._family({command_id})

    def children_of_many(self, command_ids: Sequence[str]) -> dict[str, list[CommandRecord]]:
        found: dict[str, list[CommandRecord]] = {}
        for child in self._family(set(command_ids)):
            if child.parent_id is not None and child.parent_id in command_ids:
                found.setdefault(child.parent_id, []).append(child)
        return found

    def add_commands(self, commands: Iterable[CommandRecord]) -> None:
        for c in commands:
            _put(self.store.commands, c.command_id, replace(c, params=_json(c.params)))

    def end_command_tree(self, root_id: str, outcome: Outcome, now: datetime) -> bool:
        """CommandRecord.end for the command, then its ACTIVE children; False if it was not
        ACTIVE."""
        root = self.store.commands.get(root_id)
        if root is None or not root.end(outcome, now):
            return False
        for child in self.store.commands.values():
            if child.parent_id == root_id:
                child.end(outcome, now)  # only an ACTIVE child changes
        return True

    def end_command_trees(self, root_ids: Sequence[str], outcome: Outcome, now: datetime) -> int:
        return sum(
            self.end_command_tree(i, outcome, now)
            for i in root_ids
            if (c := self.store.commands.get(i)) is not None and c.parent_id is None
        )

    def _roots(self) -> list[CommandRecord]:
        return [c for c in self.store.commands.values() if c.parent_id is None]

    def active_root_ids(self) -> list[str]:
        return [c.command_id for c in self._roots() if c.status == CommandStatus.ACTIVE]

    def count_active_roots(self) -> int:
        return len(self.active_root_ids())

    def active_roots_by_type(self) -> dict[str, int]:
        return dict(
            Counter(c.action_type for c in self._roots() if c.status is CommandStatus.ACTIVE)
        )

    def oldest_active_root_created_at(self) -> datetime | None:
        return min(
            (c.created_at for c in self._roots() if c.status is CommandStatus.ACTIVE), default=None
        )

    def add_locks(self, locks: Iterable[EntityLock], now: datetime) -> None:
        for lock in locks:
            _put(self.store.locks, (lock.kind, lock.entity_id), lock)

    def client_request(self, rpc: str, request_id: str) -> StoredRequest | None:
        return self.store.requests.get((rpc, request_id))

    def add_client_request(self, request: StoredRequest) -> None:
        _put(self.store.requests, (request.rpc, request.request_id), request)

    def _unsent(self) -> list[AsyncTask]:
        tasks = self.store.tasks.values()
        return [t for t in tasks if t.vdsm_task_id is None and t.cleanup == NONE]

    def task(self, task_id: str) -> AsyncTask | None:
        return copy.deepcopy(self.store.tasks.get(task_id))

    def tasks_of(self, root_id: str) -> list[AsyncTask]:
        return self.tasks_of_many([root_id])

    def tasks_of_many(self, root_ids: Iterable[str]) -> list[AsyncTask]:
        roots = set(root_ids)
        found = [t for t in self.store.tasks.values() if t.root_command_id in roots]
        return copy.deepcopy(sorted(found, key=lambda t: (t.created_at, t.task_id)))

    def add_tasks(self, tasks: Iterable[AsyncTask]) -> None:
        for t in tasks:
            _put(self.store.tasks, t.task_id, replace(t, args=_json(t.args)))

    def move_task(self, task_id: str, host_id: str) -> None:
        if task_id in self.store.tasks:
            self.store.tasks[task_id].host_id = host_id

    def active_tasks(
        self, host_ids: Sequence[str] | None = None, decidable_only: bool = False
    ) -> list[TaskView]:
        """Tasks with no cleanup (of ACTIVE commands); with `decidable_only`, of commands with
        at least one such task FINISHED."""
        active = [t for t in self.store.tasks.values() if t.cleanup == NONE]
        decidable = {t.root_command_id for t in active if t.state == TaskState.FINISHED}
        return [
            view(t)
            for t in active
            if (host_ids is None or t.host_id in host_ids)
            and (not decidable_only or t.root_command_id in decidable)
        ]

    def submitted_tasks_on(self, host_ids: Sequence[str]) -> list[TaskView]:
        tasks = self.store.tasks.values()
        return [view(t) for t in tasks if t.host_id in host_ids and t.vdsm_task_id is not None]

    def tasks_to_clean(self) -> list[AsyncTask]:
        return copy.deepcopy([t for t in self.store.tasks.values() if t.cleanup != NONE])

    def active_placeholders(self) -> list[AsyncTask]:
        return copy.deepcopy(self._unsent())

    def set_vdsm_task_id(self, task_id: str, vdsm_task_id: str, now: datetime) -> bool:
        """False if the placeholder is gone."""
        task = self.store.tasks.get(task_id)
        if task is None:
            return False
        task.vdsm_task_id, task.submitted_at = vdsm_task_id, now
        return True

    def set_vdsm_task_ids(self, agent_ids: Mapping[str, str], now: datetime) -> set[str]:
        return {t for t, a in agent_ids.items() if self.set_vdsm_task_id(t, a, now)}

    def update_tasks(self, updates: Sequence[TaskUpdate]) -> None:
        for update in updates:
            if (task := self.store.tasks.get(update.task_id)) is not None:
                for name, value in update.values.items():
                    setattr(task, name, value)

    def mark_unresolved(self, task_ids: Sequence[str]) -> None:
        for task_id in task_ids:
            if task_id in self.store.tasks:
                self.store.tasks[task_id].cleanup = TaskCleanup.COMPENSATE

    def delete_tasks(self, task_ids: Sequence[str]) -> None:
        for task_id in task_ids:
            self.store.tasks.pop(task_id, None)

    def known_among(
        self, column: Literal["task_id", "vdsm_task_id"], ids: Sequence[str]
    ) -> set[str]:
        held = {getattr(t, column) for t in self.store.tasks.values()}
        return {i for i in ids if i in held}

    def placeholders_among(self, task_ids: Sequence[str]) -> set[str]:
        tasks = self.store.tasks
        return {i for i in task_ids if i in tasks and tasks[i].vdsm_task_id is None}

    def zombie_sightings(self, host_ids: Sequence[str]) -> dict[tuple[str, str], datetime]:
        hosts = set(host_ids)
        return {k: at for k, at in self.store.zombie_sightings.items() if k[0] in hosts}

    def add_zombie_sightings(self, sightings: Mapping[tuple[str, str], datetime]) -> None:
        for key, at in sightings.items():
            _put(self.store.zombie_sightings, key, at)

    def forget_zombie_sightings(self, keys: Iterable[tuple[str, str]]) -> None:
        for key in keys:
            self.store.zombie_sightings.pop(key, None)

    def forget_sightings_of_host(self, host_id: str) -> None:
        for key in [k for k in self.store.zombie_sightings if k[0] == host_id]:
            del self.store.zombie_sightings[key]

    def _in(self, batch: CommandBatch) -> list[str]:
        """ids_of(batch): `ids` select any command, `ended` top-level ones ended together."""
        found = []
        for c in self.store.commands.values():
            ended = (c.parent_id, c.status, c.failure_reason, c.ended_at)
            if (
                (batch.ids is None or c.command_id in batch.ids)
                and (
                    batch.ended is None
                    or ended == (None, batch.ended.status, batch.ended.reason, batch.ended_at)
                )
                and (batch.action_type is None or c.action_type == batch.action_type)
            ):
                found.append(c.command_id)
        return found

    def _selected(self, selection: CommandSelection) -> set[str]:
        if isinstance(selection, CreatedBefore):
            return {c.command_id for c in self._roots() if c.created_at < selection.cutoff}
        if isinstance(selection, OnHosts):
            return {
                t.root_command_id
                for t in self.store.tasks.values()
                if t.host_id in selection.host_ids and t.cleanup is TaskCleanup.NONE
            }
        return {
            t.root_command_id
            for t in self._unsent()
            if t.created_at < selection.cutoff
            and t.root_command_id not in selection.executing
            and (selection.only_hosts is None or t.host_id in selection.only_hosts)
        }

    def end_active_commands(
        self, selection: CommandSelection, outcome: Outcome, now: datetime
    ) -> CommandBatch:
        """End the ACTIVE top-level commands `selection` selects, then their ACTIVE children."""
        roots = self._selected(selection)
        for c in self._roots():
            if c.command_id in roots:
                c.end(outcome, now)
        batch = CommandBatch.ended_together(outcome, now)
        ended = set(self._in(batch))
        for c in self.store.commands.values():
            if c.parent_id in ended:
                c.end(outcome, now)
        return batch

    def created_times_in(self, batch: CommandBatch) -> list[tuple[str, datetime]]:
        return [
            (self.store.commands[c].action_type, self.store.commands[c].created_at)
            for c in self._in(batch)
        ]

    def command_ids_in(self, batch: CommandBatch, limit: int | None = None) -> list[str]:
        """Oldest command first; the first `limit` if given."""
        commands = [self.store.commands[c] for c in self._in(batch)]
        commands.sort(key=lambda c: (c.created_at, c.command_id))
        return [c.command_id for c in commands][:limit]

    def commands_in(self, batch: CommandBatch) -> Iterator[CommandRecord]:
        return iter(copy.deepcopy([self.store.commands[c] for c in self._in(batch)]))

    def delete_disks_written_by(self, batch: CommandBatch) -> None:
        roots = set(self._in(batch))
        images = {t.image_id for t in self.store.tasks.values() if t.root_command_id in roots}
        for disk in list(self.store.disks.values()):
            if disk.image_id in images:
                del self.store.disks[disk.disk_id]

    def delete_templates_made_by(self, batch: CommandBatch) -> None:
        for command_id in self._in(batch):
            self.store.templates.pop(str(self.store.commands[command_id].target_id), None)

    def _locked_by(self, kind: EntityKind, batch: CommandBatch) -> list[str]:
        commands = set(self._in(batch))
        return [
            e
            for (k, e), lock in self.store.locks.items()
            if k == kind and lock.command_id in commands
        ]

    def delete_disks_locked_by(self, batch: CommandBatch) -> None:
        self.delete_disks(self._locked_by(EntityKind.DISK, batch))

    def delete_templates_locked_by(self, batch: CommandBatch) -> None:
        self.delete_templates(self._locked_by(EntityKind.TEMPLATE, batch))

    def delete_vms_made_by(self, batch: CommandBatch) -> None:
        for command_id in self._in(batch):
            self.store.vms.pop(str(self.store.commands[command_id].target_id), None)

    def unlock_disks_locked_by(self, batch: CommandBatch) -> None:
        commands = set(self._in(batch))
        for (kind, entity_id), lock in self.store.locks.items():
            if kind == EntityKind.DISK and lock.command_id in commands:
                self.set_disk_status([entity_id], DiskStatus.OK)

    def settle_tasks_of(
        self, batch: CommandBatch, cleanup: TaskCleanup, keep_hosts: Iterable[str] = ()
    ) -> int:
        """Delete the batch's unsent placeholders (except on `keep_hosts`), mark the other
        uncleaned tasks with `cleanup`; returns the number deleted."""
        roots, keep = set(self._in(batch)), set(keep_hosts)
        doomed = [
            t.task_id
            for t in self._unsent()
            if t.root_command_id in roots
            and t.host_id not in keep
            and t.verb != Verb.REMOVE_IMAGE  # a removal's compensation finishes it
        ]
        self.delete_tasks(doomed)
        for t in self.store.tasks.values():
            if t.root_command_id in roots and t.cleanup == NONE:
                t.cleanup = cleanup
        return len(doomed)

    def release_locks_of(self, batch: CommandBatch) -> None:
        commands = set(self._in(batch))
        for key in [k for k, lock in self.store.locks.items() if lock.command_id in commands]:
            del self.store.locks[key]
