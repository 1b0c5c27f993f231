"""RemoveImage, the agent's asynchronous image removal (docs/design.md §9): the TaskManager over the
in-memory fakes of test_agent_task_manager, its jobs run by hand. No process, socket, sleep or
file."""

from __future__ import annotations

import errno

import pytest

from service_common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from service_common.vdsm_tasks import TaskResult, TaskState
from tests.unit.test_agent_storage_faults import FullAgent
from tests.unit.test_agent_task_manager import (
    SD,
    Agent,
    FakeStorage,
    HookedLock,
    new_id,
)
from vdsm_agent.domain.tasks import (
    SHUT_DOWN_BEFORE_START,
    STOPPED_BEFORE_START,
    Code,
    ImageRef,
    RemoveImageSpec,
    Task,
    Verb,
)


def an_image(agent: Agent, data: bytes = b"disk") -> ImageRef:
    ref = ImageRef(SD, new_id())
    agent.storage.images[ref] = data
    return ref


def remove(agent: Agent, image: ImageRef, request_id: str | None = None) -> Task:
    return agent.manager.remove_image(
        request_id or new_id(), image.storage_domain_id, image.image_id
    )


@pytest.fixture
def agent() -> Agent:
    return Agent()


# -- a removal is a task -------------------------------------------------------------------------


def test_a_removal_is_recorded_in_init_before_it_runs_and_removes_nothing_yet(agent: Agent) -> None:
    image = an_image(agent)
    task = remove(agent, image)
    assert (task.verb, task.state, task.spec) == (
        Verb.REMOVE_IMAGE,
        TaskState.INIT,
        RemoveImageSpec(image),
    )
    assert agent.store.saved(task.task_id) == task
    assert image in agent.storage.images and agent.workers.queued


def test_a_removal_runs_to_success_and_the_image_is_gone(agent: Agent) -> None:
    image = an_image(agent)
    stray = (image, new_id())  # the partial file of a task no longer recorded
    other = (ImageRef(SD, new_id()), new_id())
    agent.storage.partials.update({stray: b"half", other: b"not this image's"})
    task = agent.finished(remove(agent, image))
    assert (task.state, task.result, task.code, task.progress_percent, task.message) == (
        TaskState.FINISHED,
        TaskResult.SUCCESS,
        Code.OK,
        100,
        "",
    )
    assert image not in agent.storage.images and agent.storage.removed == [image]
    assert list(agent.storage.partials) == [other]
    assert agent.store.saved(task.task_id) == task


def test_removing_an_image_that_is_not_there_succeeds(agent: Agent) -> None:
    missing = ImageRef(SD, new_id())
    task = agent.finished(remove(agent, missing))
    assert (task.result, task.code, task.message) == (TaskResult.SUCCESS, Code.OK, "")
    assert agent.storage.removed == [missing]


def test_a_removal_whose_domain_vanished_before_it_ran_fails_not_found(agent: Agent) -> None:
    task = remove(agent, an_image(agent))
    agent.storage.domains.clear()
    ended = agent.finished(task)
    assert (ended.result, ended.code) == (TaskResult.FAILURE, Code.NOT_FOUND)
    assert SD in ended.message


def test_a_removal_that_fails_on_the_storage_says_why(agent: Agent) -> None:
    image = an_image(agent)

    def broken(ref: ImageRef) -> bool:
        raise OSError(errno.EIO, "Input/output error")

    agent.storage.remove_image = broken  # type: ignore[method-assign]
    ended = agent.finished(remove(agent, image))
    assert (ended.result, ended.code, ended.message) == (
        TaskResult.FAILURE,
        Code.INTERNAL,
        "I/O error: Input/output error",
    )


def test_a_removal_is_cleared_like_any_task(agent: Agent) -> None:
    task = remove(agent, an_image(agent))
    with pytest.raises(FailedPrecondition, match="not finished"):
        agent.manager.clear(task.task_id)
    agent.finished(task)
    agent.manager.clear(task.task_id)
    assert agent.store.records == {} and agent.manager.all_tasks() == []
    with pytest.raises(NotFound):
        agent.manager.get(task.task_id)


# -- idempotency by request id ------------------------------------------------------------------


def test_the_same_removal_again_returns_the_same_task(agent: Agent) -> None:
    image, request_id = an_image(agent), new_id()
    first = remove(agent, image, request_id)
    assert remove(agent, image, request_id).task_id == first.task_id
    agent.finished(first)
    upper = ImageRef(SD.upper(), image.image_id.upper())
    assert remove(agent, upper, request_id.upper()).task_id == first.task_id
    assert len(agent.manager.all_tasks()) == 1 and agent.storage.removed == [image]


