"""The agent's service layer over a real storage root and state directory, in-process."""

from __future__ import annotations

import errno
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service_common.errors import AlreadyExists, FailedPrecondition, Unavailable
from vdsm_agent.adapters import journal as journal_module
from vdsm_agent.adapters.storage import StorageRoot, VerificationFailed
from vdsm_agent.adapters.task_store import TaskStore
from vdsm_agent.domain.tasks import (
    Code,
    CopyImageSpec,
    CreateVolumeSpec,
    ImageRef,
    RemoveImageSpec,
    Task,
    TaskResult,
    TaskState,
)
from vdsm_agent.service_layer.task_manager import TaskManager

MiB = 1 << 20


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def make_manager(tmp_path: Path) -> Iterator[Callable[..., TaskManager]]:
    made: list[TaskManager] = []

    def make(throttle_bytes_per_s: int | None = None, workers: int = 8) -> TaskManager:
        manager = TaskManager(
            StorageRoot(tmp_path / "storage"),
            TaskStore(tmp_path / "state"),
            throttle_bytes_per_s,
            workers,
        )
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.shutdown()


def wait(
    manager: TaskManager,
    task_id: str,
    until: Callable[[Task], bool] = lambda t: t.finished,
    timeout: float = 10,
) -> Task:
    deadline = time.monotonic() + timeout
    while not until(task := manager.get(task_id)):
        assert time.monotonic() < deadline, task
        time.sleep(0.01)
    return task


def volume(manager: TaskManager, sd: str, size: int = 1000) -> str:
    image = new_id()
    task = manager.create_volume(new_id(), sd, image, size)
    assert wait(manager, task.task_id).result is TaskResult.SUCCESS
    return image


def test_restart_settles_every_unfinished_task(make_manager, tmp_path: Path) -> None:
    root = StorageRoot(tmp_path / "storage")
    store = TaskStore(tmp_path / "state")
    sd = new_id()
    root.create_domain(sd)
    queued = Task(new_id(), new_id(), CreateVolumeSpec(ImageRef(sd, new_id()), 10))
    running = Task(
        new_id(), new_id(), CreateVolumeSpec(ImageRef(sd, new_id()), 10), state=TaskState.RUNNING
    )
    published = Task(
        new_id(), new_id(), CreateVolumeSpec(ImageRef(sd, new_id()), 10), state=TaskState.RUNNING
    )
    for task in (queued, running, published):
        store.save(task)
    root.partial_path(running.spec.target, running.task_id).write_bytes(b"half")
    root.image_path(published.spec.target).write_bytes(b"x" * 10)  # died after the link

    manager = make_manager()
    assert manager.get(queued.task_id).result is TaskResult.CLEAN_FAILURE
    after = manager.get(running.task_id)
    assert (after.state, after.result, after.code) == (
        TaskState.FINISHED,
        TaskResult.CLEAN_FAILURE,
        Code.UNAVAILABLE,
    )
    assert not root.partial_path(running.spec.target, running.task_id).exists()
    assert manager.get(published.task_id).result is TaskResult.SUCCESS
    assert {t.task_id: t.result for t in TaskStore(tmp_path / "state").load_all()} == {
        queued.task_id: TaskResult.CLEAN_FAILURE,
        running.task_id: TaskResult.CLEAN_FAILURE,
        published.task_id: TaskResult.SUCCESS,
    }


