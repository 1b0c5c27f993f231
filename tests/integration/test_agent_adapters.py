"""The agent's adapters against real files: the storage root and the task records."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from service_common.errors import InvalidArgument, NotFound
from service_common.vdsm_tasks import TaskResult
from vdsm_agent.adapters import storage as storage_module
from vdsm_agent.adapters.storage import StorageRoot, VerificationFailed
from vdsm_agent.adapters.task_store import TaskStore
from vdsm_agent.domain.tasks import CopyImageSpec, CreateVolumeSpec, ImageRef, Task


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
    (store.dir / f"{new_id()}.json").write_text("not json")  # only by hand
    again = TaskStore(tmp_path / "state").load_all()
    assert again == [first, second]
    assert not list(store.dir.glob("*.tmp"))
    store.delete(first.task_id)
    store.delete(first.task_id)
    assert [t.task_id for t in TaskStore(tmp_path / "state").load_all()] == [second.task_id]
    assert json.loads((store.dir / f"{second.task_id}.json").read_text())["verb"] == "CreateVolume"
