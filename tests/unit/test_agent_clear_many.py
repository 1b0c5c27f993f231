"""ClearTasks on the agent (TaskManager.clear_many): ClearTask for many tasks, their records
submitted together so that they share one fsync; each task's own outcome; a request that cannot
be read clears nothing and names the field."""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest

from service_common.errors import InvalidArgument, NotFound, ResourceExhausted
from tests.unit.test_agent_storage_faults import FullAgent
from tests.unit.test_agent_task_manager import Agent, new_id
from vdsm_agent.service_layer.task_manager import MAX_CLEARS, Cleared


def test_each_task_gets_its_own_outcome_in_the_order_asked() -> None:
    agent = Agent()
    done = [agent.finished(agent.volume()) for _ in range(2)]
    running = agent.volume()
    unknown = new_id()
    asked = [done[0].task_id, running.task_id, unknown, done[1].task_id]
    assert agent.manager.clear_many(asked) == [
        (done[0].task_id, Cleared.CLEARED),
        (running.task_id, Cleared.NOT_FINISHED),
        (unknown, Cleared.NOT_FOUND),
        (done[1].task_id, Cleared.CLEARED),
    ]
    assert [t.task_id for t in agent.manager.all_tasks()] == [running.task_id]
    assert list(agent.store.records) == [running.task_id]  # the cleared ones' records are gone
    for task in done:
        with pytest.raises(NotFound):
            agent.manager.get(task.task_id)


@pytest.mark.parametrize(
    ("ids", "field"),
    [
        (lambda t: [t, "not-a-uuid"], r"task_ids\[1\]"),
        (lambda t: [t, t], r"task_ids\[1\]: .* is repeated"),
        (lambda t: [t] + [new_id() for _ in range(MAX_CLEARS)], r"task_ids: 1001 ids"),
    ],
)
def test_a_request_that_cannot_be_read_clears_nothing_and_names_the_field(
    ids: Callable[[str], list[str]], field: str
) -> None:
    agent = Agent()
    task = agent.finished(agent.volume())
    with pytest.raises(InvalidArgument, match=field):
        agent.manager.clear_many(ids(task.task_id))
    assert agent.manager.get(task.task_id) == task and task.task_id in agent.store.records


def test_on_a_full_state_directory_the_tasks_are_kept_and_cleared_once_there_is_room() -> None:
    agent = FullAgent()
    tasks = [agent.finished(agent.volume()) for _ in range(2)]
    ids = [t.task_id for t in tasks]
    agent.full_store.error = errno.ENOSPC
    with pytest.raises(ResourceExhausted, match=rf"record that task {ids[0]} is cleared"):
        agent.manager.clear_many(ids)
    assert [t.task_id for t in agent.manager.all_tasks()] == ids
    agent.full_store.error = None
    assert agent.manager.clear_many(ids) == [(i, Cleared.CLEARED) for i in ids]
    assert agent.manager.all_tasks() == [] and agent.full_store.records == {}
