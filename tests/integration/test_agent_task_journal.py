"""The agent's task records on real files: the journal, its group commit, its damage rules, and
the one-file-per-task layout of older agents moved into it."""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from service_common.vdsm_tasks import TaskResult
from vdsm_agent.adapters import journal as journal_module
from vdsm_agent.adapters.task_store import TaskStore
from vdsm_agent.domain.records import decode_line
from vdsm_agent.domain.tasks import CopyImageSpec, CreateVolumeSpec, ImageRef, RemoveImageSpec, Task

LOGGER = "vdsm_agent.adapters.task_store"


def new_id() -> str:
    return str(uuid.uuid4())


def a_task(accepted_at: float = 1.0) -> Task:
    return Task(
        new_id(),
        new_id(),
        CreateVolumeSpec(ImageRef(new_id(), new_id()), 5),
        accepted_at=accepted_at,
    )


def lines(store: TaskStore) -> list[bytes]:
    return store.path.read_bytes().splitlines(keepends=True)


def reopened(store: TaskStore) -> list[Task]:
    return TaskStore(store.dir.parent).load_all()


def test_records_survive_a_restart_and_an_unfinished_append_is_dropped(tmp_path: Path) -> None:
    store = TaskStore(tmp_path / "state")
    spec = CopyImageSpec(ImageRef(new_id(), new_id()), ImageRef(new_id(), new_id()))
    first = Task(new_id(), new_id(), spec, accepted_at=1.0)
    second = Task(new_id(), new_id(), CreateVolumeSpec(spec.target, 5), accepted_at=2.0)
    store.save(second)
    store.save(first)
    first.finish(TaskResult.SUCCESS)
    store.save(first)
    with open(store.path, "ab") as journal:  # an append the process died in, never fsynced
        journal.write(b'%s 1234abcd {"half": ' % new_id().encode())
    (store.dir / "journal.tmp").write_bytes(b"a compaction cut short")
    (store.dir / f"{new_id()}.json.tmp").write_text('{"half": ')  # an older agent's, likewise
    again = TaskStore(tmp_path / "state").load_all()
    assert again == [first, second]
    assert sorted(p.name for p in store.dir.iterdir()) == ["journal"]
    assert len(lines(store)) == 2  # rewritten: the newest line of each task, nothing else
    later = TaskStore(tmp_path / "state")
    later.load_all()
    later.delete(first.task_id)
    later.delete(first.task_id)
    assert [t.task_id for t in reopened(store)] == [second.task_id]
    task_id, record = decode_line(lines(store)[0].rstrip(b"\n"))
    assert task_id == second.task_id and record == second


def test_a_removal_task_record_survives_a_restart(tmp_path: Path) -> None:
    store = TaskStore(tmp_path / "state")
    task = Task(new_id(), new_id(), RemoveImageSpec(ImageRef(new_id(), new_id())), accepted_at=1.0)
    store.save(task)
    task.start()
    store.save(task)
    assert reopened(store) == [task]
    (line,) = lines(store)
    record = json.loads(line.split(b" ", 2)[2])
    assert (record["verb"], record["state"]) == ("RemoveImage", "running")
    assert record["spec"] == {
        "storage_domain_id": task.spec.target.storage_domain_id,
        "image_id": task.spec.target.image_id,
    }


# -- group commit --------------------------------------------------------------------------------


def test_records_submitted_together_share_one_fdatasync_and_each_waits_for_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TaskStore(tmp_path / "state")
    store.load_all()
    synced: list[int] = []  # the journal's size at each fdatasync
    first_sync_may_end = threading.Event()
    real_fdatasync = os.fdatasync

    def slow_disk(fd: int) -> None:
        synced.append(os.fstat(fd).st_size)
        if len(synced) == 1:
            assert first_sync_may_end.wait(10)
        real_fdatasync(fd)

    monkeypatch.setattr(journal_module.os, "fdatasync", slow_disk)
    tasks = [a_task(float(i)) for i in range(16)]
    returned: dict[str, int] = {}  # how many fdatasyncs had begun when each save returned

    def save(task: Task) -> None:
        store.save(task)
        returned[task.task_id] = len(synced)

    threads = [threading.Thread(target=save, args=(t,)) for t in tasks]
    threads[0].start()
    wait_until(lambda: len(synced) == 1)  # the first writer is in its fdatasync...
    for thread in threads[1:]:
        thread.start()
    # ...and the others queue their records meanwhile: no lock is held across the I/O.
    wait_until(lambda: len(store.journal._group.entries) == 15)
    assert returned == {}  # nobody answered before the fdatasync that covers its record
    first_sync_may_end.set()
    for thread in threads:
        thread.join(10)
    assert len(synced) == 2  # 16 records, 2 fdatasyncs
    assert synced[1] == store.path.stat().st_size  # the second covered all 15 others
    assert returned[tasks[0].task_id] >= 1
    assert all(returned[t.task_id] == 2 for t in tasks[1:])
    assert sorted(reopened(store), key=lambda t: t.accepted_at) == tasks


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_the_journal_is_compacted_as_it_grows(tmp_path: Path) -> None:
    store = TaskStore(tmp_path / "state")
    store.load_all()
    store.journal.compact_slack = 0
    kept, cleared = a_task(1.0), a_task(2.0)
    for n in range(50):
        kept.progress_percent = cleared.progress_percent = n
        store.save(kept)
        store.save(cleared)
    store.delete(cleared.task_id)
    assert store.path.stat().st_size <= 3 * len(lines(store)[0]) * 2
    assert reopened(store) == [kept]


# -- a full state directory ----------------------------------------------------------------------


