"""The agent's task rules as plain Python: states and their moves, StopTask, recovery, progress,
request ids, records and wire names. No process, socket, sleep or file."""

from __future__ import annotations

import uuid

import pytest

from service_common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from service_common.vdsm_tasks import (
    TaskResult,
    TaskState,
    result_from_wire_name,
    state_from_wire_name,
)
from vdsm_agent.domain.tasks import (
    MAX_FILL_PATTERN_BYTES,
    MAX_VOLUME_BYTES,
    TRANSITIONS,
    Code,
    CopyImageSpec,
    CreateVolumeSpec,
    ImageRef,
    RemoveImageSpec,
    StopAction,
    Task,
    TaskBook,
    TaskSpec,
    can_move,
    interrupted,
    running_progress,
    undone,
)
from vdsm_agent.v1 import agent_service_pb2 as pb
from vdsm_agent.wire import RESULT_FROM_PB, RESULT_TO_PB, STATE_FROM_PB, STATE_TO_PB

UNFINISHED = [TaskState.INIT, TaskState.RUNNING, TaskState.ABORTING, TaskState.CLEANING]


def ref() -> ImageRef:
    return ImageRef(str(uuid.uuid4()), str(uuid.uuid4()))


def task(spec: TaskSpec | None = None, state: TaskState = TaskState.INIT) -> Task:
    spec = spec or CreateVolumeSpec(ref(), 10)
    return Task(str(uuid.uuid4()), str(uuid.uuid4()), spec, state=state)


# -- states and their moves ------------------------------------------------------------------


def test_every_state_has_its_moves_and_finished_is_the_end() -> None:
    assert set(TRANSITIONS) == set(TaskState)
    assert TRANSITIONS[TaskState.FINISHED] == frozenset()
    assert all(can_move(s, TaskState.FINISHED) for s in UNFINISHED)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (TaskState.INIT, TaskState.RUNNING),
        (TaskState.RUNNING, TaskState.ABORTING),
        (TaskState.RUNNING, TaskState.CLEANING),
        (TaskState.ABORTING, TaskState.CLEANING),
    ],
)
def test_the_moves_a_job_makes(before: TaskState, after: TaskState) -> None:
    assert can_move(before, after)
    assert not can_move(after, before)


@pytest.mark.parametrize("state", list(TaskState))
def test_nothing_moves_back_to_init(state: TaskState) -> None:
    assert not can_move(state, TaskState.INIT)


@pytest.mark.parametrize(
    ("state", "action"),
    [
        (TaskState.INIT, StopAction.CANCEL),
        (TaskState.RUNNING, StopAction.ABORT),
        (TaskState.ABORTING, StopAction.NOTHING),
        (TaskState.CLEANING, StopAction.NOTHING),
        (TaskState.FINISHED, StopAction.NOTHING),
    ],
)
def test_what_stop_does_in_each_state(state: TaskState, action: StopAction) -> None:
    assert task(state=state).stop_action() is action


def test_a_stopped_job_ends_clean() -> None:
    stopped, shut_down = interrupted(shutdown=False), interrupted(shutdown=True)
    assert (stopped.result, stopped.code) == (TaskResult.CLEAN_SUCCESS, Code.CANCELLED)
    assert (shut_down.result, shut_down.code) == (TaskResult.CLEAN_FAILURE, Code.UNAVAILABLE)
    assert stopped.message == "stopped by StopTask; partial output removed"


def test_an_interrupted_removal_says_its_image_was_not_removed() -> None:
    left = undone(RemoveImageSpec(ref()))
    assert left == "the image was not removed"
    assert undone(CopyImageSpec(ref(), ref())) == "partial output removed"
    assert interrupted(shutdown=False, left=left).message == f"stopped by StopTask; {left}"
    assert interrupted(shutdown=True, left=left).message.endswith(left)


@pytest.mark.parametrize("state", UNFINISHED)
def test_only_finished_tasks_can_be_cleared(state: TaskState) -> None:
    with pytest.raises(FailedPrecondition, match=state.value):
        task(state=state).check_clearable()


def test_success_is_complete_and_clearable() -> None:
    done = task(state=TaskState.RUNNING)
    done.progress_percent = 99
    done.finish(TaskResult.SUCCESS)
    done.check_clearable()
    assert (done.state, done.progress_percent, done.code) == (TaskState.FINISHED, 100, Code.OK)


# -- recovery after a restart ----------------------------------------------------------------