def test_a_request_id_reused_for_another_request_already_exists(agent: Agent) -> None:
    image, request_id = an_image(agent), new_id()
    first = remove(agent, image, request_id)
    with pytest.raises(AlreadyExists, match=request_id):
        remove(agent, an_image(agent), request_id)
    with pytest.raises(AlreadyExists, match=first.task_id):
        agent.manager.create_volume(request_id, SD, image.image_id, 8)
    volume = agent.volume()
    with pytest.raises(AlreadyExists, match=volume.request_id):
        remove(agent, volume.spec.target, volume.request_id)
    assert len(agent.manager.all_tasks()) == 2


# -- images in use -----------------------------------------------------------------------------


def test_an_image_a_copy_reads_or_writes_is_not_removed_until_the_copy_ends(agent: Agent) -> None:
    source = an_image(agent)
    copy = agent.manager.copy_image(new_id(), SD, source.image_id, SD, new_id())
    for held in (source, copy.spec.target):
        with pytest.raises(FailedPrecondition, match=f"in use by unfinished task {copy.task_id}"):
            remove(agent, held)
    assert list(agent.store.records) == [copy.task_id]
    agent.workers.run_all()
    assert agent.finished(remove(agent, source)).result is TaskResult.SUCCESS
    assert source not in agent.storage.images and copy.spec.target in agent.storage.images


def test_an_image_being_removed_is_neither_read_written_deleted_nor_removed_again(
    agent: Agent,
) -> None:
    image = an_image(agent)
    removal = remove(agent, image)
    refusals = [
        lambda: agent.manager.copy_image(new_id(), SD, image.image_id, SD, new_id()),
        lambda: agent.manager.copy_image(
            new_id(), SD, an_image(agent).image_id, SD, image.image_id
        ),
        lambda: agent.manager.create_volume(new_id(), SD, image.image_id, 8),
        lambda: agent.manager.delete_image(SD, image.image_id),
        lambda: remove(agent, image),
    ]
    for refused in refusals:
        with pytest.raises(FailedPrecondition, match=removal.task_id):
            refused()
    assert list(agent.store.records) == [removal.task_id]
    agent.workers.run_all()
    again = agent.finished(agent.manager.create_volume(new_id(), SD, image.image_id, 3))
    assert again.result is TaskResult.SUCCESS and agent.storage.images[image] == b"\0" * 3


def test_a_removal_queued_does_not_remove_an_image_created_after_it(agent: Agent) -> None:
    """The race the hold prevents: a removal of an absent image, queued, and a creation of that
    image accepted meanwhile would have removed the new image."""
    image = ImageRef(SD, new_id())
    removal = remove(agent, image)
    with pytest.raises(FailedPrecondition, match=removal.task_id):
        agent.manager.create_volume(new_id(), SD, image.image_id, 8)
    agent.workers.run_all()
    assert agent.manager.get(removal.task_id).result is TaskResult.SUCCESS


# -- stopping and shutting down -----------------------------------------------------------------


def test_a_removal_stopped_before_it_started_leaves_the_image(agent: Agent) -> None:
    image = an_image(agent)
    task = remove(agent, image)
    agent.manager.stop(task.task_id)
    stopped = agent.finished(task)
    assert (stopped.state, stopped.result, stopped.code, stopped.message) == (
        TaskState.FINISHED,
        *STOPPED_BEFORE_START,
    )
    assert image in agent.storage.images and agent.storage.removed == []


def test_a_removal_stopped_as_it_begins_leaves_the_image_and_says_so() -> None:
    lock = HookedLock()
    agent = Agent(lock=lock)
    image = an_image(agent)
    task = remove(agent, image)
    # The worker records that the task runs and lets go of the lock: StopTask comes then.
    lock.at_next_release(lambda: agent.manager.stop(task.task_id))
    stopped = agent.finished(task)
    assert (stopped.state, stopped.result, stopped.code, stopped.message) == (
        TaskState.FINISHED,
        TaskResult.CLEAN_SUCCESS,
        Code.CANCELLED,
        "stopped by StopTask; the image was not removed",
    )
    assert image in agent.storage.images and agent.store.saved(task.task_id) == stopped


def test_stop_once_a_removal_ended_changes_nothing(agent: Agent) -> None:
    task = agent.finished(remove(agent, an_image(agent)))
    agent.manager.stop(task.task_id)
    assert agent.manager.get(task.task_id) == task


def test_shutdown_ends_a_queued_removal_and_the_image_stays(agent: Agent) -> None:
    image = an_image(agent)
    task = remove(agent, image)
    agent.manager.shutdown()
    ended = agent.manager.get(task.task_id)
    assert (ended.state, ended.result, ended.code, ended.message) == (
        TaskState.FINISHED,
        *SHUT_DOWN_BEFORE_START,
    )
    assert image in agent.storage.images
    assert remove(agent, image, task.request_id).task_id == task.task_id  # still answered


# -- recovery after a restart -------------------------------------------------------------------


def recorded_removal(image: ImageRef, state: TaskState) -> Task:
    return Task(new_id(), new_id(), RemoveImageSpec(image), state=state)