def test_the_same_request_again_while_its_record_is_on_its_way_gets_the_same_task(
    make_manager, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = make_manager()
    sd, request_id, image_id = new_id(), new_id(), new_id()
    manager.create_storage_domain(sd)
    syncing, disk_may_answer = threading.Event(), threading.Event()
    real_fdatasync = os.fdatasync

    def slow_disk(fd: int) -> None:
        syncing.set()
        assert disk_may_answer.wait(10)
        real_fdatasync(fd)

    monkeypatch.setattr(journal_module.os, "fdatasync", slow_disk)
    answers: list[Task] = []

    def start() -> None:
        answers.append(manager.create_volume(request_id, sd, image_id, 8))

    first, again = threading.Thread(target=start), threading.Thread(target=start)
    first.start()
    assert syncing.wait(10)  # the first call's record is on its way to the disk
    again.start()
    again.join(0.2)
    assert again.is_alive() and answers == []  # the retry waits for that record too
    assert manager.all_tasks() == []  # and nobody sees the task before it is durable
    disk_may_answer.set()
    first.join(10)
    again.join(10)
    assert len(answers) == 2 and answers[0].task_id == answers[1].task_id
    assert [t.task_id for t in manager.all_tasks()] == [answers[0].task_id]


def test_stop_a_task_still_waiting_for_a_worker(make_manager) -> None:
    manager = make_manager(workers=1, throttle_bytes_per_s=MiB)
    sd = new_id()
    manager.create_storage_domain(sd)
    busy = manager.create_volume(new_id(), sd, new_id(), 8 * MiB)
    waiting = manager.create_volume(new_id(), sd, new_id(), 10)
    assert manager.get(waiting.task_id).state is TaskState.INIT
    manager.stop(waiting.task_id)
    stopped = manager.get(waiting.task_id)
    assert (stopped.result, stopped.code) == (TaskResult.CLEAN_SUCCESS, Code.CANCELLED)
    manager.stop(busy.task_id)
    assert wait(manager, busy.task_id).result is TaskResult.CLEAN_SUCCESS
    assert not manager.storage.image_exists(waiting.spec.target)


def test_images_in_use_cannot_be_deleted_or_written_twice(make_manager) -> None:
    manager = make_manager(throttle_bytes_per_s=MiB)
    sd = new_id()
    manager.create_storage_domain(sd)
    writing = manager.create_volume(new_id(), sd, new_id(), 4 * MiB)
    target = writing.spec.target
    with pytest.raises(AlreadyExists, match="being written"):
        manager.create_volume(new_id(), sd, target.image_id, 10)
    manager.stop(writing.task_id)
    wait(manager, writing.task_id)
    fast = make_manager()
    source = volume(fast, sd, 4 * MiB)
    copying = manager.copy_image(new_id(), sd, source, sd, new_id())
    with pytest.raises(FailedPrecondition, match=copying.task_id):
        manager.delete_image(sd, source)
    manager.stop(copying.task_id)
    wait(manager, copying.task_id)
    manager.delete_image(sd, source)


def test_failures_end_the_task_with_a_reason_and_no_partial_file(make_manager, monkeypatch) -> None:
    manager = make_manager()
    sd = new_id()
    manager.create_storage_domain(sd)
    source = volume(manager, sd)

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(manager.storage, "write_volume", disk_full)
    task = wait(manager, manager.create_volume(new_id(), sd, new_id(), 10).task_id)
    assert (task.result, task.code) == (TaskResult.FAILURE, Code.RESOURCE_EXHAUSTED)
    assert "No space left" in task.message

    def does_not_verify(*args: object, **kwargs: object) -> None:
        raise VerificationFailed("copy differs")

    monkeypatch.setattr(manager.storage, "copy_image", does_not_verify)
    task = wait(manager, manager.copy_image(new_id(), sd, source, sd, new_id()).task_id)
    assert (task.result, task.code, task.message) == (
        TaskResult.FAILURE,
        Code.DATA_LOSS,
        "copy differs",
    )
    assert not list(manager.storage.images_dir(sd).glob("*.partial"))


def test_shutdown_interrupts_cleanly_and_refuses_new_work(make_manager) -> None:
    manager = make_manager(workers=1, throttle_bytes_per_s=MiB)
    sd = new_id()
    manager.create_storage_domain(sd)
    running = manager.create_volume(new_id(), sd, new_id(), 8 * MiB)
    queued = manager.create_volume(new_id(), sd, new_id(), 10)
    wait(manager, running.task_id, lambda t: t.progress_percent > 0)
    manager.shutdown()
    for task_id in (running.task_id, queued.task_id):
        task = manager.get(task_id)
        assert (task.result, task.code) == (TaskResult.CLEAN_FAILURE, Code.UNAVAILABLE)
    assert not list(manager.storage.images_dir(sd).iterdir())
    with pytest.raises(Unavailable):
        manager.create_volume(new_id(), sd, new_id(), 10)
    # Idempotent retries are still answered while shutting down.
    assert (
        manager.create_volume(queued.request_id, sd, queued.spec.target.image_id, 10).task_id
        == queued.task_id
    )


def test_the_copy_spec_is_what_identifies_a_request(make_manager) -> None:
    manager = make_manager()
    sd = new_id()
    manager.create_storage_domain(sd)
    source = volume(manager, sd)
    request_id, dst = new_id(), new_id()
    task = manager.copy_image(request_id, sd, source, sd, dst)
    # Upper-case ids are the same ids.
    assert (
        manager.copy_image(request_id.upper(), sd.upper(), source, sd, dst.upper()).task_id
        == task.task_id
    )
    assert task.spec == CopyImageSpec(ImageRef(sd, source), ImageRef(sd, dst))


def test_remove_image_over_real_files_and_a_restart_mid_removal(
    make_manager, tmp_path: Path
) -> None:
    manager = make_manager()
    sd = new_id()
    manager.create_storage_domain(sd)
    image = volume(manager, sd)
    task = wait(manager, manager.remove_image(new_id(), sd, image).task_id)
    assert (task.result, task.spec) == (TaskResult.SUCCESS, RemoveImageSpec(ImageRef(sd, image)))
    assert not manager.storage.image_exists(ImageRef(sd, image))
    missing = wait(manager, manager.remove_image(new_id(), sd, new_id()).task_id)
    assert missing.result is TaskResult.SUCCESS

    # Records of removals the last process left running: one had unlinked its image, one not.
    store = TaskStore(tmp_path / "state")
    gone, kept = ImageRef(sd, new_id()), ImageRef(sd, volume(manager, sd))
    finished = Task(new_id(), new_id(), RemoveImageSpec(gone), state=TaskState.RUNNING)
    untouched = Task(new_id(), new_id(), RemoveImageSpec(kept), state=TaskState.RUNNING)
    for recorded in (finished, untouched):
        store.save(recorded)
    again = make_manager()
    assert again.get(finished.task_id).result is TaskResult.SUCCESS
    assert again.get(untouched.task_id).result is TaskResult.CLEAN_FAILURE
    assert again.storage.image_exists(kept)
    assert {t.task_id: t.result for t in TaskStore(tmp_path / "state").load_all()} == {
        task.task_id: TaskResult.SUCCESS,
        missing.task_id: TaskResult.SUCCESS,
        finished.task_id: TaskResult.SUCCESS,
        untouched.task_id: TaskResult.CLEAN_FAILURE,
    } | {t.task_id: t.result for t in again.all_tasks() if t.verb.value == "CreateVolume"}
