"""The engine's service layer in-process, over a real SQLite file and real agent processes."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from engine_service.adapters.agent_client import AgentClient, AgentPool
from engine_service.adapters.db import make_engine, migrate
from engine_service.adapters.orm import Base
from engine_service.adapters.repository import Repository
from engine_service.bootstrap import EngineSettings, bootstrap
from engine_service.domain.model import AsyncTask, CommandStatus, Host, HostStatus, Outcome
from engine_service.service_layer.commands.add_vm_template import AddVmTemplate
from engine_service.service_layer.engine import Engine
from engine_service.service_layer.polling import PollSettings
from harness.invariants import database_state
from service_common.errors import FailedPrecondition
from tests.integration.conftest import settle

MiB = 1 << 20


class CountingPool(AgentPool):
    """Real agent clients that count the calls they make, per agent address and method."""

    def __init__(self) -> None:
        super().__init__(timeout=10)
        self.calls: Counter[tuple[str, str]] = Counter()

    def get(self, address: str) -> AgentClient:
        client = super().get(address)
        if not getattr(client, "counted", False):
            original = client._call
            pool = self

            def counted(method: str, request: Any, timeout: float | None = None) -> Any:
                pool.calls[(address, method)] += 1
                return original(method, request, timeout)

            client._call = counted  # type: ignore[method-assign]
            client.counted = True  # type: ignore[attr-defined]
        return client


@pytest.fixture
def db_url(database_url: str) -> str:
    return database_url


@pytest.fixture
def pool() -> Iterator[CountingPool]:
    pool = CountingPool()
    yield pool
    pool.close()


@pytest.fixture
def engine(db_url: str, pool: CountingPool) -> Engine:
    return bootstrap(EngineSettings(db_url, poll=PollSettings(interval=3600)), agents=pool)


def setup_vm(engine: Engine, agents: list, disks: int = 3) -> tuple[str, str]:
    """Hosts for `agents`, two domains, a VM of `disks` finished disks; returns (vm, dst)."""
    for agent in agents:
        engine.inventory.add_host(agent.workdir.name, agent.address)
    src = engine.inventory.add_storage_domain("data1").storage_domain_id
    dst = engine.inventory.add_storage_domain("data2").storage_domain_id
    disk_ids = []
    for i in range(disks):
        disk, _ = engine.add_disk(f"d{i}", src, 64 * 1024)
        assert disk is not None
        disk_ids.append(disk.disk_id)
    settle(engine)
    return engine.inventory.add_vm("vm", disk_ids).vm_id, dst


def test_placeholders_are_written_in_one_transaction(
    engine: Engine, agent_factory, db_url, monkeypatch
) -> None:
    vm, dst = setup_vm(engine, [agent_factory()])
    before = database_state(db_url)
    agent_tasks_before = len(engine.agents.get(engine.inventory.hosts()[0].host.address).all_info())
    written: list[int] = []
    original_add_tasks = Repository.add_tasks

    def add_tasks_then_fail(self: Repository, tasks: Iterable[AsyncTask]) -> None:
        tasks = list(tasks)
        original_add_tasks(self, tasks)
        if tasks:  # the placeholders are in: fail now
            written.append(len(self.tasks_of(tasks[0].root_command_id)))
            raise RuntimeError("the database failed in the middle of the placeholders")

    monkeypatch.setattr(Repository, "add_tasks", add_tasks_then_fail)
    with pytest.raises(RuntimeError, match="middle of the placeholders"):
        engine.add_vm_template(vm, "half", dst)
    monkeypatch.undo()
    assert written == [3]  # the placeholders really were written in the transaction first
    assert database_state(db_url) == before  # no command, placeholder, lock or entity
    client = engine.agents.get(engine.inventory.hosts()[0].host.address)
    assert len(client.all_info()) == agent_tasks_before  # no agent task
    _, view = engine.add_vm_template(vm, "half", dst)  # and nothing is stuck
    settle(engine)
    assert engine.command(view.command_id).status is CommandStatus.SUCCEEDED


def test_one_status_call_per_host_per_poll_whatever_the_number_of_tasks(
    engine: Engine, agent_factory, pool: CountingPool
) -> None:
    agents = [agent_factory("host1", throttle=MiB), agent_factory("host2", throttle=MiB)]
    vm, dst = setup_vm(engine, agents, disks=6)
    commands = [engine.add_vm_template(vm, "t", dst)[1]]  # 6 copies
    commands += [engine.add_disk(f"extra{i}", dst, 8 * MiB)[1] for i in range(8)]
    with engine.uow() as uow:
        per_host = uow.repo.tasks_per_host()
    assert sum(per_host.values()) == 14 and len(per_host) == 2  # spread over both hosts
    pool.calls.clear()
    polls = 3
    for _ in range(polls):
        engine.manager.poll_hosts()
    status_calls = {
        addr: n for (addr, method), n in pool.calls.items() if method == "GetAllTasksStatuses"
    }
    assert status_calls == {a.address: polls for a in agents}
    assert not [m for (_, m), _ in pool.calls.items() if m == "GetTaskStatus"]
    for command in commands:
        with contextlib.suppress(FailedPrecondition):  # a fast copy may have ended already
            engine.cancel(command.command_id)
    settle(engine)


def test_a_command_ends_exactly_once_when_enders_race(
    engine: Engine, agent_factory, db_url
) -> None:
    vm, dst = setup_vm(engine, [agent_factory(throttle=MiB)], disks=2)
    _, view = engine.add_vm_template(vm, "raced", dst)
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def end(status: CommandStatus) -> None:
        barrier.wait()
        results.append(engine.lifecycle.finish(view.command_id, Outcome(status, status.value)))

    threads = [
        threading.Thread(target=end, args=(s,))
        for s in (
            CommandStatus.FAILED,
            CommandStatus.CANCELLED,
            CommandStatus.FAILED,
            CommandStatus.CANCELLED,
        )
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    settle(engine)
    state = database_state(db_url)
    assert state.locks == 0 and state.task_rows == 0
    assert sum(state.commands.values()) == 3  # 2 AddDisk + 1 template


def test_a_new_command_type_is_one_module() -> None:
    from engine_service.service_layer.commands.base import CommandBase

    assert {"AddDisk", "CreateVolume", "AddVmTemplate", "CreateImageTemplate"} <= set(
        CommandBase._types
    )
    assert AddVmTemplate.action_type == "AddVmTemplate"


def test_migrations_produce_exactly_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    migrate(engine)  # idempotent at every start
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def test_commits_are_durable(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        else:
            assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
            assert engine.dialect.driver == "psycopg"
    engine.dispose()


def test_reconcile_during_submissions_never_fails_a_healthy_command(
    engine: Engine, agent_factory
) -> None:
    vm, dst = setup_vm(engine, [agent_factory(throttle=MiB)], disks=1)
    src = engine.inventory.storage_domains()[0].storage_domain_id
    stop = threading.Event()
    failed: list[str] = []

    def reconcile_all_the_time() -> None:
        while not stop.is_set():
            failed.extend(engine.reconcile().failed_command_ids)

    reconciler = threading.Thread(target=reconcile_all_the_time)
    reconciler.start()
    try:
        views = [engine.add_disk(f"racing{i}", src, 4096)[1] for i in range(30)]
    finally:
        stop.set()
        reconciler.join()
    assert failed == []
    assert {v.status for v in views} <= {CommandStatus.ACTIVE, CommandStatus.SUCCEEDED}
    settle(engine)
    assert {engine.command(v.command_id).status for v in views} == {CommandStatus.SUCCEEDED}


def test_reconcile_reports_zombies_after_their_grace_and_then_zeros(
    db_url: str, pool: CountingPool, agent_factory
) -> None:
    from vdsm_agent.v1 import agent_service_pb2 as apb

    engine = bootstrap(
        EngineSettings(db_url, poll=PollSettings(interval=3600, zombie_grace=0.5)), agents=pool
    )
    agent = agent_factory()
    vm, dst = setup_vm(engine, [agent], disks=1)
    agent.stub().CreateVolume(
        apb.CreateVolumeRequest(
            request_id=str(uuid.uuid4()),
            storage_domain_id=dst,
            image_id=str(uuid.uuid4()),
            size_bytes=4096,
        ),
        timeout=10,
    )
    assert engine.reconcile().cleared_zombies == 0  # first seen: inside its grace
    threading.Event().wait(0.6)
    assert engine.reconcile().cleared_zombies == 1
    again = engine.reconcile()
    assert (
        again.failed_command_ids,
        again.removed_placeholders,
        again.adopted_tasks,
        again.cleared_zombies,
    ) == ([], 0, 0, 0)
    assert agent.stub().GetAllTasksInfo(apb.GetAllTasksInfoRequest(), timeout=10).tasks == []


def test_upgrading_from_the_first_revision_keeps_the_data(database_url: str) -> None:
    from alembic import command
    from sqlalchemy import text

    from engine_service.adapters.db import alembic_config

    engine = make_engine(database_url)
    command.upgrade(alembic_config(engine), "0001")
    ids = {k: str(uuid.uuid4()) for k in ("host", "sd", "disk", "cmd", "task")}
    rows = [
        (
            "INSERT INTO hosts (host_id, name, address, status, failed_polls, created_at) "
            "VALUES (:host, 'h1', '10.0.0.1:54321', 'UP', 0, CURRENT_TIMESTAMP)"
        ),
        (
            "INSERT INTO storage_domains (storage_domain_id, name, created_at) "
            "VALUES (:sd, 'data1', CURRENT_TIMESTAMP)"
        ),
        (
            "INSERT INTO disks (disk_id, name, storage_domain_id, image_id, size_bytes, status, "
            "created_at) VALUES (:disk, 'd', :sd, :task, 4096, 'LOCKED', CURRENT_TIMESTAMP)"
        ),
        (
            "INSERT INTO commands (command_id, parent_id, action_type, status, params, target_id, "
            "failure_reason, created_at) VALUES (:cmd, NULL, 'AddDisk', 'ACTIVE', '{}', :disk, '', "
            "CURRENT_TIMESTAMP)"
        ),
        (
            "INSERT INTO async_tasks (task_id, command_id, root_command_id, host_id, vdsm_task_id, "
            "verb, args, storage_domain_id, image_id, progress_percent, message, cleanup, "
            "created_at) VALUES (:task, :cmd, :cmd, :host, NULL, 'CreateVolume', '{}', :sd, :task, "
            "0, '', '', CURRENT_TIMESTAMP)"
        ),
        (
            "INSERT INTO entity_locks (entity_type, entity_id, command_id, created_at) "
            "VALUES ('disk', :disk, :cmd, CURRENT_TIMESTAMP)"
        ),
    ]
    with engine.begin() as connection:
        for statement in rows:
            connection.execute(text(statement), ids)
    migrate(engine)  # what the next engine start does
    with engine.connect() as connection:
        assert (
            connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0004"
        )
        host = connection.execute(
            text(
                "SELECT name, last_seen_at, confirmed_rebooted_at, confirmed_rebooted_by, "
                "confirmed_rebooted_reason FROM hosts"
            )
        ).one()
        assert tuple(host) == ("h1", None, None, "", "")
        assert connection.execute(text("SELECT count(*) FROM zombie_sightings")).scalar() == 0
        placeholder = connection.execute(
            text("SELECT task_id, vdsm_task_id, root_command_id FROM async_tasks")
        ).one()
        assert tuple(placeholder) == (ids["task"], None, ids["cmd"])
        assert (
            connection.execute(text("SELECT command_id FROM entity_locks")).scalar() == ids["cmd"]
        )
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def test_a_placeholder_moves_off_a_host_that_went_down_before_it_was_sent(
    engine: Engine, agent_factory, monkeypatch
) -> None:
    agents = [agent_factory("host1"), agent_factory("host2")]
    vm, dst = setup_vm(engine, agents, disks=2)
    monkeypatch.setattr(engine.lifecycle, "execute", lambda root_id, plan=None: None)  # hold it
    _, view = engine.add_vm_template(vm, "moved", dst)
    monkeypatch.undo()
    hosts = {h.host.name: h.host.host_id for h in engine.inventory.hosts()}
    with engine.uow() as uow:
        assert {t.host_id for t in uow.repo.tasks_of(view.command_id)} == set(hosts.values())
        down = uow.repo.host(hosts["host1"])
        assert down is not None
        down.status = HostStatus.NON_RESPONSIVE
        uow.repo.save_hosts([down])
        uow.commit()
    engine.lifecycle.execute(view.command_id)
    with engine.uow() as uow:
        tasks = uow.repo.tasks_of(view.command_id)
    assert {t.host_id for t in tasks} == {hosts["host2"]}
    assert all(t.vdsm_task_id for t in tasks)
    settle(engine)
    assert engine.command(view.command_id).status is CommandStatus.SUCCEEDED


def test_a_host_that_has_just_accepted_a_task_is_not_taken_for_down(
    engine: Engine, agent_factory, monkeypatch
) -> None:
    """An agent that restarted while a command was being sent answers the retried start before
    the poller marks it UP again: the command's next tasks still go to it."""
    from engine_service.service_layer.host_selection import HostSnapshot

    vm, dst = setup_vm(engine, [agent_factory("host1")], disks=2)
    start = engine.lifecycle.sender._call

    def start_then_marked_down(host: Host, task_id: str, child: Any, *stopping: Any) -> str:
        vdsm_task_id = start(host, task_id, child, *stopping)
        with engine.uow() as uow:  # the poller's view, from before the agent came back
            row = uow.repo.host(host.host_id)
            assert row is not None
            row.status = HostStatus.NON_RESPONSIVE
            uow.repo.save_hosts([row])
            uow.commit()
        return vdsm_task_id

    monkeypatch.setattr(engine.lifecycle.sender, "_call", start_then_marked_down)
    monkeypatch.setattr(HostSnapshot, "up", lambda self, host_id: None)  # always read again
    _, view = engine.add_vm_template(vm, "kept", dst)
    assert view.status is CommandStatus.ACTIVE, view.failure_reason
    assert len(view.tasks) == 2 and all(t.vdsm_task_id for t in view.tasks)
    monkeypatch.undo()
    settle(engine)
    assert engine.command(view.command_id).status is CommandStatus.SUCCEEDED


