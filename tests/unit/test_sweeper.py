"""The in-process sweeper (issue 14, item 3; docs/design.md §7): a command whose `execute` raised
something other than an agent error leaves placeholders unsent and its locks held; the running
engine's poll loop reconciles them after --sweep-after seconds, without a restart."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine_service.domain.commands import CommandStatus
from engine_service.domain.requests import Conflict
from engine_service.service_layer.reconciliation import SWEPT_REASON
from tests.unit.world import World

SWEEP_AFTER = 30.0


def broken_submission(w: World, accept_first: bool) -> str:
    """An AddDisk whose execute raised mid-way: before the agent accepted its task (the agent
    call blew up), or after (storing the agent's id failed)."""
    host = next(iter(w.store.hosts.values()))
    agent = w.agent(host)

    def interrupt(request_id: str) -> None:
        agent.on_start = None
        if accept_first:
            w.uow.conflict_next_commit()  # the commit of the agent's id fails
        else:
            raise RuntimeError("the database went away")

    agent.on_start = interrupt
    with pytest.raises((Conflict, RuntimeError)):
        w.add_disk(next(iter(w.store.domains)))
    [root] = [c.command_id for c in w.store.commands.values() if c.parent_id is None]
    assert w.lifecycle.executing() == set()
    [placeholder] = w.tasks(root)
    assert placeholder.vdsm_task_id is None and w.command(root).status is CommandStatus.ACTIVE
    return root


def age_placeholders(w: World, seconds: float) -> None:
    for task in w.store.tasks.values():
        task.created_at -= timedelta(seconds=seconds)


def make_world() -> World:
    w = World(sweep_after=SWEEP_AFTER)
    w.host()
    w.domain()
    return w


def test_a_placeholder_that_never_reached_its_host_fails_its_command_in_the_running_engine() -> (
    None
):
    w = make_world()
    root = broken_submission(w, accept_first=False)
    age_placeholders(w, SWEEP_AFTER + 1)
    report = w.reconciler().sweep(SWEEP_AFTER)
    assert report.failed_command_ids == [root] and report.removed_placeholders == 1
    command = w.command(root)
    assert (command.status, command.failure_reason) == (CommandStatus.FAILED, SWEPT_REASON)
    assert w.store.tasks == {} and w.store.locks == {} and w.store.disks == {}


def test_a_task_the_agent_accepted_while_its_id_could_not_be_stored_is_adopted() -> None:
    w = make_world()
    root = broken_submission(w, accept_first=True)
    age_placeholders(w, SWEEP_AFTER + 1)
    report = w.reconciler().sweep(SWEEP_AFTER)
    assert report.adopted_tasks == 1 and report.failed_command_ids == []
    [task] = w.tasks(root)
    assert task.vdsm_task_id is not None
    assert w.command(root).status is CommandStatus.ACTIVE


def test_a_young_placeholder_is_left_to_its_submission() -> None:
    w = make_world()
    root = broken_submission(w, accept_first=False)
    age_placeholders(w, SWEEP_AFTER - 5)
    commits = w.uow.commits
    assert w.reconciler().sweep(SWEEP_AFTER).failed_command_ids == []
    assert w.command(root).status is CommandStatus.ACTIVE and w.uow.commits == commits


def test_a_placeholder_being_executed_is_never_swept() -> None:
    w = make_world()
    root = broken_submission(w, accept_first=False)
    age_placeholders(w, SWEEP_AFTER + 1)
    w.lifecycle._executing.add(root)  # a retry of execute in progress
    assert w.reconciler().sweep(SWEEP_AFTER).failed_command_ids == []
    assert w.command(root).status is CommandStatus.ACTIVE


def test_the_poll_loop_runs_the_sweeper() -> None:
    w = make_world()
    root = broken_submission(w, accept_first=False)
    age_placeholders(w, SWEEP_AFTER + 1)
    manager = w.manager()
    reconciler = w.reconciler()
    manager.sweep = lambda: reconciler.sweep(SWEEP_AFTER)
    manager.poll_once()
    assert w.command(root).status is CommandStatus.FAILED
