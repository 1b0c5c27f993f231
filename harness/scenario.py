"""A small data center driven through the engine's API: hosts, storage domains, disks, a VM.

dc = DataCenter(engine, agents)          # processes already started
dc.register_hosts()
src, dst = dc.add_domain("data1"), dc.add_domain("data2")
vm = dc.add_vm("vm1", [dc.add_disk(src, 4 << 20) for _ in range(3)])
command = dc.start_template(vm, "tpl", dst)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

from engine_service.v1 import engine_service_pb2 as pb
from engine_service.v1 import engine_service_pb2_grpc as pb_grpc
from harness.engine_client import RPC_TIMEOUT, settled, wait_command
from harness.invariants import assert_settled, storage_debris
from harness.processes import AgentProcess, EngineProcess

T = RPC_TIMEOUT


class DataCenter:
    """An engine and its agents as one data center: registers the agents as hosts and wraps the
    engine RPCs a scenario uses."""

    def __init__(self, engine: EngineProcess, agents: list[AgentProcess]) -> None:
        self.engine = engine
        self.agents = agents
        self.hosts: dict[str, pb.Host] = {}  # agent workdir name -> host

    @property
    def stub(self) -> pb_grpc.EngineServiceStub:
        return self.engine.stub()

    @property
    def storage_root(self) -> Path:
        return self.agents[0].storage_root

    def register_hosts(self) -> None:
        """Add every agent not registered yet as a host named after its directory."""
        for agent in self.agents:
            name = agent.workdir.name
            if name in self.hosts:
                continue
            reply = self.stub.AddHost(
                pb.AddHostRequest(name=name, address=agent.address), timeout=T
            )
            self.hosts[name] = reply.host

    def restart_agent(
        self, agent: AgentProcess, crash_at: str | None = None, timeout: float = 30.0
    ) -> None:
        """SIGKILL a host's agent, start it again (armed at `crash_at` if given) and wait until
        a poll after the restart has succeeded. Polls that began while the agent was down
        still count as failures when they end, and three make the host NON_RESPONSIVE for a
        moment, when no new task may go there. One poll per host is in flight at a time, so
        once one that began after the restart succeeds, no stale failure can follow."""
        agent.kill()
        agent.start(crash_at=crash_at)
        back_at = time.time()
        name = agent.workdir.name
        deadline = time.monotonic() + timeout
        while True:
            hosts = {h.name: h for h in self.stub.ListHosts(pb.ListHostsRequest(), timeout=T).hosts}
            host = hosts[name]
            seen = host.last_seen_at.seconds + host.last_seen_at.nanos / 1e9
            if seen > back_at and host.status in (pb.HOST_STATUS_UP, pb.HOST_STATUS_MAINTENANCE):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"host {name} not seen UP since its restart after {timeout}s")
            time.sleep(0.05)

    def add_domain(self, name: str) -> str:
        reply = self.stub.AddStorageDomain(pb.AddStorageDomainRequest(name=name), timeout=T)
        return reply.storage_domain.storage_domain_id

    def add_disk(
        self, storage_domain_id: str, size_bytes: int, name: str = "disk", wait: bool = True
    ) -> str:
        reply = self.stub.AddDisk(
            pb.AddDiskRequest(
                name=name,
                storage_domain_id=storage_domain_id,
                size_bytes=size_bytes,
                request_id=str(uuid.uuid4()),
            ),
            timeout=T,
        )
        if wait:
            command = wait_command(self.stub, reply.command.command_id)
            if command.status != pb.COMMAND_STATUS_SUCCEEDED:
                raise RuntimeError(f"AddDisk failed: {command.failure_reason}")
        return reply.disk.disk_id

    def add_vm(self, name: str, disk_ids: list[str]) -> str:
        return self.stub.AddVm(pb.AddVmRequest(name=name, disk_ids=disk_ids), timeout=T).vm.vm_id

    def start_template(
        self, vm_id: str, name: str, destination: str, request_id: str = ""
    ) -> pb.AddVmTemplateResponse:
        request = pb.AddVmTemplateRequest(
            vm_id=vm_id,
            name=name,
            destination_storage_domain_id=destination,
            request_id=request_id or str(uuid.uuid4()),
        )
        return self.stub.AddVmTemplate(request, timeout=T)

    def disk(self, disk_id: str) -> pb.Disk:
        return self.stub.GetDisk(pb.GetDiskRequest(disk_id=disk_id), timeout=T).disk

    def image_path(self, disk: pb.Disk) -> Path:
        return self.storage_root / disk.storage_domain_id / "images" / disk.image_id

    def image_files(self) -> set[str]:
        """Every file under the storage root, relative to it."""
        root = self.storage_root
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}

    def agent_tasks(self) -> list[tuple[str, str]]:
        """(agent name, agent task id) of every task any agent still knows."""
        from vdsm_agent.v1 import agent_service_pb2 as apb

        found = []
        for agent in self.agents:
            reply = agent.stub().GetAllTasksInfo(apb.GetAllTasksInfoRequest(), timeout=T)
            found += [(agent.workdir.name, t.task_id) for t in reply.tasks]
        return found

    def commands(self) -> list[pb.Command]:
        """Every top-level command, newest first (all pages)."""
        found: list[pb.Command] = []
        request = pb.ListCommandsRequest(page_size=500)
        while True:
            reply = self.stub.ListCommands(request, timeout=T)
            found += reply.commands
            if not reply.next_page_token:
                return found
            request.page_token = reply.next_page_token

    def wait_settled(self, timeout: float = 60.0) -> list[pb.Command]:
        """Wait until every command is terminal with no task left to clean."""
        deadline = time.monotonic() + timeout
        while True:
            commands = self.commands()
            if all(settled(c) for c in commands):
                return commands
            if time.monotonic() > deadline:
                busy = [c for c in commands if not settled(c)]
                raise TimeoutError(f"{len(busy)} command(s) not settled after {timeout}s: {busy}")
            time.sleep(0.1)

    def check_invariants(self, timeout: float = 60.0) -> list[pb.Command]:
        """docs/design.md §5, from outside, once everything settled: every command terminal, no
        placeholder, lock or LOCKED entity in the database, no task left on any agent, no
        partial or orphaned image file on storage. Returns the commands."""
        deadline = time.monotonic() + timeout
        commands = self.wait_settled(timeout)
        assert_settled(self.engine.database_url)
        # Zombies (agent tasks no command asked for) are cleared after their grace period.
        while True:
            tasks = self.agent_tasks()
            debris = storage_debris(self.engine.database_url, self.storage_root)
            if (not tasks and not debris) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert tasks == [], tasks
        assert debris == [], debris
        return commands


def build_datacenter(
    make_agent: Callable[..., AgentProcess],
    make_engine: Callable[..., EngineProcess],
    hosts: int = 1,
    throttle: int | None = None,
    engine_args: list[str] | None = None,
    disks: int = 3,
    disk_bytes: int = 2 << 20,
) -> tuple[DataCenter, str, str, str]:
    """A data center with a VM of `disks` disks; returns (dc, vm id, source domain, destination
    domain). With `throttle`, the hosts are throttled, and the disks are made beforehand by an
    unthrottled host "setup" that is put in maintenance afterwards (it stays UP for polling)."""
    agents = [make_agent(f"host{i + 1}", throttle=throttle) for i in range(hosts)]
    engine = make_engine(extra_args=engine_args or [])
    setup = make_agent("setup") if throttle else None
    dc = DataCenter(engine, [setup] if setup else agents)
    dc.register_hosts()
    src, dst = dc.add_domain("data1"), dc.add_domain("data2")
    vm = dc.add_vm("vm1", [dc.add_disk(src, disk_bytes, f"disk{i}") for i in range(disks)])
    if setup:
        dc.agents = [*agents, setup]
        dc.register_hosts()
        dc.stub.SetHostMaintenance(
            pb.SetHostMaintenanceRequest(host_id=dc.hosts["setup"].host_id, maintenance=True),
            timeout=T,
        )
    return dc, vm, src, dst