def test_a_record_the_state_directory_has_no_room_for_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TaskStore(tmp_path / "state")
    store.load_all()
    task = a_task(1.0)
    store.save(task)
    as_saved = dataclasses.replace(task)
    before = store.path.read_bytes()

    def fills_up(write: Callable[[memoryview], int | None], data: bytes) -> None:
        write(memoryview(data)[: len(data) // 2])  # what still fitted
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal_module, "write_all", fills_up)
    task.finish(TaskResult.SUCCESS)
    other = a_task(2.0)
    together = [store.submit(task), store.submit(other)]  # one group: both fail
    for pending in together:
        with pytest.raises(OSError) as raised:
            pending.wait()
        assert raised.value.errno == errno.ENOSPC
    assert store.path.read_bytes() == before  # cut back: the older version stands
    assert sorted(p.name for p in store.dir.iterdir()) == ["journal"]
    monkeypatch.undo()  # space freed
    store.save(other)
    assert reopened(store) == [as_saved, other]


def test_an_append_that_cannot_be_cut_back_does_not_spoil_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TaskStore(tmp_path / "state")
    store.load_all()
    kept, failed, later = a_task(1.0), a_task(2.0), a_task(3.0)
    store.save(kept)
    real_write_all = journal_module.write_all

    def fills_up(write: Callable[[memoryview], int | None], data: bytes) -> None:
        write(memoryview(data)[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    def cannot_cut(fd: int, size: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(journal_module, "write_all", fills_up)
    monkeypatch.setattr(journal_module.os, "ftruncate", cannot_cut)
    with pytest.raises(OSError):
        store.save(failed)
    monkeypatch.setattr(journal_module, "write_all", real_write_all)
    store.save(later)  # starts on a line of its own
    monkeypatch.undo()
    assert reopened(store) == [kept, later]


# -- damaged lines -------------------------------------------------------------------------------


def test_damaged_lines_lose_the_tasks_whose_newest_record_they_may_be(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = TaskStore(tmp_path / "state")
    store.load_all()
    moved_on, zeroed, edited, sound = (a_task(float(i)) for i in range(4))
    for task in (moved_on, zeroed, edited, sound):
        store.save(task)
    moved_on.start()
    store.save(moved_on)
    old = lines(store)
    damaged = [
        old[0][:40] + b"\n",  # moved_on's first record, cut short: a newer one follows
        b"\0" * (len(old[1]) - 1) + b"\n",  # zeroed's only record, zeroed: no id left in it
        old[2].replace(b'"progress_percent":0', b'"progress_percent":7'),  # edited by hand
        old[3],
        old[4],
    ]
    store.path.write_bytes(b"".join(damaged))
    (store.dir / "journal.corrupt").write_text("set aside before")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert reopened(store) == [moved_on, sound]
    assert sorted(p.name for p in store.dir.iterdir()) == [
        "journal",
        "journal.2.corrupt",  # the earlier one is not overwritten
        "journal.corrupt",
    ]
    assert (store.dir / "journal.2.corrupt").read_bytes() == b"".join(damaged)  # as it was
    assert len(lines(store)) == 2
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 3 and all(
        "journal.2.corrupt" in w and "corrupt at byte" in w for w in warned
    )
    assert f"no longer knows task(s) {edited.task_id}" in warned[2]
    assert "checksum does not match" in warned[2]
    assert all("no longer knows" not in w for w in warned[:2])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert reopened(store) == [moved_on, sound]  # set aside for good
    assert caplog.records == []


def test_a_zeroed_stretch_loses_the_known_task_whose_line_it_swallowed(tmp_path: Path) -> None:
    store = TaskStore(tmp_path / "state")
    store.load_all()
    first, second = a_task(1.0), a_task(2.0)
    store.save(first)
    store.save(second)
    second.start()
    store.save(second)
    old = lines(store)
    # Zeros over the end of `first`'s line and its newline: it and `second`'s last record merge.
    store.path.write_bytes(old[0] + old[1] + old[2][:20] + b"\0" * 30 + old[2][50:])
    assert reopened(store) == [first]  # second's newest record may be gone: not believed


# -- the layout of older agents ------------------------------------------------------------------


def test_records_of_an_older_agent_move_into_the_journal_and_corrupt_ones_are_set_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tasks_dir = tmp_path / "state" / "tasks"
    tasks_dir.mkdir(parents=True)
    kept, running = a_task(1.0), a_task(2.0)
    running.start()
    for task in (kept, running):
        (tasks_dir / f"{task.task_id}.json").write_text(json.dumps(task.to_record()))
    cut, zeroed, listed = (tasks_dir / f"{new_id()}.json" for _ in range(3))
    cut.write_bytes(json.dumps(kept.to_record()).encode()[:40])  # the storage lost its tail
    zeroed.write_bytes(b"\0" * 4096)
    listed.write_text("[]")  # JSON, but not a record (an older agent crashed on this)
    (tasks_dir / f"{cut.name}.corrupt").write_text("set aside before")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert TaskStore(tmp_path / "state").load_all() == [kept, running]
    assert sorted(p.name for p in tasks_dir.iterdir()) == sorted(
        [
            "journal",
            f"{cut.name}.corrupt",
            f"{cut.name}.2.corrupt",  # the earlier one is not overwritten
            f"{zeroed.name}.corrupt",
            f"{listed.name}.corrupt",
        ]
    )
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for path in (cut, zeroed, listed):
        assert sum(str(path) in line and "corrupt" in line for line in warned) == 1, warned
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert TaskStore(tmp_path / "state").load_all() == [kept, running]  # in the journal now
    assert caplog.records == []