@pytest.mark.parametrize("state", UNFINISHED)
def test_restart_makes_an_unpublished_task_a_clean_failure(state: TaskState) -> None:
    t = task(state=state)
    t.settle_after_restart(done=False)
    assert (t.state, t.result, t.code) == (
        TaskState.FINISHED,
        TaskResult.CLEAN_FAILURE,
        Code.UNAVAILABLE,
    )
    assert f"while {state.value}" in t.message


def test_restart_makes_a_published_task_a_success() -> None:
    t = task(state=TaskState.RUNNING)
    assert t.settle_after_restart(done=True).result is TaskResult.SUCCESS
    assert (t.state, t.result, t.progress_percent) == (TaskState.FINISHED, TaskResult.SUCCESS, 100)


@pytest.mark.parametrize("state", UNFINISHED)
def test_only_a_task_that_started_may_have_published(state: TaskState) -> None:
    assert task(state=state).may_have_published is (state is not TaskState.INIT)


@pytest.mark.parametrize("state", UNFINISHED)
@pytest.mark.parametrize("image_exists", [True, False])
def test_after_a_restart_a_writer_is_done_if_its_image_is_there_a_removal_if_it_is_gone(
    state: TaskState, image_exists: bool
) -> None:
    started = state is not TaskState.INIT
    writer = task(CopyImageSpec(ref(), ref()), state)
    removal = task(RemoveImageSpec(ref()), state)
    assert writer.work_done(image_exists) is (started and image_exists)
    # A removal still in init removed nothing, even of an image that was never there.
    assert removal.work_done(image_exists) is (started and not image_exists)


def test_a_removal_a_restart_interrupted_leaves_its_image_and_says_so() -> None:
    t = task(RemoveImageSpec(ref()), TaskState.RUNNING)
    outcome = t.settle_after_restart(done=False)
    assert (t.state, t.result, t.code) == (
        TaskState.FINISHED,
        TaskResult.CLEAN_FAILURE,
        Code.UNAVAILABLE,
    )
    assert outcome.message == (
        "interrupted by an agent restart while running; the image was not removed"
    )
    done = task(RemoveImageSpec(ref()), TaskState.RUNNING)
    assert done.settle_after_restart(done=True).result is TaskResult.SUCCESS
    assert done.progress_percent == 100


# -- progress ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("done", "total", "percent"),
    [(0, 10, 0), (5, 10, 50), (10, 10, 99), (30, 10, 99), (0, 0, 0), (-1, 10, 0), (7, 0, 99)],
)
def test_running_progress_stays_within_0_and_99(done: int, total: int, percent: int) -> None:
    assert running_progress(done, total) == percent
    t = task(state=TaskState.RUNNING)
    t.record_progress(done, total)
    assert t.progress_percent == percent


