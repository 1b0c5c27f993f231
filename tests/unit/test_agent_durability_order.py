"""The agent's records are waited for without its lock (group commit, docs/design.md §9): what
others may see meanwhile; and how the task journal's lines are read back. In memory: the
TaskManager over fakes whose records become durable only after a hook has run, as if the disk
were slow, and the journal's reading as a pure function."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from service_common.errors import AlreadyExists, FailedPrecondition, NotFound
from service_common.vdsm_tasks import TaskResult, TaskState
from tests.unit.test_agent_task_manager import (
    SD,
    ByHand,
    FakeStorage,
    FakeStore,
    Recorded,
    new_id,
)
from vdsm_agent.domain.records import CorruptRecord, decode_line, encode_line, read_journal
from vdsm_agent.domain.tasks import (
    STOPPED_BEFORE_START,
    CreateVolumeSpec,
    ImageRef,
    Task,
    TaskBook,
)
from vdsm_agent.service_layer.task_manager import TaskManager


class Later:
    """A record that becomes durable once `meanwhile` has run: what other callers do while
    the disk works and the manager's lock is free."""

    def __init__(self, recorded: Recorded, meanwhile: Callable[[], object] | None) -> None:
        self.recorded = recorded
        self.meanwhile = meanwhile

    def wait(self) -> None:
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
        self.recorded.wait()


class SlowStore(FakeStore):
    """A FakeStore whose next submitted record runs `meanwhile` before it is durable."""

    def __init__(self, *tasks: Task) -> None:
        super().__init__(*tasks)
        self.meanwhile: Callable[[], object] | None = None
        self.fail_next: OSError | None = None
        self.submitted: list[Task] = []

    def submit(self, task: Task) -> Later:  # type: ignore[override]
        meanwhile, self.meanwhile = self.meanwhile, None
        failure, self.fail_next = self.fail_next, None
        if failure is not None:
            return Later(Recorded(failure), meanwhile)
        self.submitted.append(Task.from_record(task.to_record()))
        return Later(super().submit(task), meanwhile)


def slow_agent() -> tuple[TaskManager[FakeStorage], SlowStore, ByHand]:
    storage = FakeStorage()
    storage.create_domain(SD)
    store = SlowStore()
    workers = ByHand()
    return TaskManager(storage, store, executor=workers), store, workers


def test_a_start_is_shown_only_once_its_record_is_durable_but_holds_its_image_at_once() -> None:
    manager, store, workers = slow_agent()
    image = new_id()
    seen: list[object] = []

    def meanwhile() -> None:
        seen.append(manager.all_tasks())
        with pytest.raises(AlreadyExists, match="being written"):
            manager.create_volume(new_id(), SD, image, 8)  # its image is held already
        seen.append(workers.queued[:])  # and no worker has it yet

    store.meanwhile = meanwhile
    task = manager.create_volume(new_id(), SD, image, 8)
    assert seen == [[], []]
    assert manager.all_tasks() == [task] and manager.get(task.task_id) == task
    assert len(workers.queued) == 1


def test_a_start_whose_record_fails_is_forgotten_and_its_image_let_go() -> None:
    manager, store, workers = slow_agent()
    image, request_id = new_id(), new_id()
    store.fail_next = OSError(5, "Input/output error")
    with pytest.raises(OSError):
        manager.create_volume(request_id, SD, image, 8)
    assert manager.all_tasks() == [] and workers.queued == []
    again = manager.create_volume(request_id, SD, image, 8)  # the same request id: new
    assert manager.all_tasks() == [again]


def test_an_end_is_seen_only_once_its_record_is_durable() -> None:
    manager, store, workers = slow_agent()
    task = manager.create_volume(new_id(), SD, new_id(), 8)
    seen: list[Task] = []

    def meanwhile() -> None:  # the end decided, its record on its way to the disk
        now = manager.get(task.task_id)
        seen.append(now)
        assert not now.finished and now.state is TaskState.INIT
        manager.stop(task.task_id)  # nothing more to do: it is ending
        with pytest.raises(FailedPrecondition, match="not finished"):
            manager.clear(task.task_id)
        workers.run_all()  # a worker that picks it up does not run it

    store.meanwhile = meanwhile
    manager.stop(task.task_id)
    ended = manager.get(task.task_id)
    assert len(seen) == 1 and (ended.result, ended.code, ended.message) == STOPPED_BEFORE_START
    assert store.submitted[-1] == ended  # recorded once, as it ended
    assert [t.state for t in store.submitted] == [TaskState.INIT, TaskState.FINISHED]
    manager.clear(task.task_id)
    with pytest.raises(NotFound):
        manager.get(task.task_id)


