"""The agent's rules for storage faults (docs/design.md §9): a full storage root, a full state
directory, and task records that do not hold a task. Plain rules and the TaskManager over the
in-memory fakes of test_agent_task_manager; a store that is full says so by raising ENOSPC, as
the real one does, and never claims a record it did not keep. No process, socket, sleep or file.
"""

from __future__ import annotations

import errno
import json
import os
import re
from typing import Any

import pytest

from service_common.errors import ResourceExhausted
from service_common.vdsm_tasks import TaskResult, TaskState
from tests.unit.test_agent_task_manager import (
    SD,
    Agent,
    ByHand,
    FakeStorage,
    FakeStore,
    new_id,
)
from vdsm_agent.adapters.storage import write_all
from vdsm_agent.domain.records import CorruptRecord, decode_record, quarantine_name, task_id_of
from vdsm_agent.domain.tasks import Code, CopyImageSpec, CreateVolumeSpec, ImageRef, Task
from vdsm_agent.service_layer.task_manager import TaskManager
from vdsm_agent.service_layer.task_runner import failure_outcome

# -- reading a record back -----------------------------------------------------------------------


def a_task(**changes: Any) -> Task:
    # Fixed ids: some parameters below name them, and pytest-xdist's workers must collect the
    # same test ids.
    spec = CopyImageSpec(
        ImageRef(SD, "0f6f1a52-3b1e-4c3e-9d59-0c1f6a2b7e01"),
        ImageRef(SD, "0f6f1a52-3b1e-4c3e-9d59-0c1f6a2b7e02"),
    )
    task = Task(
        "0f6f1a52-3b1e-4c3e-9d59-0c1f6a2b7e03",
        "0f6f1a52-3b1e-4c3e-9d59-0c1f6a2b7e04",
        spec,
        accepted_at=1700000000.5,
    )
    for name, value in changes.items():
        setattr(task, name, value)
    return task


def record_bytes(task: Task, **changes: Any) -> bytes:
    rec = task.to_record()
    rec.update(changes)
    return json.dumps(rec).encode()


def test_a_sound_record_is_the_task_it_was() -> None:
    task = a_task(state=TaskState.RUNNING, progress_percent=40)
    assert decode_record(task.task_id, record_bytes(task)) == task
    task.finish(TaskResult.FAILURE, Code.RESOURCE_EXHAUSTED, "out of space")
    assert decode_record(task.task_id, record_bytes(task)) == task


WHOLE = a_task()
SOUND = record_bytes(WHOLE)


def without(field: str) -> bytes:
    rec = WHOLE.to_record()
    del rec[field]
    return json.dumps(rec).encode()


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"\0" * 512, "empty"),  # a block the storage never wrote
        (SOUND[: len(SOUND) // 2], "not JSON"),  # cut short
        (SOUND[:-1], "not JSON"),
        (b"\xff\xfe" + SOUND[2:], "not JSON"),  # not even text
        (b"null", "JSON NoneType, not an object"),
        (b"[1, 2]", "JSON list, not an object"),
        (b'"a string"', "JSON str"),
        (without("spec"), "'spec' is missing"),
        (without("request_id"), "'request_id' is missing"),
        (record_bytes(WHOLE, verb="Reboot"), "wrong value"),
        (record_bytes(WHOLE, state="paused"), "wrong value"),
        (record_bytes(WHOLE, progress_percent=None), "wrong value"),
        (record_bytes(WHOLE, spec="not a spec"), "wrong value"),
        (record_bytes(WHOLE, code=99), "wrong value"),
        (record_bytes(WHOLE, request_id=7), "request_id 7 is not a UUID"),
        (record_bytes(WHOLE, request_id="../../etc"), "is not a UUID"),
        (record_bytes(WHOLE, progress_percent=250), "not a percentage"),
        (record_bytes(WHOLE, message=["no"]), "not text"),
        (record_bytes(WHOLE, accepted_at=float("nan")), "not a time"),
        (
            record_bytes(WHOLE, task_id="0f6f1a52-3b1e-4c3e-9d59-0c1f6a2b7e05"),
            f"not task {WHOLE.task_id} of its name",
        ),
    ],
)
def test_a_record_that_holds_no_task_is_corrupt_and_says_why(data: bytes, why: str) -> None:
    with pytest.raises(CorruptRecord, match=re.escape(why)):
        decode_record(WHOLE.task_id, data)