@pytest.mark.parametrize("state", [TaskState.RUNNING, TaskState.ABORTING, TaskState.CLEANING])
def test_a_restart_finishes_a_removal_whose_image_is_gone(state: TaskState) -> None:
    storage = FakeStorage()
    image = ImageRef(SD, new_id())
    storage.partials[(image, new_id())] = b"a stray partial file of it"
    task = recorded_removal(image, state)
    agent = Agent(task, storage=storage)
    after = agent.manager.get(task.task_id)
    assert (after.state, after.result, after.code) == (
        TaskState.FINISHED,
        TaskResult.SUCCESS,
        Code.OK,
    )
    assert storage.removed == [image] and storage.partials == {}  # finished: synced, stray gone
    assert agent.store.saved(task.task_id) == after


def test_a_restart_never_removes_an_image_that_is_still_there() -> None:
    storage = FakeStorage()
    running_image, queued_image = ImageRef(SD, new_id()), ImageRef(SD, new_id())
    storage.images.update({running_image: b"disk", queued_image: b"disk"})
    running = recorded_removal(running_image, TaskState.RUNNING)
    queued = recorded_removal(queued_image, TaskState.INIT)
    agent = Agent(running, queued, storage=storage)
    for task, state in ((running, "running"), (queued, "init")):
        after = agent.manager.get(task.task_id)
        assert (after.state, after.result, after.code, after.message) == (
            TaskState.FINISHED,
            TaskResult.CLEAN_FAILURE,
            Code.UNAVAILABLE,
            f"interrupted by an agent restart while {state}; the image was not removed",
        )
        assert agent.store.saved(task.task_id) == after
    assert set(storage.images) == {running_image, queued_image} and storage.removed == []
    assert agent.workers.queued == []  # nothing runs again after a restart


def test_a_restart_ends_a_removal_still_in_init_as_not_run_even_if_the_image_is_absent() -> None:
    storage = FakeStorage()
    task = recorded_removal(ImageRef(SD, new_id()), TaskState.INIT)
    agent = Agent(task, storage=storage)
    assert agent.manager.get(task.task_id).result is TaskResult.CLEAN_FAILURE
    assert storage.removed == []


def test_a_restart_whose_finish_of_a_removal_fails_still_ends_it_success() -> None:
    class Unsyncable(FakeStorage):
        """A storage whose directory cannot be synced any more."""

        def remove_image(self, ref: ImageRef) -> bool:
            raise OSError(errno.EIO, "Input/output error")

    task = recorded_removal(ImageRef(SD, new_id()), TaskState.RUNNING)
    agent = Agent(task, storage=Unsyncable())
    assert agent.manager.get(task.task_id).result is TaskResult.SUCCESS  # the image is gone


# -- bad input and a full state directory -------------------------------------------------------

BAD = "../etc/passwd"
GOOD = "0f2b6c7e-3d4a-4e5f-8a9b-1c2d3e4f5a6c"


@pytest.mark.parametrize(
    ("field", "args"),
    [
        ("request_id", (BAD, SD, GOOD)),
        ("request_id", ("", SD, GOOD)),
        ("storage_domain_id", (GOOD, BAD, GOOD)),
        ("storage_domain_id", (GOOD, "", GOOD)),
        ("image_id", (GOOD, SD, GOOD + "/..")),
        ("image_id", (GOOD, SD, "")),
    ],
)
def test_invalid_ids_are_refused_naming_the_field_and_nothing_is_written(
    agent: Agent, field: str, args: tuple[str, str, str]
) -> None:
    with pytest.raises(InvalidArgument) as err:
        agent.manager.remove_image(*args)
    assert err.value.field == field
    assert agent.store.records == {} and agent.workers.queued == []


def test_a_removal_in_a_domain_this_host_lacks_is_not_found_and_not_recorded(
    agent: Agent,
) -> None:
    with pytest.raises(NotFound, match="storage domain"):
        agent.manager.remove_image(new_id(), new_id(), new_id())
    assert agent.store.records == {} and agent.workers.queued == []


def test_a_removal_that_cannot_be_recorded_is_refused_and_nothing_is_accepted() -> None:
    agent = FullAgent()
    image = an_image(agent)
    request_id = new_id()
    agent.full_store.error = errno.ENOSPC
    with pytest.raises(ResourceExhausted) as refused:
        remove(agent, image, request_id)
    message = str(refused.value)
    assert "no space left in the agent's state directory" in message
    assert "RemoveImage" in message and "nothing was started" in message
    assert agent.manager.all_tasks() == [] and agent.workers.queued == []
    assert agent.full_store.records == {} and image in agent.storage.images
    agent.full_store.error = None  # space freed: the same request id is a new request
    assert agent.finished(remove(agent, image, request_id)).result is TaskResult.SUCCESS
    assert image not in agent.storage.images