def test_a_job_starts_only_once_its_move_to_running_is_durable() -> None:
    manager, store, workers = slow_agent()
    task = manager.create_volume(new_id(), SD, new_id(), 8)
    progress: list[int] = []
    manager.storage.during_job = lambda done, total: progress.append(done)

    def meanwhile() -> None:
        assert manager.get(task.task_id).state is TaskState.RUNNING
        assert progress == []  # not a byte written before the record says it started

    store.meanwhile = meanwhile
    workers.run_all()
    assert progress and manager.get(task.task_id).result is TaskResult.SUCCESS


# -- the book's index by image -------------------------------------------------------------------


def test_the_book_finds_the_holders_of_an_image_and_forgets_finished_ones() -> None:
    book = TaskBook()
    image = ImageRef(SD, new_id())
    done, busy = (Task(new_id(), new_id(), CreateVolumeSpec(image, 1)) for _ in range(2))
    book.add(done)
    done.finish(TaskResult.SUCCESS)
    book.check_not_in_use(image)  # a finished task holds nothing, and is dropped from the index
    book.add(busy, pending=True)
    with pytest.raises(FailedPrecondition, match=busy.task_id):
        book.check_not_in_use(image)  # a pending task holds its image...
    assert list(book) == [done] and len(book) == 1  # ...but is not shown
    with pytest.raises(NotFound):
        book.known(busy.task_id)
    book.confirm(busy)
    assert list(book) == [done, busy] and book.known(busy.task_id) is busy
    book.remove(busy)
    book.remove(busy)  # twice: nothing happens
    book.check_not_in_use(image)


# -- reading the journal back --------------------------------------------------------------------


def a_task(state: TaskState = TaskState.INIT) -> Task:
    return Task(new_id(), new_id(), CreateVolumeSpec(ImageRef(SD, new_id()), 1), state=state)


def test_a_journal_line_holds_a_record_or_a_clearing_and_its_checksum() -> None:
    task = a_task()
    line = encode_line(task.task_id, task.to_record())
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_line(line[:-1]) == (task.task_id, task)
    assert decode_line(encode_line(task.task_id, None)[:-1]) == (task.task_id, None)
    flipped = line[:-3] + bytes([line[-3] ^ 1]) + line[-2:-1]
    with pytest.raises(CorruptRecord, match="checksum"):
        decode_line(flipped)
    for damaged in (b"", b"\0" * 40, line[:30], b"not a line at all"):
        with pytest.raises(CorruptRecord):
            decode_line(damaged)


def test_the_newest_sound_line_of_a_task_is_its_record() -> None:
    kept, cleared = a_task(), a_task()
    running = Task.from_record(kept.to_record())
    running.start()
    data = b"".join(
        [
            encode_line(kept.task_id, kept.to_record()),
            encode_line(cleared.task_id, cleared.to_record()),
            encode_line(kept.task_id, running.to_record()),
            encode_line(cleared.task_id, None),
            b"\n",  # what an append that could not be cut back leaves before the next
            encode_line(new_id(), a_task().to_record())[:25],  # unfinished: dropped
        ]
    )
    journal = read_journal(data)
    assert journal.tasks == {
        kept.task_id: (running, encode_line(kept.task_id, running.to_record()))
    }
    assert journal.seen == {kept.task_id, cleared.task_id}
    assert journal.damage == [] and not journal.compact
    assert journal.complete_bytes == len(data) - 25


def test_a_damaged_line_loses_the_tasks_whose_newest_line_it_may_be() -> None:
    superseded, only, swallowed, sound = (a_task() for _ in range(4))
    newer = Task.from_record(superseded.to_record())
    newer.start()
    lines = [
        encode_line(superseded.task_id, superseded.to_record())[:50] + b"\n",  # cut short
        encode_line(swallowed.task_id, swallowed.to_record()),
        encode_line(only.task_id, only.to_record()).replace(b'"state"', b'"State"'),  # edited
        b"\0" * 46 + encode_line(swallowed.task_id, swallowed.to_record())[46:],  # zeroed head
        encode_line(superseded.task_id, newer.to_record()),
        encode_line(sound.task_id, sound.to_record()),
    ]
    journal = read_journal(b"".join(lines))
    assert set(journal.tasks) == {superseded.task_id, sound.task_id}
    assert journal.tasks[superseded.task_id][0] == newer
    assert [d.lost for d in journal.damage] == [[], [only.task_id], [swallowed.task_id]]
    assert [d.offset for d in journal.damage] == [
        0,
        len(lines[0]) + len(lines[1]),
        sum(map(len, lines[:3])),
    ]
    assert "checksum" in journal.damage[1].reason
