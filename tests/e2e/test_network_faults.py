"""Network faults made by the kernel (issue 15): the data center (engine and agents) runs in a
network namespace of its own, where iptables drops or resets the traffic of one agent's port,
engine -> agent only, agent -> engine only, or both ways (harness/netfaults.py, docs/design.md
§15). While a copy runs and while a submission is in flight the port is cut, then healed; every
command must end within a bound, the invariants hold, no task is left on an agent and nothing
was started twice.

Skipped with the reason without root, `ip` or `iptables`, unless REQUIRE_NETFAULTS=1 (CI, once
it installed them), where that is a failure. The test process's own calls go through the
harness's relay, which no partition cuts: they watch, they are not the data center's traffic.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy.engine import make_url

from engine_service.v1 import engine_service_pb2 as pb
from harness import netfaults
from harness.engine_client import get_command, wait_command
from harness.netfaults import DataCenterNamespace
from harness.processes import AgentProcess, ServiceProcess
from harness.scenario import DataCenter, build_datacenter
from harness.waiting import poll_until
from vdsm_agent.v1 import agent_service_pb2 as apb

MiB = 1 << 20
T = 30
# Once a partition heals, every command is terminal and settled within this many seconds.
BOUND = 30.0
# Polls and lookups of an agent give up after 1 s (the default is 3), so that a dropped port
# shows within seconds.
ENGINE_ARGS = ["--agent-deadline", "1"]
ACCEPTED = re.compile(r"accepted (\w+) task (\S+) for request (\S+), writing image (\S+)")

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def skip_unless_netfaults() -> None:
    """Skip with the reason where namespaces or iptables cannot be used; under
    REQUIRE_NETFAULTS=1 (.ci/run where it can make a namespace) fail instead."""
    problem = netfaults.unavailable()
    if problem is not None:
        if os.environ.get("REQUIRE_NETFAULTS") == "1":
            pytest.fail(f"REQUIRE_NETFAULTS=1 but {problem}")
        pytest.skip(problem)


@pytest.fixture
def namespace(tmp_path: Path) -> Iterator[DataCenterNamespace]:
    skip_unless_netfaults()
    with DataCenterNamespace(log_dir=tmp_path) as ns:
        yield ns


@pytest.fixture
def make_dc_inside(
    namespace: DataCenterNamespace, agent_factory: Any, engine_factory: Any, database_url: str
) -> Callable[..., tuple[DataCenter, str, str, str]]:
    """`make_dc` (tests/e2e/conftest.py) with every process inside the namespace; on
    PostgreSQL, the engine inside reaches the server through the relay (same address)."""
    if database_url.startswith("postgresql"):
        url = make_url(database_url)
        if url.host not in ("127.0.0.1", "localhost"):
            pytest.skip(f"the namespace reaches only a PostgreSQL on 127.0.0.1, not {url.host}")
        namespace.import_port(url.port or 5432)

    def inside(factory: Callable[..., ServiceProcess]) -> Callable[..., Any]:
        def make(*args: Any, start: bool = True, crash_at: str | None = None, **kwargs: Any) -> Any:
            process = namespace.place(factory(*args, start=False, **kwargs))
            if start:
                process.start(crash_at=crash_at)
            return process

        return make

    def make(**kwargs: Any) -> tuple[DataCenter, str, str, str]:
        kwargs.setdefault("engine_args", ENGINE_ARGS)
        return build_datacenter(inside(agent_factory), inside(engine_factory), **kwargs)

    return make


# -- what the data center sees, and what the agents did ----------------------------------------


def call_inside(ns: DataCenterNamespace, address: str, deadline: float) -> tuple[str, float]:
    """A GetAllTasksInfo to the agent at `address` made from inside the namespace, as the
    engine makes it: its status code name and how long it took."""
    code = (
        "import time, grpc\n"
        "from vdsm_agent.v1 import agent_service_pb2 as pb, agent_service_pb2_grpc as rpc\n"
        f"channel = grpc.insecure_channel({address!r})\n"
        "began = time.monotonic()\n"
        f"try: rpc.AgentServiceStub(channel).GetAllTasksInfo(pb.GetAllTasksInfoRequest(), "
        f"timeout={deadline!r}); name = 'OK'\n"
        "except grpc.RpcError as exc: name = exc.code().name\n"
        "print(name, time.monotonic() - began)\n"
    )
    name, took = ns.run([sys.executable, "-c", code], timeout=deadline + 30).stdout.split()
    return name, float(took)


def accepted_by_agents(
    agents: list[AgentProcess], verb: str | None = None
) -> list[tuple[str, str, str]]:
    """(agent, request id, image) of every task (of `verb`) any agent accepted, from their
    logs (vdsm_agent's task manager logs each acceptance once)."""
    found = []
    for agent in agents:
        for match in ACCEPTED.finditer(agent.log_path.read_text(errors="replace")):
            if verb is None or match.group(1) == verb:
                found.append((agent.workdir.name, match.group(3), match.group(4)))
    return found


def assert_nothing_started_twice(dc: DataCenter) -> list[tuple[str, str, str]]:
    """No request id was accepted twice, by one agent or two, and no image written twice."""
    accepted = accepted_by_agents(dc.agents)
    assert accepted, "no acceptance found in the agents' logs: has its wording changed?"
    twice = [r for r, n in Counter(r for _, r, _ in accepted).items() if n > 1]
    assert twice == [], (twice, accepted)
    images = [i for i, n in Counter(i for _, _, i in accepted).items() if n > 1]
    assert images == [], (images, accepted)
    return accepted


def agent_named(dc: DataCenter, name: str) -> AgentProcess:
    return next(a for a in dc.agents if a.workdir.name == name)


def host_named(dc: DataCenter, name: str) -> pb.Host:
    """The host as ListHosts shows it. The test reads through the relay: a read whose relayed
    connection was closed under it (UNAVAILABLE, once seen in a clean-clone run) is read again;
    the data center's own traffic is what the test is about, not the relay's."""
    for attempt in range(3):
        try:
            hosts = dc.stub.ListHosts(pb.ListHostsRequest(), timeout=T).hosts
            return next(h for h in hosts if h.name == name)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == 2:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def wait_host(dc: DataCenter, name: str, answering: bool, timeout: float = 20.0) -> pb.Host:
    """Until the engine sees the host UP and answering its polls, or missing them (it sets
    unreachable_since after --host-failure-polls failed polls in a row)."""

    def seen(host: pb.Host) -> bool:
        if answering:
            return host.status == pb.HOST_STATUS_UP and not host.HasField("unreachable_since")
        return host.HasField("unreachable_since")

    return poll_until(
        lambda: host_named(dc, name),
        seen,
        timeout,
        0.1,
        lambda h: f"host {name} not {'answering' if answering else 'cut off'}: {h}",
    )


def agent_progress(agent: AgentProcess) -> list[int]:
    """What the agent itself says of its tasks (through the relay, which no partition cuts)."""
    reply = agent.stub().GetAllTasksStatuses(apb.GetAllTasksStatusesRequest(), timeout=T)
    return [s.progress_percent for s in reply.statuses]


def agent_requests(agent: AgentProcess) -> set[str]:
    reply = agent.stub().GetAllTasksInfo(apb.GetAllTasksInfoRequest(), timeout=T)
    return {t.request_id for t in reply.tasks}


def call_or_error(call: Callable[[], Any]) -> Any:
    """The call's result, or the gRPC error it raised."""
    try:
        return call()
    except grpc.RpcError as exc:
        return exc


def settle_and_check(dc: DataCenter, command_id: str, healed_at: float) -> pb.Command:
    """Within BOUND of the heal: the command settled, the invariants hold, no agent task is
    left, nothing was started twice. Returns the command."""
    command = wait_command(dc.stub, command_id, timeout=BOUND)
    dc.check_invariants(timeout=max(1.0, BOUND - (time.monotonic() - healed_at)))
    assert time.monotonic() - healed_at < BOUND
    assert_nothing_started_twice(dc)
    return command


# -- the harness: the kernel cuts what it should, and only that ------------------------------


def root_rules() -> str:
    iptables = netfaults.tool("iptables")
    assert iptables is not None
    return subprocess.run([iptables, "-w", "-S"], capture_output=True, text=True, check=True).stdout


def test_a_partition_cuts_one_port_inside_the_namespace_until_healed(
    namespace: DataCenterNamespace, tmp_path: Path
) -> None:
    ns = namespace
    outside_before = root_rules()
    agent = ns.place(AgentProcess(tmp_path / "host1"))
    other = ns.place(AgentProcess(tmp_path / "host2", storage_root=agent.storage_root))
    try:
        agent.start()
        other.start()
        assert ns.probe(agent.port) == "connected"
        assert call_inside(ns, agent.address, 1.0)[0] == "OK"
        expected = {"drop": "timeout", "reject": "refused"}
        for mode in ("drop", "reject"):
            for direction in ("to", "both"):
                cut = ns.partition(agent.port, mode, direction)
                assert len(ns.rules()) == (1 if direction == "to" else 2)
                assert ns.probe(agent.port, timeout=0.5) == expected[mode], (mode, direction)
                assert ns.probe(other.port) == "connected"  # only that port is cut
                assert agent.health() == "SERVING"  # the test's view is never cut
                cut.heal()
                assert ns.rules() == []
                assert ns.probe(agent.port) == "connected", (mode, direction)
        # Replies only: the SYN arrives, the SYN-ACK does not.
        cut = ns.partition(agent.port, "drop", "from")
        assert len(ns.rules()) == 2  # the bare ACKs pass, the rest is dropped
        assert ns.probe(agent.port, timeout=0.5) == "timeout"
        ns.heal()
        # What the engine's calls meet: a dropped port holds a call until its deadline, a
        # rejecting one fails it at once; healed, the same call answers.
        ns.partition(agent.port, "drop", "both")
        name, took = call_inside(ns, agent.address, 1.0)
        assert name == "DEADLINE_EXCEEDED" and took >= 0.9, (name, took)
        ns.heal()
        ns.partition(agent.port, "reject", "to")
        name, took = call_inside(ns, agent.address, 5.0)
        assert name == "UNAVAILABLE" and took < 2.0, (name, took)
        ns.heal()
        assert call_inside(ns, agent.address, 5.0)[0] == "OK"
        assert root_rules() == outside_before  # nothing was ever added outside
    finally:
        agent.close()
        other.close()


def test_the_namespace_goes_with_everything_in_it_even_when_the_test_fails(tmp_path: Path) -> None:
    skip_unless_netfaults()
    agent = AgentProcess(tmp_path / "host1")
    ns = DataCenterNamespace(log_dir=tmp_path)
    with pytest.raises(RuntimeError, match="the test failed"), ns:
        ns.place(agent).start()
        ns.partition(agent.port, "drop", "both")
        raise RuntimeError("the test failed")
    assert not ns.exists()
    assert agent.proc is not None and agent.proc.wait(5) == -9  # killed, not left running
    assert agent.health() == "UNREACHABLE"  # the relay is gone too
    ns.close()  # twice is fine
    agent.close()


# -- the data center under partitions ----------------------------------------------------------


@SQLITE_ONLY
@pytest.mark.parametrize(("mode", "direction"), [("drop", "both"), ("reject", "to")])
def test_a_partition_while_a_copy_runs_heals_and_the_command_completes(
    make_dc_inside, namespace: DataCenterNamespace, mode: str, direction: str
) -> None:
    dc, vm, src, dst = make_dc_inside(throttle=MiB, disks=2, disk_bytes=8 * MiB)
    host1 = agent_named(dc, "host1")
    command_id = dc.start_template(vm, "tpl", dst).command.command_id
    wait_command(dc.stub, command_id, lambda c: any(t.progress_percent > 0 for t in c.tasks))

    cut = namespace.partition(host1.port, mode, direction)  # type: ignore[arg-type]
    wait_host(dc, "host1", answering=False)  # the engine lost the host: its polls fail
    seen_by_engine = [t.progress_percent for t in get_command(dc.stub, command_id).tasks]
    before = agent_progress(host1)
    time.sleep(1.0)
    after = agent_progress(host1)
    assert sum(after) > sum(before), (before, after)  # the agent goes on copying meanwhile
    command = get_command(dc.stub, command_id)
    assert command.status == pb.COMMAND_STATUS_ACTIVE
    assert [t.progress_percent for t in command.tasks] == seen_by_engine  # engine sees nothing

    cut.heal()
    healed_at = time.monotonic()
    wait_host(dc, "host1", answering=True)
    command = settle_and_check(dc, command_id, healed_at)
    assert command.status == pb.COMMAND_STATUS_SUCCEEDED, command.failure_reason
    (template,) = dc.stub.ListVmTemplates(pb.ListVmTemplatesRequest(), timeout=T).templates
    assert template.status == pb.TEMPLATE_STATUS_OK


# (backend, mode, direction, whether the agent holds the first copy while the submission hangs)
IN_FLIGHT = [
    ("sqlite", "drop", "to", False),  # the request never arrives until the heal: the call is held
    ("sqlite", "drop", "from", True),  # it arrives and starts; its reply is held until the heal
    ("sqlite", "reject", "both", False),  # refused at once, again and again: the engine retries
    pytest.param("postgresql", "drop", "from", True, marks=pytest.mark.postgres),
    pytest.param("postgresql", "reject", "both", False, marks=pytest.mark.postgres),
]


@pytest.mark.parametrize(
    ("database_url", "mode", "direction", "agent_has_it"), IN_FLIGHT, indirect=["database_url"]
)
def test_a_partition_during_a_submission_heals_and_the_submission_completes_once(
    make_dc_inside, namespace: DataCenterNamespace, mode: str, direction: str, agent_has_it: bool
) -> None:
    # Ten failed polls, not three, before the host counts as not answering: the submission
    # must find it UP although its port is already cut (a reject fails polls at once).
    metrics = namespace.expose()
    dc, vm, src, dst = make_dc_inside(
        engine_args=[
            *ENGINE_ARGS,
            "--host-failure-polls",
            "10",
            "--metrics-listen",
            f"127.0.0.1:{metrics}",
        ]
    )
    host1 = agent_named(dc, "host1")
    cut = namespace.partition(host1.port, mode, direction)  # type: ignore[arg-type]
    answer: list[Any] = []
    began = time.monotonic()
    submit = threading.Thread(
        target=lambda: answer.append(call_or_error(lambda: dc.start_template(vm, "tpl", dst)))
    )
    submit.start()
    time.sleep(1.5)
    held = agent_requests(host1)
    # Where the request reaches the agent, it may take a moment longer on a loaded machine (the
    # placeholders committed, the first start sent): waited for, up to 10 s.
    deadline = time.monotonic() + 10
    while agent_has_it and not held and time.monotonic() < deadline:
        time.sleep(0.1)
        held = agent_requests(host1)
    assert submit.is_alive() and not answer  # in flight: the engine is still at the first copy
    assert bool(held) is agent_has_it, held
    failed_calls = copy_image_errors(metrics)

    cut.heal()
    healed_at = time.monotonic()
    submit.join(BOUND)
    assert answer, "the submission did not return after the heal"
    (reply,) = answer
    assert not isinstance(reply, grpc.RpcError), reply
    assert time.monotonic() - began >= 1.5
    command_id = reply.command.command_id
    command = settle_and_check(dc, command_id, healed_at)
    assert command.status == pb.COMMAND_STATUS_SUCCEEDED, command.failure_reason
    # A dropped port held the engine's call until the heal; a rejecting one failed it at once.
    if mode == "drop":
        assert failed_calls == 0
    else:
        assert failed_calls >= 1
    copies = accepted_by_agents([host1], "CopyImage")
    assert len(copies) == 3  # one per disk: each started once, however often it was asked
    if agent_has_it:  # the task the agent started before the heal is the command's task
        assert held <= {request for _, request, _ in copies}


def copy_image_errors(metrics_port: int) -> float:
    """The engine's failed CopyImage calls so far (engine_agent_rpc_errors_total)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=T) as reply:
        text = reply.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("engine_agent_rpc_errors_total{") and 'method="CopyImage"' in line
    )


@SQLITE_ONLY
def test_a_reply_lost_past_the_deadline_is_asked_again_and_the_copy_starts_once(
    make_dc_inside, namespace: DataCenterNamespace
) -> None:
    """The dangerous half of a partition: the agent gets the request and starts the copy, its
    reply is lost, the engine's call runs out of time (its start deadline is 10 s) and it asks
    again, with the same request id, over the same cut. Healed, the agent answers the second
    call with the task it started for the first (its idempotency by request id)."""
    metrics = namespace.expose()
    dc, vm, src, dst = make_dc_inside(
        engine_args=[
            *ENGINE_ARGS,
            "--host-failure-polls",
            "100",  # the host stays UP: the command's copies all go to it
            "--metrics-listen",
            f"127.0.0.1:{metrics}",
        ]
    )
    host1 = agent_named(dc, "host1")
    cut = namespace.partition(host1.port, "drop", "from")
    answer: list[Any] = []
    submit = threading.Thread(
        target=lambda: answer.append(call_or_error(lambda: dc.start_template(vm, "tpl", dst)))
    )
    submit.start()
    held = poll_until(lambda: agent_requests(host1), bool, 10, 0.1, lambda r: f"agent has {r}")
    # The first call timed out: the engine is asking again.
    poll_until(lambda: copy_image_errors(metrics), bool, 20, 0.2, lambda n: f"{n} errors")
    assert submit.is_alive() and not answer
    assert agent_requests(host1) == held  # asked twice, it holds one task

    cut.heal()
    healed_at = time.monotonic()
    submit.join(BOUND)
    assert answer, "the submission did not return after the heal"
    (reply,) = answer
    assert not isinstance(reply, grpc.RpcError), reply
    command = settle_and_check(dc, reply.command.command_id, healed_at)
    assert command.status == pb.COMMAND_STATUS_SUCCEEDED, command.failure_reason
    assert copy_image_errors(metrics) == 1  # DEADLINE_EXCEEDED once, then the same task
    copies = accepted_by_agents([host1], "CopyImage")
    assert len(copies) == 3 and held <= {request for _, request, _ in copies}


@SQLITE_ONLY
def test_a_partition_longer_than_the_task_timeout_fails_the_command_and_heals_clean(
    make_dc_inside, namespace: DataCenterNamespace
) -> None:
    dc, vm, src, dst = make_dc_inside(
        throttle=MiB,
        disks=2,
        disk_bytes=12 * MiB,
        engine_args=[*ENGINE_ARGS, "--task-timeout", "2"],
    )
    files_before = dc.image_files()
    host1 = agent_named(dc, "host1")
    command_id = dc.start_template(vm, "tpl", dst).command.command_id
    wait_command(dc.stub, command_id, lambda c: any(t.progress_percent > 0 for t in c.tasks))
    cut = namespace.partition(host1.port, "drop", "both")
    began = time.monotonic()
    # Bounded while still cut off: the host misses its polls, its commands wait --task-timeout,
    # then fail; what the agent still runs is cleanup debt.
    command = wait_command(
        dc.stub, command_id, lambda c: c.status != pb.COMMAND_STATUS_ACTIVE, timeout=BOUND
    )
    assert command.status == pb.COMMAND_STATUS_FAILED
    assert len(command.tasks) == 2, command  # not cleared: the host is unreachable
    assert len(agent_requests(host1)) == 2  # the agent was never told: it goes on copying
    assert time.monotonic() - began < BOUND

    cut.heal()
    healed_at = time.monotonic()
    settle_and_check(dc, command_id, healed_at)  # stopped, images deleted, tasks cleared
    assert dc.image_files() == files_before
    assert list(dc.stub.ListVmTemplates(pb.ListVmTemplatesRequest(), timeout=T).templates) == []


@SQLITE_ONLY
def test_a_submission_refused_until_its_retries_run_out_fails_and_heals_clean(
    make_dc_inside, namespace: DataCenterNamespace
) -> None:
    dc, vm, src, dst = make_dc_inside(engine_args=[*ENGINE_ARGS, "--host-failure-polls", "100"])
    files_before = dc.image_files()
    host1 = agent_named(dc, "host1")
    cut = namespace.partition(host1.port, "reject", "both")
    command = dc.start_template(vm, "tpl", dst).command  # returns once the retries ran out
    command = get_command(dc.stub, command.command_id)
    assert command.status == pb.COMMAND_STATUS_FAILED
    assert "did not start task" in command.failure_reason, command.failure_reason
    assert agent_requests(host1) == set()  # nothing reached the agent

    cut.heal()
    healed_at = time.monotonic()
    settle_and_check(dc, command.command_id, healed_at)
    assert accepted_by_agents([host1], "CopyImage") == []
    assert dc.image_files() == files_before
