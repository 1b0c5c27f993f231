"""The agent's adapters against real files: the storage root and the task records."""

from __future__ import annotations

import errno
import json
import logging
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from service_common.errors import InvalidArgument, NotFound
from service_common.vdsm_tasks import TaskResult
from vdsm_agent.adapters import storage as storage_module
from vdsm_agent.adapters import task_store as task_store_module
from vdsm_agent.adapters.storage import StorageRoot, VerificationFailed
from vdsm_agent.adapters.task_store import TaskStore
from vdsm_agent.domain.tasks import CopyImageSpec, CreateVolumeSpec, ImageRef, RemoveImageSpec, Task


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def root(tmp_path: Path) -> StorageRoot:
    return StorageRoot(tmp_path / "storage")


def domain(root: StorageRoot) -> str:
    sd = new_id()
    root.create_domain(sd)
    return sd


def no_progress(done: int, total: int) -> None:
    pass


def test_write_volume_repeats_the_pattern_across_chunks(root: StorageRoot) -> None:
    target = ImageRef(domain(root), new_id())
    seen: list[tuple[int, int]] = []
    root.write_volume(
        target, new_id(), 25, b"abc", lambda d, t: seen.append((d, t)), chunk_bytes=10
    )
    assert root.image_path(target).read_bytes() == (b"abc" * 9)[:25]
    assert root.image_size(target) == 25
    assert seen[-1] == (25, 25) and len(seen) == 3
    assert list(root.image_path(target).parent.iterdir()) == [root.image_path(target)]


def test_copy_reads_the_source_as_it_is_while_it_changes(root: StorageRoot) -> None:
    sd = domain(root)
    source, target = ImageRef(sd, new_id()), ImageRef(sd, new_id())
    root.image_path(source).write_bytes(b"A" * 30)

    def a_vm_writes_to_its_disk(done: int, total: int) -> None:
        if done == 10:  # behind and ahead of the copy's read position
            with open(root.image_path(source), "r+b") as disk:
                disk.write(b"B" * 30)

    root.copy_image(source, target, new_id(), a_vm_writes_to_its_disk, chunk_bytes=10)
    assert root.image_path(target).read_bytes() == b"A" * 10 + b"B" * 20


def test_a_copy_that_does_not_verify_is_not_published(root: StorageRoot, monkeypatch) -> None:
    sd = domain(root)
    source, target = ImageRef(sd, new_id()), ImageRef(sd, new_id())
    root.image_path(source).write_bytes(b"data" * 100)
    monkeypatch.setattr(storage_module, "_digest_of", lambda path, chunk: b"corrupted")
    with pytest.raises(VerificationFailed):
        root.copy_image(source, target, new_id(), no_progress)
    assert not root.image_path(target).exists()


def test_publishing_never_replaces_an_image(root: StorageRoot) -> None:
    target = ImageRef(domain(root), new_id())

    def someone_else_publishes(done: int, total: int) -> None:
        root.image_path(target).write_bytes(b"theirs")

    with pytest.raises(FileExistsError):
        root.write_volume(target, new_id(), 10, b"x", someone_else_publishes)
    assert root.image_path(target).read_bytes() == b"theirs"


def test_paths_stay_inside_the_root(root: StorageRoot, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "images").mkdir(parents=True)
    sd = new_id()
    (root.root / sd).symlink_to(outside)
    with pytest.raises(InvalidArgument, match="storage_domain_id"):
        root.require_domain(sd)
    inner = domain(root)
    alias = new_id()
    (root.root / alias).symlink_to(root.root / inner)  # a link that stays inside is harmless
    root.require_domain(alias)
    with pytest.raises(NotFound):
        root.delete_image(ImageRef(inner, new_id()))


def test_task_records_survive_and_torn_writes_do_not_exist(tmp_path: Path) -> None:
    store = TaskStore(tmp_path / "state")
    spec = CopyImageSpec(ImageRef(new_id(), new_id()), ImageRef(new_id(), new_id()))
    first = Task(new_id(), new_id(), spec, accepted_at=1.0)
    second = Task(new_id(), new_id(), CreateVolumeSpec(spec.target, 5), accepted_at=2.0)
    store.save(second)
    store.save(first)
    first.finish(TaskResult.SUCCESS)
    store.save(first)
    (store.dir / f"{new_id()}.json.tmp").write_text('{"half": ')  # a crash before the rename
    again = TaskStore(tmp_path / "state").load_all()
    assert again == [first, second]
    assert not list(store.dir.glob("*.tmp"))
    store.delete(first.task_id)
    store.delete(first.task_id)
    assert [t.task_id for t in TaskStore(tmp_path / "state").load_all()] == [second.task_id]
    assert json.loads((store.dir / f"{second.task_id}.json").read_text())["verb"] == "CreateVolume"