# -- specs, request ids and records ------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "pattern", "field"),
    [
        (0, b"", "size_bytes"),
        (-1, b"", "size_bytes"),
        (MAX_VOLUME_BYTES + 1, b"", "size_bytes"),
        (10, b"x" * (MAX_FILL_PATTERN_BYTES + 1), "fill_pattern"),
    ],
)
def test_volume_bounds(size: int, pattern: bytes, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        CreateVolumeSpec(ref(), size, pattern).check_bounds()
    assert err.value.field == field
    CreateVolumeSpec(ref(), MAX_VOLUME_BYTES, b"x" * MAX_FILL_PATTERN_BYTES).check_bounds()


def test_a_request_id_matches_only_the_same_request() -> None:
    spec = CopyImageSpec(ref(), ref())
    t = task(spec)
    t.check_same_request(CopyImageSpec(spec.source, spec.target))
    with pytest.raises(AlreadyExists, match=t.request_id):
        t.check_same_request(CopyImageSpec(spec.source, ref()))
    with pytest.raises(AlreadyExists):
        t.check_same_request(CreateVolumeSpec(spec.target, 10))


SPECS = [
    CreateVolumeSpec(ref(), 123, b"\x00\xffab"),
    CopyImageSpec(ref(), ref()),
    RemoveImageSpec(ref()),
]
SPEC_IDS = ["CreateVolume", "CopyImage", "RemoveImage"]


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_spec_records_round_trip(spec: TaskSpec) -> None:
    assert type(spec).from_record(spec.to_record()) == spec


def test_a_removal_is_the_same_request_only_for_the_same_image() -> None:
    spec = RemoveImageSpec(ref())
    t = task(spec)
    same = ImageRef(spec.target.storage_domain_id, spec.target.image_id)
    t.check_same_request(RemoveImageSpec(same))
    for other in (RemoveImageSpec(ref()), CreateVolumeSpec(spec.target, 10)):
        with pytest.raises(AlreadyExists, match=t.request_id):
            t.check_same_request(other)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_task_records_round_trip(spec: TaskSpec) -> None:
    t = task(spec)
    t.start()
    t.finish(TaskResult.FAILURE, Code.DATA_LOSS, "did not verify")
    assert Task.from_record(t.to_record()) == t
    assert t.to_record()["state"] == "finished" and t.to_record()["verb"] == spec.verb.value


# -- the book of tasks -------------------------------------------------------------------------


def test_the_book_finds_a_request_once_and_forgets_a_removed_task() -> None:
    book, t = TaskBook(), task()
    assert book.same_request(t.request_id, t.spec) is None
    book.add(t)
    assert book.same_request(t.request_id, CreateVolumeSpec(t.spec.target, 10)) is t
    with pytest.raises(AlreadyExists):
        book.same_request(t.request_id, CreateVolumeSpec(t.spec.target, 11))
    assert book.known(t.task_id) is t and list(book) == [t]
    book.remove(t)
    with pytest.raises(NotFound, match=t.task_id):
        book.known(t.task_id)
    assert book.same_request(t.request_id, t.spec) is None and len(book) == 0


def test_unfinished_tasks_hold_the_images_they_write_and_read() -> None:
    book, copy = TaskBook(), task(CopyImageSpec(ref(), ref()), TaskState.RUNNING)
    book.add(copy)
    assert isinstance(copy.spec, CopyImageSpec)
    with pytest.raises(AlreadyExists, match=copy.task_id):
        book.check_not_being_written(copy.spec.target)
    for held in (copy.spec.source, copy.spec.target):
        with pytest.raises(FailedPrecondition, match=copy.task_id):
            book.check_not_in_use(held)
    copy.finish(TaskResult.SUCCESS)
    book.check_not_being_written(copy.spec.target)
    book.check_not_in_use(copy.spec.source)


def test_an_unfinished_removal_holds_its_image_against_every_other_task() -> None:
    book = TaskBook()
    removal = task(RemoveImageSpec(ref()), TaskState.INIT)
    copy = task(CopyImageSpec(ref(), ref()), TaskState.RUNNING)
    book.add(removal)
    book.add(copy)
    gone = removal.spec.target
    with pytest.raises(
        FailedPrecondition, match=f"being removed by unfinished task {removal.task_id}"
    ):
        book.check_not_being_removed(gone)
    with pytest.raises(FailedPrecondition, match=removal.task_id):
        book.check_not_in_use(gone)  # DeleteImage, or another removal
    assert isinstance(copy.spec, CopyImageSpec)
    for image in (copy.spec.source, copy.spec.target, ref()):
        book.check_not_being_removed(image)  # a copy holds its images, but removes none
    removal.finish(TaskResult.SUCCESS)
    book.check_not_being_removed(gone)
    book.check_not_in_use(gone)


# -- wire names --------------------------------------------------------------------------------


@pytest.mark.parametrize("state", list(TaskState))
def test_every_state_converts_both_ways(state: TaskState) -> None:
    assert state_from_wire_name(state.wire_name) is state
    assert pb.TaskState.Name(STATE_TO_PB[state]) == state.wire_name
    assert STATE_FROM_PB[STATE_TO_PB[state]] is state


@pytest.mark.parametrize("result", list(TaskResult))
def test_every_result_converts_both_ways(result: TaskResult) -> None:
    assert result_from_wire_name(result.wire_name) is result
    assert pb.TaskResult.Name(RESULT_TO_PB[result]) == result.wire_name
    assert RESULT_FROM_PB[RESULT_TO_PB[result]] is result


def test_no_result_is_unspecified_on_the_wire() -> None:
    assert TaskResult.NONE.wire_name == "TASK_RESULT_UNSPECIFIED"
    assert RESULT_TO_PB[TaskResult.NONE] == pb.TASK_RESULT_UNSPECIFIED


@pytest.mark.parametrize(
    "name", ["", "init", "TASK_STATE_UNSPECIFIED", "TASK_STATE_init", "TASK_RESULT_SUCCESS"]
)
def test_a_name_that_is_no_state_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        state_from_wire_name(name)


@pytest.mark.parametrize("name", ["", "success", "TASK_RESULT_success", "TASK_STATE_INIT"])
def test_a_name_that_is_no_result_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        result_from_wire_name(name)