@pytest.mark.parametrize("side", ["src", "dst"])
def test_a_record_whose_image_ids_are_not_uuids_is_corrupt(side: str) -> None:
    rec = WHOLE.to_record()
    rec["spec"][f"{side}_image_id"] = "../../../etc/passwd"  # paths are built from these
    with pytest.raises(CorruptRecord, match=r"image_id '\.\./\.\./\.\./etc/passwd' is not a UUID"):
        decode_record(WHOLE.task_id, json.dumps(rec).encode())


def test_only_record_files_are_read_and_a_set_aside_name_is_never_reused() -> None:
    task_id = new_id()
    assert task_id_of(f"{task_id}.json") == task_id
    for other in (f"{task_id}.json.tmp", f"{task_id}.json.corrupt", f"{task_id}.json.2.corrupt"):
        assert task_id_of(other) is None
    name = f"{task_id}.json"
    assert quarantine_name(name, set()) == f"{name}.corrupt"
    taken = {f"{name}.corrupt", f"{name}.2.corrupt"}
    assert quarantine_name(name, taken) == f"{name}.3.corrupt"


# -- writing all of it ---------------------------------------------------------------------------


def test_a_short_write_is_followed_by_the_rest_and_a_full_disk_still_raises() -> None:
    written: list[bytes] = []

    def two_bytes_at_a_time(chunk: memoryview) -> int:
        written.append(bytes(chunk[:2]))
        return len(written[-1])

    write_all(two_bytes_at_a_time, b"abcdefg")
    assert b"".join(written) == b"abcdefg"

    def fills_up(chunk: memoryview) -> int:
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(bytes(chunk[:3]))
        return 3

    written.clear()
    with pytest.raises(OSError) as raised:
        write_all(fills_up, b"abcdefg")
    assert raised.value.errno == errno.ENOSPC and written == [b"abc"]
    with pytest.raises(OSError, match="no progress"):
        write_all(lambda chunk: 0, b"x")


# -- a full storage root -------------------------------------------------------------------------


def test_a_job_out_of_space_fails_resource_exhausted_naming_the_image() -> None:
    task = a_task()
    for number in (errno.ENOSPC, errno.EDQUOT):
        outcome = failure_outcome(task, OSError(number, "No space left on device"))
        assert (outcome.result, outcome.code) == (TaskResult.FAILURE, Code.RESOURCE_EXHAUSTED)
        assert "out of space" in outcome.message and "No space left on device" in outcome.message
        assert task.spec.target.image_id in outcome.message
    other = failure_outcome(task, OSError(errno.EIO, "Input/output error"))
    assert (other.code, other.message) == (Code.INTERNAL, "I/O error: Input/output error")


