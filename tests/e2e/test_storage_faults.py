"""Real storage faults and a paused agent (docs/design.md §9, storage faults): a storage root and
a state directory on size-limited tmpfs mounts that really fill up, task records cut short or
zeroed on disk, and an agent stopped with SIGSTOP for longer than the engine's call deadline.
Real processes throughout; the tests with an engine run on SQLite and on PostgreSQL.

Mounting a tmpfs needs root; without it the tests that need one skip with the reason.
"""

from __future__ import annotations

import re
import signal
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from engine_service.bootstrap import EngineSettings
from engine_service.v1 import engine_service_pb2 as pb
from harness.agent_client import RPC_TIMEOUT, wait_task
from harness.engine_client import wait_command
from harness.ports import free_port
from harness.processes import AgentProcess, ServiceProcess
from harness.scenario import DataCenter, build_datacenter
from harness.tmpfs import TmpfsUnavailable, fill, free_bytes, mount, unmount
from vdsm_agent.v1 import agent_service_pb2 as apb

T = RPC_TIMEOUT
MiB = 1 << 20
STORAGE_BYTES = 32 * MiB  # the storage root of the tests that ask for `tmpfs_storage`
STATE_BYTES = 256 * 1024  # a state directory on a tmpfs
# How long the engine waits for an agent to answer a start (CopyImage, CreateVolume).
START_DEADLINE = EngineSettings(database_url="sqlite://").agent_timeout
ACCEPTED = re.compile(r"accepted (\w+) task (\S+) for request (\S+),")


def new_id() -> str:
    return str(uuid.uuid4())


def mount_or_skip(path: Path, size_bytes: int) -> None:
    try:
        mount(path, size_bytes)
    except TmpfsUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def shared_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """The data center's storage root: on a tmpfs of STORAGE_BYTES for a test that asks for
    `tmpfs_storage` (mounted before any agent starts, unmounted after they are killed)."""
    root = tmp_path / "storage"
    root.mkdir()
    if "tmpfs_storage" not in request.fixturenames:
        yield root
        return
    mount_or_skip(root, STORAGE_BYTES)
    try:
        yield root
    finally:
        unmount(root)


@pytest.fixture
def tmpfs_storage(shared_storage: Path) -> Path:
    """The storage root on a tmpfs that fills up for real."""
    return shared_storage


@pytest.fixture
def tmpfs_mounts() -> Iterator[Callable[[Path, int], None]]:
    """`mount_tmpfs(path, size_bytes)`: a tmpfs there until the test ends (skips the test with
    the reason when mounting is not permitted)."""
    mounted: list[Path] = []

    def mount_tmpfs(path: Path, size_bytes: int) -> None:
        mount_or_skip(path, size_bytes)
        mounted.append(path)

    yield mount_tmpfs
    for path in reversed(mounted):
        unmount(path)  # lazily if an agent still holds it


@contextmanager
def paused(process: ServiceProcess) -> Iterator[None]:
    """The process stopped (SIGSTOP) for the block, continued (SIGCONT) after it, also when the
    block fails. Stopped, it keeps its connections open and answers nothing."""
    assert process.proc is not None
    process.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        process.proc.send_signal(signal.SIGCONT)


def accepted_requests(agents: list[AgentProcess]) -> Counter[str]:
    """How many tasks the agents' logs say were accepted for each request id (across
    restarts: the logs are appended to)."""
    found: Counter[str] = Counter()
    for agent in agents:
        found.update(m.group(3) for m in ACCEPTED.finditer(agent.log_path.read_text()))
    return found


def make_domain(agent: AgentProcess) -> str:
    sd = new_id()
    agent.stub().CreateStorageDomain(
        apb.CreateStorageDomainRequest(storage_domain_id=sd), timeout=T
    )
    return sd


def copy_request(sd: str, src: str, dst: str) -> apb.CopyImageRequest:
    return apb.CopyImageRequest(
        request_id=new_id(),
        src_storage_domain_id=sd,
        src_image_id=src,
        dst_storage_domain_id=sd,
        dst_image_id=dst,
    )