def test_a_record_that_holds_no_task_is_set_aside_and_the_rest_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = TaskStore(tmp_path / "state")
    kept = Task(new_id(), new_id(), CreateVolumeSpec(ImageRef(new_id(), new_id()), 5))
    store.save(kept)
    cut, zeroed, listed = (store._path(new_id()) for _ in range(3))
    cut.write_bytes(json.dumps(kept.to_record()).encode()[:40])  # the storage lost its tail
    zeroed.write_bytes(b"\0" * 4096)
    listed.write_text("[]")  # JSON, but not a record (an older agent crashed on this)
    (store.dir / f"{cut.name}.corrupt").write_text("set aside before")
    with caplog.at_level(logging.WARNING, logger="vdsm_agent.adapters.task_store"):
        assert TaskStore(tmp_path / "state").load_all() == [kept]
    names = sorted(p.name for p in store.dir.iterdir())
    assert names == sorted(
        [
            f"{kept.task_id}.json",
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
    with caplog.at_level(logging.WARNING, logger="vdsm_agent.adapters.task_store"):
        assert TaskStore(tmp_path / "state").load_all() == [kept]  # set aside for good
    assert caplog.records == []


def test_a_record_the_state_directory_has_no_room_for_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TaskStore(tmp_path / "state")
    task = Task(new_id(), new_id(), CreateVolumeSpec(ImageRef(new_id(), new_id()), 5))
    store.save(task)
    before = store._path(task.task_id).read_bytes()

    def fills_up(write: Callable[[memoryview], int | None], data: bytes) -> None:
        write(memoryview(data)[: len(data) // 2])  # what still fitted
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(task_store_module, "write_all", fills_up)
    task.finish(TaskResult.SUCCESS)
    with pytest.raises(OSError) as raised:
        store.save(task)
    assert raised.value.errno == errno.ENOSPC
    assert [p.name for p in store.dir.iterdir()] == [f"{task.task_id}.json"]  # no .tmp
    assert store._path(task.task_id).read_bytes() == before  # the older version stands
    with pytest.raises(OSError):
        store.save(Task(new_id(), new_id(), task.spec))
    assert [p.name for p in store.dir.iterdir()] == [f"{task.task_id}.json"]


def test_remove_image_removes_it_and_its_stray_partials_then_syncs_the_directory(
    root: StorageRoot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sd = domain(root)
    image, other = ImageRef(sd, new_id()), ImageRef(sd, new_id())
    root.image_path(image).write_bytes(b"disk")
    root.image_path(other).write_bytes(b"another disk")
    stray = root.partial_path(image, new_id())
    stray.write_bytes(b"left by a task no longer recorded")
    not_its = root.partial_path(other, new_id())
    not_its.write_bytes(b"another image's")
    synced: list[tuple[Path, bool]] = []
    real_fsync_dir = storage_module.fsync_dir

    def fsync_dir(path: Path) -> None:
        synced.append((path, root.image_path(image).exists() or stray.exists()))
        real_fsync_dir(path)

    monkeypatch.setattr(storage_module, "fsync_dir", fsync_dir)
    assert root.remove_image(image) is True
    assert not root.image_path(image).exists() and not stray.exists()
    assert root.image_path(other).read_bytes() == b"another disk" and not_its.exists()
    assert synced == [(root.images_dir(sd), False)]  # synced after the unlinks
    assert root.remove_image(image) is False  # not there: nothing removed, no error
    with pytest.raises(NotFound, match="storage domain"):
        root.remove_image(ImageRef(new_id(), image.image_id))

    outside = tmp_path / "secret"
    outside.write_bytes(b"not yours")
    evil = ImageRef(sd, new_id())
    root.image_path(evil).symlink_to(outside)
    with pytest.raises(InvalidArgument, match="image_id"):
        root.remove_image(evil)
    assert outside.read_bytes() == b"not yours"


def test_a_removal_task_record_survives_a_restart(tmp_path: Path) -> None:
    store = TaskStore(tmp_path / "state")
    task = Task(new_id(), new_id(), RemoveImageSpec(ImageRef(new_id(), new_id())), accepted_at=1.0)
    store.save(task)
    task.start()
    store.save(task)
    assert TaskStore(tmp_path / "state").load_all() == [task]
    record = json.loads((store.dir / f"{task.task_id}.json").read_text())
    assert (record["verb"], record["state"]) == ("RemoveImage", "running")
    assert record["spec"] == {
        "storage_domain_id": task.spec.target.storage_domain_id,
        "image_id": task.spec.target.image_id,
    }