def test_a_job_that_runs_out_of_space_removes_its_partial_and_the_agent_goes_on() -> None:
    agent = Agent()
    source = ImageRef(SD, new_id())
    agent.storage.images[source] = b"0123456789"

    def disk_full(done: int, total: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    agent.storage.during_job = disk_full
    task = agent.manager.copy_image(new_id(), SD, source.image_id, SD, new_id())
    ended = agent.finished(task)
    assert (ended.result, ended.code) == (TaskResult.FAILURE, Code.RESOURCE_EXHAUSTED)
    assert "No space left on device" in ended.message
    assert agent.storage.partials == {} and task.spec.target not in agent.storage.images
    assert agent.store.saved(task.task_id) == ended
    agent.storage.during_job = lambda done, total: None  # space freed
    again = agent.finished(agent.manager.copy_image(new_id(), SD, source.image_id, SD, new_id()))
    assert again.result is TaskResult.SUCCESS


# -- a full state directory ----------------------------------------------------------------------


class FullStore(FakeStore):
    """The fake store on a state directory that may fill up: a save or a delete then raises as
    os.write does, and keeps nothing (the real store cuts its journal back)."""

    def __init__(self, *tasks: Task) -> None:
        self.error: int | None = None
        super().__init__(*tasks)

    def save(self, task: Task) -> None:
        if self.error is not None:
            raise OSError(self.error, os.strerror(self.error))
        super().save(task)

    def delete(self, task_id: str) -> None:
        if self.error is not None:
            raise OSError(self.error, os.strerror(self.error))
        super().delete(task_id)


class FullAgent(Agent):
    """An Agent (TaskManager, fakes, hand-run workers) whose store may fill up."""

    def __init__(self, *recorded: Task, storage: FakeStorage | None = None) -> None:
        self.storage = storage or FakeStorage()
        self.storage.create_domain(SD)
        self.store = self.full_store = FullStore(*recorded)
        self.workers = ByHand()
        self.manager = TaskManager(self.storage, self.store, executor=self.workers)


@pytest.mark.parametrize("verb", ["CreateVolume", "CopyImage"])
def test_a_start_that_cannot_be_recorded_is_refused_and_nothing_is_accepted(verb: str) -> None:
    agent = FullAgent()
    store = agent.full_store
    source = ImageRef(SD, new_id())
    agent.storage.images[source] = b"data"
    request_id, image_id = new_id(), new_id()

    def start() -> Task:
        if verb == "CreateVolume":
            return agent.manager.create_volume(request_id, SD, image_id, 8)
        return agent.manager.copy_image(request_id, SD, source.image_id, SD, image_id)

    store.error = errno.ENOSPC
    with pytest.raises(ResourceExhausted) as refused:
        start()
    assert "no space left in the agent's state directory" in str(refused.value)
    assert verb in str(refused.value) and "nothing was started" in str(refused.value)
    assert agent.manager.all_tasks() == [] and agent.workers.queued == []
    assert store.records == {}
    store.error = None  # space freed: the same request id is a new request, and it runs
    task = agent.finished(start())
    assert task.result is TaskResult.SUCCESS and len(agent.manager.all_tasks()) == 1


def test_another_failure_to_record_a_start_is_not_called_a_full_disk() -> None:
    agent = FullAgent()
    store = agent.full_store
    store.error = errno.EIO
    with pytest.raises(OSError) as raised:
        agent.volume()
    assert not isinstance(raised.value, ResourceExhausted)
    assert agent.manager.all_tasks() == []


def test_a_task_whose_start_cannot_be_recorded_does_not_run_and_fails_saying_why() -> None:
    agent = FullAgent()
    store = agent.full_store
    task = agent.volume()
    store.error = errno.ENOSPC  # full between acceptance and the worker
    ended = agent.finished(task)
    assert (ended.state, ended.result, ended.code) == (
        TaskState.FINISHED,
        TaskResult.FAILURE,
        Code.RESOURCE_EXHAUSTED,
    )
    assert "did not run" in ended.message
    assert agent.storage.images == {} and agent.storage.partials == {}
    # Its record still says init: a restart ends it cleanFailure, having written nothing.
    assert store.saved(task.task_id).state is TaskState.INIT
    store.error = None  # clearing is recorded too: it needs room
    agent.manager.clear(task.task_id)
    assert store.records == {}


def test_a_task_whose_end_cannot_be_recorded_still_ends_and_can_be_cleared() -> None:
    agent = FullAgent()
    store = agent.full_store
    task = agent.volume(size=6)
    agent.storage.during_job = lambda done, total: setattr(store, "error", errno.ENOSPC)
    ended = agent.finished(task)
    assert (ended.state, ended.result) == (TaskState.FINISHED, TaskResult.SUCCESS)
    assert store.saved(task.task_id).state is TaskState.RUNNING  # what a restart would read
    # Clearing is recorded too (a line in the journal): refused while the directory is full,
    # the task kept, and done once there is room.
    with pytest.raises(ResourceExhausted, match=r"no space left .* cleared"):
        agent.manager.clear(task.task_id)
    assert agent.manager.get(task.task_id) == ended and task.task_id in store.records
    store.error = None
    agent.manager.clear(task.task_id)
    assert agent.manager.all_tasks() == [] and store.records == {}


def test_an_agent_starts_on_a_full_state_directory_and_settles_what_it_finds() -> None:
    running = Task(
        new_id(), new_id(), CreateVolumeSpec(ImageRef(SD, new_id()), 8), state=TaskState.RUNNING
    )
    store = FullStore(running)
    store.error = errno.ENOSPC
    storage = FakeStorage()
    storage.partials[(running.spec.target, running.task_id)] = b"half"
    manager = TaskManager(storage, store, executor=ByHand())
    after = manager.get(running.task_id)
    assert (after.state, after.result) == (TaskState.FINISHED, TaskResult.CLEAN_FAILURE)
    assert storage.partials == {}
    assert store.saved(running.task_id).state is TaskState.RUNNING  # settled again next start
