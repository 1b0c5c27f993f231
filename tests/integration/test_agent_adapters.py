"""The agent's storage root against real files (the task records: test_agent_task_journal.py)."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from service_common.errors import InvalidArgument, NotFound
from vdsm_agent.adapters import storage as storage_module
from vdsm_agent.adapters.storage import StorageRoot, VerificationFailed
from vdsm_agent.domain.tasks import ImageRef


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


def progress(into: list[tuple[int, int]], done: int, total: int) -> None:
    into.append((done, total))


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


@pytest.mark.parametrize("bad_chunk", [1, 4])  # a whole chunk, and the short last one
def test_a_copy_that_does_not_verify_is_not_published(
    root: StorageRoot, monkeypatch: pytest.MonkeyPatch, bad_chunk: int
) -> None:
    sd = domain(root)
    source, target = ImageRef(sd, new_id()), ImageRef(sd, new_id())
    root.image_path(source).write_bytes(bytes(range(256)) * 2)  # 512 bytes: chunks of 100
    real_write_all = storage_module.write_all
    writes = []

    def a_disk_that_stores_other_bytes(write: Callable[[memoryview], int | None], data) -> None:
        writes.append(len(data))
        if len(writes) == bad_chunk + 1:
            data = bytes(data[:-1]) + bytes([data[-1] ^ 1])  # one bit off in the chunk's end
        real_write_all(write, data)

    monkeypatch.setattr(storage_module, "write_all", a_disk_that_stores_other_bytes)
    task_id = new_id()
    with pytest.raises(VerificationFailed, match=f"bytes {bad_chunk * 100} to "):
        root.copy_image(source, target, task_id, no_progress, chunk_bytes=100)
    assert writes == [100] * (bad_chunk + 1)  # it stopped at the chunk that did not verify
    assert not root.image_path(target).exists()
    root.remove_partial(target, task_id)  # what the task runner does next


def test_a_copy_is_verified_fsynced_and_published_whatever_its_chunks(
    root: StorageRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    sd = domain(root)
    source = ImageRef(sd, new_id())
    data = os.urandom(3 * storage_module.WRITEBACK_BYTES + 12345)  # writeback asked 3 times
    root.image_path(source).write_bytes(data)
    synced: list[int] = []
    real_fsync = os.fsync

    def counted_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(storage_module.os, "fsync", counted_fsync)
    for chunk in (storage_module.CHUNK_BYTES, 4096, 1000):
        target = ImageRef(sd, new_id())
        seen: list[tuple[int, int]] = []
        root.copy_image(source, target, new_id(), functools.partial(progress, seen), chunk)
        assert root.image_path(target).read_bytes() == data
        assert seen[-1] == (len(data), len(data)) and len(seen) == -(-len(data) // chunk)
        assert [p.name for p in root.images_dir(sd).iterdir() if p.suffix == ".partial"] == []
    assert len(synced) == 3 * 2  # the copy, and the directory after the link


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


def test_the_partial_files_of_an_image_are_the_ones_its_glob_names(root: StorageRoot) -> None:
    """`partial_files` (removals look for stray work in progress with it) finds exactly what
    `<image_id>.*.partial` globs, among images, other images' partials and near misses."""
    sd = domain(root)
    image, other = ImageRef(sd, new_id()), ImageRef(sd, new_id())
    directory = root.images_dir(sd)
    names = [
        image.image_id,
        f"{image.image_id}.{new_id()}.partial",
        f"{image.image_id}.{new_id()}.partial",
        f"{image.image_id}.partial",
        f"{image.image_id}.x.partial.tmp",
        f"{other.image_id}.{new_id()}.partial",
        f"x{image.image_id}.{new_id()}.partial",
        other.image_id,
    ]
    for name in names:
        (directory / name).write_bytes(b"")
    found = storage_module.partial_files(directory, image.image_id)
    assert sorted(found) == sorted(directory.glob(f"{image.image_id}.*.partial"))
    assert len(found) == 2
