"""The engine's use cases over commands, and its start and stop; the entrypoints call these."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from engine_service.adapters.agent_client import AgentPool
from engine_service.adapters.repository import Repository
from engine_service.domain.commands import CommandFilter, CommandStatus
from engine_service.domain.history import CommandEvent
from engine_service.domain.inventory import Disk, Template, Vm
from engine_service.service_layer.async_task_manager import AsyncTaskManager
from engine_service.service_layer.commands.add_disk import AddDisk
from engine_service.service_layer.commands.add_vm_from_template import AddVmFromTemplate
from engine_service.service_layer.commands.add_vm_template import AddVmTemplate
from engine_service.service_layer.commands.base import CommandBase
from engine_service.service_layer.commands.move_disk import MoveDisk
from engine_service.service_layer.commands.remove_disk import RemoveDisk
from engine_service.service_layer.commands.remove_vm_template import RemoveVmTemplate
from engine_service.service_layer.fencing import Fenced, confirm_host_rebooted
from engine_service.service_layer.idempotency import optional_request
from engine_service.service_layer.inventory import Inventory, require_name, require_size
from engine_service.service_layer.lifecycle import CommandLifecycle, Submission
from engine_service.service_layer.reconciliation import Reconciler, ReconcileReport
from engine_service.service_layer.retention import Pruner
from engine_service.service_layer.unit_of_work import UnitOfWorkFactory
from engine_service.service_layer.views import (
    CommandView,
    checked_filter,
    command_view,
    command_views,
    decode_event_token,
    decode_token,
    encode_event_token,
    encode_token,
    held_view,
    page_size,
)
from service_common.errors import FailedPrecondition, InvalidArgument, NotFound
from service_common.ids import require_uuid

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Engine:
    """The engine's parts, wired by bootstrap; the entrypoints call its use cases."""

    uow: UnitOfWorkFactory
    agents: AgentPool
    lifecycle: CommandLifecycle
    manager: AsyncTaskManager
    reconciler: Reconciler
    inventory: Inventory
    pruner: Pruner | None = None  # --retention; None keeps everything

    # -- start and stop ----------------------------------------------------------------------

    def start(self) -> ReconcileReport:
        """Reconcile (before the engine may report SERVING), then start polling."""
        with self.uow() as uow:
            uow.repo.refresh_statistics()  # a restart may follow a burst of new rows
            uow.commit()
        self.inventory.warn_of_plaintext_hosts()
        report = self.reconciler.reconcile()
        self.reconciler.startup_report = report
        self.reconciler.startup_at = self.reconciler.last_at
        self.manager.start()
        if self.pruner is not None:
            self.pruner.start()  # its own thread: pruning never delays a poll
        return report

    def stop(self) -> None:
        if self.pruner is not None:
            self.pruner.stop()
        self.manager.stop()
        self.lifecycle.close()
        self.agents.close()

    # -- commands ----------------------------------------------------------------------------

    def add_disk(
        self,
        name: str,
        storage_domain_id: str,
        size_bytes: int,
        request_id: str = "",
        by: str = "",
    ) -> tuple[Disk | None, CommandView]:
        name = require_name("name", name)
        storage_domain_id = require_uuid("storage_domain_id", storage_domain_id)
        size_bytes = require_size("size_bytes", size_bytes)
        request = optional_request(
            "AddDisk",
            request_id,
            name=name,
            storage_domain_id=storage_domain_id,
            size_bytes=size_bytes,
        )
        submitted = self.lifecycle.submit(
            lambda: AddDisk.create(name, storage_domain_id, size_bytes), request, by=by
        )
        return self._reply(submitted, Disk, lambda repo, target: repo.disk(target))

    def add_vm_template(
        self,
        vm_id: str,
        name: str,
        destination_storage_domain_id: str,
        request_id: str = "",
        by: str = "",
    ) -> tuple[Template | None, CommandView]:
        vm_id = require_uuid("vm_id", vm_id)
        name = require_name("name", name)
        destination = require_uuid("destination_storage_domain_id", destination_storage_domain_id)
        request = optional_request(
            "AddVmTemplate",
            request_id,
            vm_id=vm_id,
            name=name,
            destination_storage_domain_id=destination,
        )
        submitted = self.lifecycle.submit(
            lambda: AddVmTemplate.create(vm_id, name, destination), request, by=by
        )
        # No template: the command failed already and its template is gone.
        return self._reply(submitted, Template, lambda repo, target: repo.template(target))

    def remove_disk(
        self, disk_id: str, request_id: str = "", by: str = ""
    ) -> tuple[Disk | None, CommandView]:
        disk_id = require_uuid("disk_id", disk_id)
        request = optional_request("RemoveDisk", request_id, disk_id=disk_id)
        submitted = self.lifecycle.submit(lambda: RemoveDisk.create(disk_id), request, by=by)
        return self._reply(submitted, Disk, lambda repo, target: repo.disk(target))

    def move_disk(
        self, disk_id: str, destination_storage_domain_id: str, request_id: str = "", by: str = ""
    ) -> tuple[Disk | None, CommandView]:
        disk_id = require_uuid("disk_id", disk_id)
        destination = require_uuid("destination_storage_domain_id", destination_storage_domain_id)
        request = optional_request(
            "MoveDisk", request_id, disk_id=disk_id, destination_storage_domain_id=destination
        )
        submitted = self.lifecycle.submit(
            lambda: MoveDisk.create(disk_id, destination), request, by=by
        )
        return self._reply(submitted, Disk, lambda repo, target: repo.disk(target))

    def remove_vm_template(
        self, template_id: str, request_id: str = "", by: str = ""
    ) -> tuple[Template | None, CommandView]:
        template_id = require_uuid("template_id", template_id)
        request = optional_request("RemoveVmTemplate", request_id, template_id=template_id)
        submitted = self.lifecycle.submit(
            lambda: RemoveVmTemplate.create(template_id), request, by=by
        )
        return self._reply(submitted, Template, lambda repo, target: repo.template(target))

    def add_vm_from_template(
        self,
        template_id: str,
        name: str,
        destination_storage_domain_id: str,
        request_id: str = "",
        by: str = "",
    ) -> tuple[Vm | None, CommandView]:
        template_id = require_uuid("template_id", template_id)
        name = require_name("name", name)
        destination = require_uuid("destination_storage_domain_id", destination_storage_domain_id)
        request = optional_request(
            "AddVmFromTemplate",
            request_id,
            template_id=template_id,
            name=name,
            destination_storage_domain_id=destination,
        )
        submitted = self.lifecycle.submit(
            lambda: AddVmFromTemplate.create(template_id, name, destination), request, by=by
        )
        return self._reply(submitted, Vm, lambda repo, target: repo.vm(target))

    def _reply(
        self, submitted: Submission, kind: type[T], entity: Callable[[Repository, str], T | None]
    ) -> tuple[T | None, CommandView]:
        """A submitted command and its target entity (None if the command has ended and the
        entity is gone): as the submission left them if it holds them (every start stored,
        the entity one of `kind`), else read back in one read."""
        held = submitted.held
        if held is not None and isinstance(held.entity, kind):
            return held.entity, held_view(held.records, held.tasks)
        with self.uow(read_only=True) as uow:
            view = command_view(uow.repo, submitted.command_id)
            found = entity(uow.repo, view.target_id) if view.target_id else None
        return found, view

    def command(self, command_id: str) -> CommandView:
        command_id = require_uuid("command_id", command_id)
        with self.uow(read_only=True) as uow:
            return command_view(uow.repo, command_id)

    def commands(
        self, where: CommandFilter, size: int, token: str
    ) -> tuple[list[CommandView], str]:
        """A page of the top-level commands `where` admits, newest first."""
        where, limit, after = checked_filter(where), page_size(size), decode_token(token)
        with self.uow(read_only=True) as uow:
            rows = uow.repo.command_page(where, after, limit + 1)
            more = len(rows) > limit
            rows = rows[:limit]
            views = command_views(uow.repo, rows)
        last = rows[-1] if rows else None
        return views, encode_token(last.created_at, last.command_id) if more and last else ""

    def retry(self, command_id: str, request_id: str = "", by: str = "") -> CommandView:
        """Run a FAILED or CANCELLED top-level command again as a new command with the same
        parameters; both histories name each other."""
        command_id = require_uuid("command_id", command_id)
        request = optional_request("RetryCommand", request_id, command_id=command_id)
        with self.uow(read_only=True) as uow:
            record = uow.repo.command(command_id)
        if record is None:
            raise NotFound(f"command_id: no command {command_id}")
        if record.parent_id is not None:
            raise FailedPrecondition(
                f"command {command_id} is a child of {record.parent_id}: retry the parent"
            )
        if record.status not in (CommandStatus.FAILED, CommandStatus.CANCELLED):
            raise FailedPrecondition(
                f"command {command_id} is {record.status.value}: only a FAILED or CANCELLED "
                "command can be retried"
            )
        old = CommandBase.from_record(record)
        new_id = self.lifecycle.submit(old.again, request, retry_of=command_id, by=by).command_id
        return self.command(new_id)

    def command_events(
        self, command_id: str, size: int, token: str
    ) -> tuple[list[CommandEvent], str]:
        """A top-level command's history, oldest first, a page at a time."""
        command_id = require_uuid("command_id", command_id)
        limit, after = page_size(size), decode_event_token(token)
        with self.uow(read_only=True) as uow:
            record = uow.repo.command(command_id)
            if record is None:
                raise NotFound(f"command_id: no command {command_id}")
            if record.parent_id is not None:
                raise InvalidArgument(
                    "command_id",
                    f"{command_id} is a child of {record.parent_id}: its history is its parent's",
                )
            events = uow.repo.events_of(command_id, after, limit + 1)
        more = len(events) > limit
        events = events[:limit]
        return events, encode_event_token(events[-1].event_id) if more and events else ""

    def cancel(self, command_id: str, by: str = "") -> CommandView:
        command_id = require_uuid("command_id", command_id)
        self.lifecycle.cancel(command_id, by)
        return self.command(command_id)

    def confirm_host_rebooted(self, host_id: str, reason: str, by: str) -> Fenced:
        """Fencing: the operator asserts the host is down (fencing.py)."""
        deadline, seen = self.inventory.agent_deadline, self.inventory.last_seen
        return confirm_host_rebooted(self.uow, self.agents, host_id, reason, by, deadline, seen)

    def reconcile(self) -> ReconcileReport:
        return self.reconciler.reconcile()