def partials(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*.partial"))


# -- a full storage root -------------------------------------------------------------------------


def test_a_copy_that_runs_out_of_space_fails_removes_its_partial_and_the_agent_goes_on(
    tmpfs_storage: Path, agent_factory
) -> None:
    agent = agent_factory("host1", throttle=4 * MiB)
    stub = agent.stub()
    sd, src, dst = make_domain(agent), new_id(), new_id()
    source = agent.image_path(sd, src)
    source.write_bytes(bytes(range(256)) * (6 * MiB // 256))  # a disk put there, as by a VM
    task_id = stub.CopyImage(copy_request(sd, src, dst), timeout=T).task_id
    wait_task(stub, task_id, lambda s: s.progress_percent >= 5)
    filler = fill(tmpfs_storage)  # someone else takes every byte left on the export
    status = wait_task(stub, task_id)
    assert (status.result, status.code) == (
        apb.TASK_RESULT_FAILURE,
        grpc.StatusCode.RESOURCE_EXHAUSTED.value[0],
    ), status
    assert "No space left on device" in status.message and dst in status.message
    assert partials(tmpfs_storage) == []  # removed by the agent itself: no DeleteImage here
    assert not agent.image_path(sd, dst).exists()
    assert agent.health() == "SERVING"
    filler.unlink()  # space freed: the same copy now fits
    again = stub.CopyImage(copy_request(sd, src, dst), timeout=T).task_id
    assert wait_task(stub, again).result == apb.TASK_RESULT_SUCCESS
    assert agent.image_path(sd, dst).read_bytes() == source.read_bytes()


def test_a_template_that_runs_out_of_space_fails_is_compensated_and_a_later_one_fits(
    tmpfs_storage: Path, make_dc
) -> None:
    # Two 9 MiB disks leave 14 MiB free: each copy is admitted (it needs 9; the second one as
    # long as the first has written less than 5), both together need 18. Free space is checked
    # when a task is accepted, never reserved.
    dc, vm, src, dst = make_dc(throttle=4 * MiB, disks=2, disk_bytes=9 * MiB)
    files_before = dc.image_files()
    free_before = free_bytes(tmpfs_storage)
    command_id = dc.start_template(vm, "tpl", dst).command.command_id
    command = wait_command(dc.stub, command_id)
    assert command.status == pb.COMMAND_STATUS_FAILED
    assert "No space left on device" in command.failure_reason, command.failure_reason
    dc.check_invariants()  # no task, no partial, no copy left: compensated
    assert dc.image_files() == files_before
    assert free_bytes(tmpfs_storage) == free_before
    disk0 = dc.stub.GetVm(pb.GetVmRequest(vm_id=vm), timeout=T).vm.disk_ids[0]
    one_disk = dc.add_vm("vm2", [disk0])
    command_id = dc.start_template(one_disk, "tpl2", dst).command.command_id
    command = wait_command(dc.stub, command_id)
    assert command.status == pb.COMMAND_STATUS_SUCCEEDED, command.failure_reason
    dc.check_invariants()
    assert all(a.health() == "SERVING" for a in dc.agents)


# -- a full state directory ----------------------------------------------------------------------


def test_a_full_state_directory_refuses_every_start_and_accepts_nothing_unrecorded(
    tmpfs_mounts, agent_factory
) -> None:
    agent = agent_factory("host1", start=False)
    tmpfs_mounts(agent.state_dir, STATE_BYTES)
    agent.start()
    stub = agent.stub()
    sd, src = make_domain(agent), new_id()
    done = stub.CreateVolume(
        apb.CreateVolumeRequest(
            request_id=new_id(), storage_domain_id=sd, image_id=src, size_bytes=MiB
        ),
        timeout=T,
    ).task_id
    wait_task(stub, done)
    records = agent.state_dir / "tasks"
    filler = fill(agent.state_dir)

    def volume() -> str:
        request = apb.CreateVolumeRequest(
            request_id=new_id(), storage_domain_id=sd, image_id=new_id(), size_bytes=MiB
        )
        return str(stub.CreateVolume(request, timeout=T).task_id)

    # The journal's last page may hold a few more lines: those starts are accepted (recorded),
    # until one is not.
    fitted: list[str] = []
    for _ in range(64):
        try:
            fitted.append(volume())
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
            break
    else:
        pytest.fail("the state directory never filled up")
    for task_id in fitted:
        wait_task(stub, task_id)  # their later records find no room: they end, unrecorded
    before = sorted(p.name for p in records.iterdir()), (records / "journal").read_bytes()
    refused_copy = copy_request(sd, src, new_id())
    starts: list[Callable[[], object]] = [
        lambda: stub.CopyImage(refused_copy, timeout=T),
        volume,
    ]
    for start in starts:
        with pytest.raises(grpc.RpcError) as refused:
            start()
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        details = refused.value.details() or ""
        assert "state directory" in details and "No space left on device" in details

    def known() -> list[str]:
        return [
            t.task_id for t in stub.GetAllTasksInfo(apb.GetAllTasksInfoRequest(), timeout=T).tasks
        ]

    assert known() == [done, *fitted]  # nothing only in memory
    after = sorted(p.name for p in records.iterdir()), (records / "journal").read_bytes()
    assert after == before  # nothing half-written
    agent.kill()
    agent.start()  # still full: it starts, with what it had
    assert known() == [done, *fitted]
    filler.unlink()
    again = stub.CopyImage(refused_copy, timeout=T).task_id  # the same request id: it was new
    assert wait_task(stub, again).result == apb.TASK_RESULT_SUCCESS
    assert set(known()) == {done, again, *fitted}


def test_a_full_state_directory_fails_the_command_and_the_next_one_runs(
    tmpfs_mounts, agent_factory, engine_factory
) -> None:
    def agent_with_state_on_tmpfs(name: str, **kwargs: object) -> AgentProcess:
        agent: AgentProcess = agent_factory(name, start=False, **kwargs)
        tmpfs_mounts(agent.state_dir, STATE_BYTES)
        agent.start()
        return agent

    dc, vm, src, dst = build_datacenter(agent_with_state_on_tmpfs, engine_factory, disks=2)
    (host,) = dc.agents
    files_before = dc.image_files()
    filler = fill(host.state_dir)
    command_id = dc.start_template(vm, "tpl", dst).command.command_id
    command = wait_command(dc.stub, command_id)
    assert command.status == pb.COMMAND_STATUS_FAILED
    # Refused at once (RESOURCE_EXHAUSTED), or, when the journal's last page still had room for
    # the acceptance, accepted and then failed because its start could not be recorded: either
    # way the agent says its state directory is full, and the command fails and is cleaned up.
    reason = command.failure_reason
    assert "RESOURCE_EXHAUSTED" in reason or "No space left on device" in reason, reason
    assert "state directory" in reason
    dc.check_invariants()
    assert dc.image_files() == files_before
    filler.unlink()
    command_id = dc.start_template(vm, "tpl", dst).command.command_id
    assert wait_command(dc.stub, command_id).status == pb.COMMAND_STATUS_SUCCEEDED
    dc.check_invariants()


# -- corrupt task records ------------------------------------------------------------------------


def damage_newest_line(journal: Path, task_id: str, how: Callable[[bytes], bytes]) -> None:
    """Damage, in place, the newest line the journal holds for a task (its record)."""
    lines = journal.read_bytes().splitlines(keepends=True)
    at = max(i for i, line in enumerate(lines) if line.startswith(task_id.encode()))
    lines[at] = how(lines[at])
    journal.write_bytes(b"".join(lines))


def test_an_agent_starts_past_corrupt_records_and_sets_them_aside(agent_factory) -> None:
    agent = agent_factory("host1")
    stub = agent.stub()
    sd = make_domain(agent)
    tasks = []
    for _ in range(4):
        request = apb.CreateVolumeRequest(
            request_id=new_id(), storage_domain_id=sd, image_id=new_id(), size_bytes=4096
        )
        tasks.append(stub.CreateVolume(request, timeout=T).task_id)
    for task_id in tasks:
        wait_task(stub, task_id)
    agent.kill()
    records = agent.state_dir / "tasks"
    journal = records / "journal"
    before = journal.read_bytes()
    cut, edited, listed, sound = tasks
    damage_newest_line(journal, cut, lambda line: line[:50] + b"\n")  # the storage lost its tail
    damage_newest_line(journal, edited, lambda line: line.replace(b"success", b"failure"))
    damage_newest_line(journal, listed, lambda line: line[:46] + b"[]\n")  # JSON, not a record
    damaged = journal.read_bytes()
    assert damaged != before
    agent.start()
    listed_tasks = stub.GetAllTasksInfo(apb.GetAllTasksInfoRequest(), timeout=T).tasks
    assert [t.task_id for t in listed_tasks] == [sound]
    assert sorted(p.name for p in records.iterdir()) == ["journal", "journal.corrupt"]
    assert (records / "journal.corrupt").read_bytes() == damaged  # kept for a person
    log = agent.log_path.read_text()
    for task_id in (cut, edited, listed):
        (line,) = [
            line for line in log.splitlines() if f"no longer knows task(s) {task_id}" in line
        ]
        assert "WARNING" in line and f"task journal {journal} is corrupt" in line
        assert "journal.corrupt" in line
    agent.kill()
    agent.start()  # set aside for good: nothing to warn about again
    assert agent.log_path.read_text().count("is corrupt") == 3
    assert [
        t.task_id for t in stub.GetAllTasksInfo(apb.GetAllTasksInfoRequest(), timeout=T).tasks
    ] == [sound]


def test_a_task_whose_record_is_corrupt_fails_its_command_as_lost(make_dc) -> None:
    dc, vm, src, dst = make_dc(throttle=MiB, disks=1, disk_bytes=3 * MiB)
    files_before = dc.image_files()
    command_id = dc.start_template(vm, "tpl", dst).command.command_id
    command = wait_command(
        dc.stub, command_id, lambda c: bool(c.tasks and c.tasks[0].progress_percent)
    )
    host = dc.agents[0]
    host.kill()
    journal = host.state_dir / "tasks" / "journal"
    # Its newest record cut short under the agent.
    damage_newest_line(journal, command.tasks[0].vdsm_task_id, lambda line: line[:60] + b"\n")
    host.start()
    command = wait_command(dc.stub, command_id)
    assert command.status == pb.COMMAND_STATUS_FAILED
    assert "no longer knows task" in command.failure_reason, command.failure_reason
    assert "lost by the agent" in command.failure_reason
    dc.check_invariants()
    assert dc.image_files() == files_before  # its partial went with the compensation
    assert journal.with_name("journal.corrupt").exists()
    assert f"task journal {journal} is corrupt" in host.log_path.read_text()


# -- a paused agent ------------------------------------------------------------------------------


def host_status(dc: DataCenter, name: str) -> int:
    hosts = dc.stub.ListHosts(pb.ListHostsRequest(), timeout=T).hosts
    return next(h.status for h in hosts if h.name == name)


def engine_metric(port: int, line_start: str) -> float:
    """A sample of the engine's /metrics (0 if it has none yet)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = [line for line in text.splitlines() if line.startswith(line_start + " ")]
    return float(found[0].rsplit(" ", 1)[1]) if found else 0.0


def test_a_paused_agent_starts_nothing_twice_and_the_engine_converges(make_dc) -> None:
    metrics = free_port()
    dc, vm, src, dst = make_dc(
        throttle=2 * MiB,
        disks=1,
        disk_bytes=4 * MiB,
        engine_args=["--agent-deadline", "1", "--metrics-listen", f"127.0.0.1:{metrics}"],
    )
    timed_out_starts = 'engine_agent_rpc_errors_total{code="DEADLINE_EXCEEDED",method="CopyImage"}'
    host = dc.agents[0]
    other_vm = dc.add_vm("vm2", [dc.add_disk(src, MiB, "extra")])
    running = dc.start_template(vm, "a", dst).command.command_id
    wait_command(dc.stub, running, lambda c: bool(c.tasks and c.tasks[0].progress_percent))
    submitted: list[str] = []
    with paused(host):
        # A start sent now outlives its deadline and is sent again with the same request id;
        # the agent, continued, answers with the one task it accepted for it.
        submit = threading.Thread(
            target=lambda: submitted.append(
                dc.start_template(other_vm, "b", dst).command.command_id
            )
        )
        submit.start()
        stopped_at = time.monotonic()
        while host_status(dc, "host1") != pb.HOST_STATUS_NON_RESPONSIVE:  # polls time out
            assert time.monotonic() - stopped_at < START_DEADLINE, "host1 never went silent"
            time.sleep(0.1)
        time.sleep(max(0.0, stopped_at + START_DEADLINE + 1 - time.monotonic()))
        assert submit.is_alive()  # still retrying its start
    submit.join(3 * START_DEADLINE)
    assert submitted, "AddVmTemplate did not answer"
    assert engine_metric(metrics, timed_out_starts) == 1  # the start was sent twice
    commands = dc.check_invariants(timeout=90)
    assert {c.command_id: c.status for c in commands if c.action_type == "AddVmTemplate"} == {
        running: pb.COMMAND_STATUS_SUCCEEDED,
        submitted[0]: pb.COMMAND_STATUS_SUCCEEDED,
    }
    accepted = accepted_requests(dc.agents)
    assert [r for r, n in accepted.items() if n > 1] == []  # one task per placeholder
    assert len(accepted) == 4  # the source disk (setup host), the extra disk, two copies
    assert host_status(dc, "host1") == pb.HOST_STATUS_UP
