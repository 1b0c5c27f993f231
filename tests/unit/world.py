"""An engine's service layer over the fakes (fakes.py), with builders for the state a test starts
from. Seeding writes to the committed store directly, as if earlier transactions had."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from engine_service.adapters.agent_client import AgentPool
from engine_service.domain.clock import utcnow
from engine_service.domain.commands import CommandRecord
from engine_service.domain.hosts import Host, HostStatus
from engine_service.domain.inventory import (
    Disk,
    DiskStatus,
    EntityKind,
    EntityLock,
    StorageDomain,
    Vm,
)
from engine_service.domain.tasks import AsyncTask, ReportedStatus, new_id
from engine_service.service_layer.async_task_manager import AsyncTaskManager
from engine_service.service_layer.commands.add_disk import AddDisk
from engine_service.service_layer.commands.add_vm_template import AddVmTemplate
from engine_service.service_layer.commands.base import CommandBase
from engine_service.service_layer.idempotency import optional_request
from engine_service.service_layer.lifecycle import CommandLifecycle
from engine_service.service_layer.polling import Poller, PollResult, PollSettings
from engine_service.service_layer.reconciliation import Reconciler
from engine_service.service_layer.sending import STARTS_PER_HOST
from service_common.vdsm_tasks import TaskResult, TaskState
from tests.unit.fakes import (
    FakeAgentClient,
    FakeAgentPool,
    FakeRepository,
    FakeUnitOfWorkFactory,
    Store,
)


class World:
    """Fakes wired to a CommandLifecycle that never sleeps (its delays are in `sleeps`)."""

    def __init__(
        self, start_attempts: int = 3, starts_per_host: int = STARTS_PER_HOST, **settings: Any
    ) -> None:
        self.uow = FakeUnitOfWorkFactory()
        self.agents = FakeAgentPool(committed=lambda: self.uow.store.tasks)
        self.pool = cast(AgentPool, self.agents)
        self.sleeps: list[float] = []
        self.lanes_run: list[int] = []  # how many lanes each concurrent start had
        self.lifecycle = CommandLifecycle(
            self.uow,
            self.pool,
            start_attempts=start_attempts,
            sleep=self.sleeps.append,
            run_soon=lambda work: work(),  # a next phase starts at once, on this thread
            starts_per_host=starts_per_host,
            lanes=self.run_lanes,  # a command's concurrent starts, one lane after the other
        )
        self.settings = PollSettings(**settings)
        # How many agent calls had been made when each commit happened.
        self.agent_calls_at_commit: list[int] = []
        self.uow.on_commit.append(lambda: self.agent_calls_at_commit.append(len(self.agents.calls)))

    def run_lanes(self, lanes: Sequence[Callable[[], None]]) -> None:
        """The lanes of a command's concurrent starts (sending.py), run one after the other on
        this thread (each takes its host's next task until none is left)."""
        self.lanes_run.append(len(lanes))
        for lane in lanes:
            lane()

    @property
    def store(self) -> Store:
        """The committed state."""
        return self.uow.store

    # -- seeding ----------------------------------------------------------------------------

    def host(self, name: str = "host1", status: HostStatus = HostStatus.UP, **fields: Any) -> Host:
        host = Host(new_id(), name, f"{name}.example:54321", status, **fields)
        self.store.hosts[host.host_id] = host
        return host

    def agent(self, host: Host) -> FakeAgentClient:
        return self.agents.get(host.address)

    def domain(self, name: str = "sd1") -> str:
        domain = StorageDomain(new_id(), name)
        self.store.domains[domain.storage_domain_id] = domain
        return domain.storage_domain_id

    def disk(
        self, sd: str, name: str = "disk", status: DiskStatus = DiskStatus.OK, size: int = 1024
    ) -> Disk:
        disk = Disk(new_id(), name, sd, new_id(), size, status)
        self.store.disks[disk.disk_id] = disk
        return disk

    def vm(self, *disks: Disk, name: str = "vm1") -> Vm:
        vm = Vm(new_id(), name, tuple(d.disk_id for d in disks))
        self.store.vms[vm.vm_id] = vm
        return vm

    def lock(self, entity_id: str, command_id: str, kind: EntityKind = EntityKind.DISK) -> None:
        self.store.locks[(kind, entity_id)] = EntityLock(kind, entity_id, command_id)

    # -- use cases --------------------------------------------------------------------------

    def add_disk(self, sd: str, name: str = "disk", size: int = 1024, request_id: str = "") -> str:
        request = optional_request(
            "AddDisk", request_id, name=name, storage_domain_id=sd, size_bytes=size
        )
        return self.lifecycle.submit(lambda: AddDisk.create(name, sd, size), request).command_id

    def add_template(self, vm: Vm, sd: str, name: str = "tpl", request_id: str = "") -> str:
        request = optional_request(
            "AddVmTemplate", request_id, vm_id=vm.vm_id, name=name, destination_storage_domain_id=sd
        )
        return self.lifecycle.submit(
            lambda: AddVmTemplate.create(vm.vm_id, name, sd), request
        ).command_id

    def commit_only(self, command: CommandBase[Any], host: Host, age: float = 1.0) -> str:
        """Steps 1 to 3 of a submit, committed `age` seconds ago, with nothing sent: what an
        engine that died at `after_placeholders_commit` left."""
        with self.uow() as uow:
            command.validate(uow.repo)
            command.children = command.build_child_commands()
            command.insert_async_task_placeholders(uow.repo, lambda: host.host_id)
            uow.commit()
        for task in self.tasks(command.command_id):
            self.store.tasks[task.task_id].created_at -= timedelta(seconds=age)
        return command.command_id

    def manager(self) -> AsyncTaskManager:
        return AsyncTaskManager(self.uow, self.pool, self.lifecycle, self.settings)

    def poller(self) -> Poller:
        return Poller(self.uow, self.pool, self.settings)

    def reconciler(self, orphans: str = "fail") -> Reconciler:
        return Reconciler(self.uow, self.pool, self.lifecycle, self.manager(), 1.0, orphans)

    def finish_on_agent(
        self, task: AsyncTask, result: TaskResult = TaskResult.SUCCESS, message: str = ""
    ) -> None:
        """Have the agent of the task's host report it finished."""
        assert task.vdsm_task_id is not None
        agent = self.agents.get(self.store.hosts[task.host_id].address)
        agent.report(task.vdsm_task_id, TaskState.FINISHED, result, 100, message)

    def record_poll(self, *hosts: Host, asked_at: datetime | None = None) -> PollResult:
        """What one poll of these hosts' agents would see, recorded (no thread)."""
        result = PollResult()
        for host in hosts:
            result.asked_at[host.host_id] = asked_at or utcnow()
            agent = self.agent(host)
            if agent.down:
                result.unreachable[host.host_id] = "connection refused"
            else:
                result.statuses[host.host_id] = dict(agent.statuses)
        self.poller().record([h.host_id for h in hosts], result)
        return result

    # -- reading the committed state --------------------------------------------------------

    def repo(self) -> Any:
        """A repository straight over the committed store, for hooks called outside a unit of
        work (typed Any: it stands in for the SQL Repository)."""
        return FakeRepository(self.store)

    def command(self, command_id: str) -> CommandRecord:
        return self.store.commands[command_id]

    def children(self, root_id: str) -> list[CommandRecord]:
        return [c for c in self.store.commands.values() if c.parent_id == root_id]

    def tasks(self, root_id: str) -> list[AsyncTask]:
        found = [t for t in self.store.tasks.values() if t.root_command_id == root_id]
        return sorted(found, key=lambda t: (t.created_at, t.task_id))

    def locks(self, command_id: str) -> set[tuple[EntityKind, str]]:
        return {k for k, lock in self.store.locks.items() if lock.command_id == command_id}


def status(
    vdsm_task_id: str,
    state: TaskState = TaskState.RUNNING,
    result: TaskResult = TaskResult.NONE,
    progress: int = 0,
    message: str = "",
) -> ReportedStatus:
    return ReportedStatus(vdsm_task_id, state, result, progress, message)