def test_a_repeated_request_that_loses_validation_to_its_twin_gets_the_twins_command(
    engine: Engine, agent_factory, monkeypatch, db_url: str
) -> None:
    """Under READ COMMITTED a duplicate can read no request id, then see the disk locks its
    twin committed meanwhile: it answers with the twin's command, not 'disk locked'."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite serialises writers from BEGIN: a duplicate cannot interleave there")
    vm, dst = setup_vm(engine, [agent_factory()], disks=1)
    request_id = str(uuid.uuid4())
    validate = AddVmTemplate.validate
    twin: list[Any] = []

    def validate_after_the_twin(self: AddVmTemplate, repo: Repository) -> None:
        if not twin:  # the first request, after it found no request id: the twin goes first
            twin.append(None)
            thread = threading.Thread(
                target=lambda: twin.append(engine.add_vm_template(vm, "t", dst, request_id))
            )
            thread.start()
            thread.join(30)
        validate(self, repo)

    monkeypatch.setattr(AddVmTemplate, "validate", validate_after_the_twin)
    _, view = engine.add_vm_template(vm, "t", dst, request_id)
    monkeypatch.undo()
    assert len(twin) == 2, "the twin did not finish"
    assert view.command_id == twin[1][1].command_id
    settle(engine)


def test_a_command_that_fails_before_its_reply_is_built_is_still_answered(
    engine: Engine, agent_factory, monkeypatch
) -> None:
    vm, dst = setup_vm(engine, [agent_factory()], disks=1)
    execute = engine.lifecycle.execute

    def execute_then_fail(root_id: str, plan=None) -> None:  # the poller ends it first
        execute(root_id, plan)
        engine.lifecycle.finish(root_id, Outcome(CommandStatus.FAILED, "the host failed it"))

    monkeypatch.setattr(engine.lifecycle, "execute", execute_then_fail)
    template, view = engine.add_vm_template(vm, "short-lived", dst)
    assert template is None
    assert view.status is CommandStatus.FAILED and view.failure_reason == "the host failed it"
    monkeypatch.undo()
    settle(engine)


def test_submitting_a_template_takes_one_transaction_per_durable_step(
    db_url: str, pool: CountingPool, agent_factory
) -> None:
    """The hot path of benchmark 1: the placeholders' transaction and one for every agent id
    (after the starts); no transaction per task to re-read its host, no commit per task, and
    none to read the reply."""
    from sqlalchemy import event

    db = make_engine(db_url)
    engine = bootstrap(EngineSettings(db_url, poll=PollSettings(interval=3600)), db=db, agents=pool)
    vm, dst = setup_vm(engine, [agent_factory()], disks=4)
    seen = Counter[str]()
    event.listen(db, "begin", lambda conn: seen.update(["begin"]))
    event.listen(db, "commit", lambda conn: seen.update(["commit"]))
    _, view = engine.add_vm_template(vm, "counted", dst)
    assert len(view.tasks) == 4 and all(t.vdsm_task_id for t in view.tasks)
    assert seen == {"begin": 1 + 1, "commit": 1 + 1}  # the reply is built from what it holds
    settle(engine)
    db.dispose()


def test_a_read_only_unit_reads_beside_a_writer_and_cannot_commit(db_url: str) -> None:
    """On SQLite a writer holds the one write lock from BEGIN IMMEDIATE to COMMIT; a unit that
    only reads must not queue behind it (views and polls read while submissions write)."""
    from engine_service.adapters.db import session_factory
    from engine_service.service_layer.unit_of_work import UnitOfWork

    db = make_engine(db_url)
    migrate(db)
    sessions = session_factory(db)
    with UnitOfWork(sessions) as writer:
        writer.repo.hosts()  # the write lock is held from here (SQLite) until the unit ends
        done = threading.Event()

        def read() -> None:
            with UnitOfWork(sessions, read_only=True) as reader:
                reader.repo.hosts()
                with pytest.raises(RuntimeError, match="cannot commit"):
                    reader.commit()
            done.set()

        threading.Thread(target=read, daemon=True).start()
        assert done.wait(10), "the read-only unit waited for the writer"
    db.dispose()


def slowed_starts(
    monkeypatch: pytest.MonkeyPatch, refuse: int = 0
) -> list[tuple[float, float, int]]:
    """Every call starting agent tasks (a start alone or a StartTasks call) takes 0.3 s more,
    and the `refuse`-th start (counted across calls) is refused instead of being sent; returns
    when each call began and ended and how many starts it had, in the order they ended."""
    import itertools
    import time

    import grpc

    from engine_service.adapters.agent_client import AgentRejected

    calls: list[tuple[float, float, int]] = []
    start_one, start_many = AgentClient.start_task, AgentClient.start_tasks
    numbers = itertools.count(1)
    no_room = AgentRejected(grpc.StatusCode.RESOURCE_EXHAUSTED, "no room")

    def one(self: AgentClient, verb: str, request_id: str, args: dict[str, Any]) -> str:
        began, number = time.monotonic(), next(numbers)  # next() is atomic
        time.sleep(0.3)
        try:
            if number == refuse:
                raise no_room
            return start_one(self, verb, request_id, args)
        finally:
            calls.append((began, time.monotonic(), 1))

    def many(self: AgentClient, starts: list[Any]) -> list[Any]:
        began, numbered = time.monotonic(), [next(numbers) for _ in starts]
        time.sleep(0.3)
        try:
            sent = [s for s, n in zip(starts, numbered, strict=True) if n != refuse]
            answers = iter(start_many(self, sent))
            return [no_room if n == refuse else next(answers) for n in numbered]
        finally:
            calls.append((began, time.monotonic(), len(starts)))

    monkeypatch.setattr(AgentClient, "start_task", one)
    monkeypatch.setattr(AgentClient, "start_tasks", many)
    return calls


def test_a_commands_tasks_after_the_first_are_started_at_once(
    engine: Engine, agent_factory, monkeypatch
) -> None:
    vm, dst = setup_vm(engine, [agent_factory("host1"), agent_factory("host2")], disks=4)
    calls = slowed_starts(monkeypatch)
    _, view = engine.add_vm_template(vm, "at-once", dst)
    monkeypatch.undo()
    first, *others = sorted(calls)
    assert first[2] == 1 and all(began >= first[1] for began, _, _ in others)  # first alone
    assert sorted(n for _, _, n in others) == [1, 2]  # then one call per host
    assert max(began for began, _, _ in others) < min(ended for _, ended, _ in others)  # at once
    assert len(view.tasks) == 4 and all(t.vdsm_task_id for t in view.tasks)
    settle(engine)
    assert engine.command(view.command_id).status is CommandStatus.SUCCEEDED


def test_a_start_refused_among_concurrent_ones_fails_the_command_and_leaves_nothing(
    engine: Engine, agent_factory, monkeypatch
) -> None:
    agent = agent_factory("host1")
    vm, dst = setup_vm(engine, [agent], disks=4)
    client = engine.agents.get(agent.address)
    before = {i.vdsm_task_id for i in client.all_info()}
    files = {p for p in agent.storage_root.rglob("*") if p.is_file()}
    slowed_starts(monkeypatch, refuse=3)  # the second of the three sent in one call is refused
    _, view = engine.add_vm_template(vm, "refused", dst)
    monkeypatch.undo()
    assert view.status is CommandStatus.FAILED and "no room" in view.failure_reason
    # the first, and the two accepted beside the refused one, are stored and compensated
    assert len(view.tasks) == 3 and all(t.vdsm_task_id for t in view.tasks)
    settle(engine)
    assert {i.vdsm_task_id for i in client.all_info()} == before  # every task cleared
    assert {p for p in agent.storage_root.rglob("*") if p.is_file()} == files  # copies deleted
    assert engine.inventory.templates(50, "")[0] == []


def test_the_reply_built_from_what_a_submission_holds_is_what_a_read_shows(
    engine: Engine, agent_factory
) -> None:
    """A submission whose starts were all stored answers without reading (Engine._reply): its
    reply equals the command and the entity read back from the database afterwards."""
    vm, dst = setup_vm(engine, [agent_factory()], disks=3)
    template, view = engine.add_vm_template(vm, "held", dst)
    disk, disk_view = engine.add_disk("held-disk", dst, 64 * 1024)
    assert template is not None and disk is not None
    assert len(view.children) == 3 and all(t.vdsm_task_id for t in view.tasks)
    assert view == engine.command(view.command_id)
    assert disk_view == engine.command(disk_view.command_id)
    with engine.uow(read_only=True) as uow:
        assert template == uow.repo.template(template.template_id)
        assert disk == uow.repo.disk(disk.disk_id)
    settle(engine)
