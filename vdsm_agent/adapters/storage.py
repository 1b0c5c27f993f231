"""The storage root on disk: domains are directories, images are files.

Layout (docs/design.md §9): STORAGE_ROOT/<storage_domain_id>/images/<image_id>. Work in progress
is written beside the image as `<image_id>.<task_id>.partial` and published by a hard link, which
never replaces an existing image, so any other file under the root is debris.

Paths are built only from validated UUIDs, and every path is resolved and checked to lie inside
the root, so a symbolic link in the root is never followed out of it.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from service_common.errors import InvalidArgument, NotFound
from vdsm_agent.domain.tasks import ImageRef

CHUNK_BYTES = 1 << 20

# Called after each chunk with (bytes written so far, bytes to write); it throttles, reports
# progress and raises to abort. The storage code knows nothing of tasks.
Advance = Callable[[int, int], None]


# Errors that say the filesystem is full: no space left, or the owner's quota used up.
OUT_OF_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


class VerificationFailed(Exception):
    """The bytes read back from a copy differ from the bytes read from its source."""


def write_all(write: Callable[[memoryview], int | None], data: bytes | memoryview) -> None:
    """Write all of `data` with a raw `write` (os.write, FileIO.write) that may write only part
    of it: a filesystem that fills up writes what still fits and raises ENOSPC only on the next
    call. Ignoring the count would leave a file short of bytes in the middle."""
    view = memoryview(data)
    while view:
        written = write(view)
        if not written:
            raise OSError(errno.EIO, "a write made no progress")
        view = view[written:]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StorageRoot:
    """The storage root directory: its domains, their images, and the jobs that write them."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()

    # -- paths -----------------------------------------------------------------------------

    def _inside(self, path: Path, field: str) -> Path:
        real = Path(os.path.realpath(path))
        if real != self.root and not real.is_relative_to(self.root):
            raise InvalidArgument(field, "resolves outside the storage root (a symbolic link?)")
        return real

    def domain_dir(self, storage_domain_id: str, field: str = "storage_domain_id") -> Path:
        return self._inside(self.root / storage_domain_id, field)

    def images_dir(self, storage_domain_id: str, field: str = "storage_domain_id") -> Path:
        self.domain_dir(storage_domain_id, field)
        return self._inside(self.root / storage_domain_id / "images", field)

    def image_path(self, ref: ImageRef, field: str = "image_id") -> Path:
        images = self.images_dir(ref.storage_domain_id)
        return self._inside(images / ref.image_id, field)

    def partial_path(self, ref: ImageRef, task_id: str) -> Path:
        images = self.images_dir(ref.storage_domain_id)
        return self._inside(images / f"{ref.image_id}.{task_id}.partial", "task_id")

    # -- domains and images ---------------------------------------------------------------

    def create_domain(self, storage_domain_id: str) -> None:
        images = self.images_dir(storage_domain_id)
        if images.is_dir():
            return
        images.mkdir(parents=True, exist_ok=True)
        fsync_dir(images.parent)
        fsync_dir(self.root)

    def require_domain(self, storage_domain_id: str, field: str = "storage_domain_id") -> None:
        if not self.images_dir(storage_domain_id, field).is_dir():
            raise NotFound(f"storage domain {storage_domain_id} does not exist on this host")

    def image_exists(self, ref: ImageRef, field: str = "image_id") -> bool:
        return self.image_path(ref, field).exists()

    def image_size(self, ref: ImageRef, field: str = "image_id") -> int:
        return self.image_path(ref, field).stat().st_size

    def delete_image(self, ref: ImageRef) -> None:
        """Delete the image and any work in progress of it left by tasks no longer recorded
        (the caller makes sure no unfinished task writes it)."""
        self.require_domain(ref.storage_domain_id)
        path = self.image_path(ref)
        debris = list(path.parent.glob(f"{ref.image_id}.*.partial"))
        if not path.exists() and not debris:
            raise NotFound(
                f"image {ref.image_id} does not exist in storage domain {ref.storage_domain_id}"
            )
        for stale in [path, *debris]:
            stale.unlink(missing_ok=True)
        fsync_dir(path.parent)

    def remove_image(self, ref: ImageRef) -> bool:
        """RemoveImage's job: remove the image, then any work in progress of it left by tasks no
        longer recorded (the caller makes sure no unfinished task reads or writes it), then sync
        the directory, so that the removal survives a power cut. True if the image was there; an
        image that is not there is no error (NotFound only for a missing domain)."""
        self.require_domain(ref.storage_domain_id)
        path = self.image_path(ref)
        try:
            path.unlink()
            existed = True
        except FileNotFoundError:
            existed = False
        for stale in path.parent.glob(f"{ref.image_id}.*.partial"):
            stale.unlink(missing_ok=True)
        fsync_dir(path.parent)
        return existed

    def remove_partial(self, ref: ImageRef, task_id: str) -> bool:
        """Remove a task's work in progress; True if there was any."""
        path = self.partial_path(ref, task_id)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        fsync_dir(path.parent)
        return True

    def free_bytes(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    # -- the two jobs ----------------------------------------------------------------------

    def write_volume(
        self,
        target: ImageRef,
        task_id: str,
        size_bytes: int,
        fill_pattern: bytes,
        advance: Advance,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        pattern = fill_pattern or b"\0"
        # A chunk that is a whole number of patterns keeps the pattern aligned across chunks.
        block = pattern * max(1, chunk_bytes // len(pattern))
        partial = self.partial_path(target, task_id)
        with _create_exclusive(partial) as out:
            done = 0
            while done < size_bytes:
                n = min(len(block), size_bytes - done)
                write_all(out.write, block[:n])
                done += n
                advance(done, size_bytes)
            out.flush()
            os.fsync(out.fileno())
        self._publish(partial, target)

    def copy_image(
        self,
        source: ImageRef,
        target: ImageRef,
        task_id: str,
        advance: Advance,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        """Copy `source` to `target`, then verify the copy against the bytes read.

        The source may change while it is read (a VM writes to its disk): the copy is checked
        against what was read, never against an earlier checksum.
        """
        src_path = self.image_path(source, "src_image_id")
        partial = self.partial_path(target, task_id)
        try:
            src = open(src_path, "rb", buffering=0)  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise NotFound(f"source image {source.image_id} vanished before the copy") from None
        with src, _create_exclusive(partial) as out:
            total = os.fstat(src.fileno()).st_size
            read_digest = hashlib.sha256()
            buf = bytearray(chunk_bytes)
            view = memoryview(buf)
            done = 0
            while True:
                n = src.readinto(buf)
                if not n:
                    break
                read_digest.update(view[:n])
                write_all(out.write, view[:n])
                done += n
                advance(done, max(total, done))
            out.flush()
            # The copy is read back (verified) while fsync waits for the disk: the check reads
            # the file's bytes either way, and the disk, not the CPU, is the slower of the two.
            with ThreadPoolExecutor(1, thread_name_prefix="verify") as verifier:
                copied = verifier.submit(_digest_of, partial, chunk_bytes)
                os.fsync(out.fileno())
                matches = copied.result() == read_digest.digest()
        if not matches:
            raise VerificationFailed(
                f"copy of image {source.image_id} does not match the bytes read from it"
            )
        self._publish(partial, target)

    def _publish(self, partial: Path, target: ImageRef) -> None:
        final = self.image_path(target)
        try:
            os.link(partial, final)  # never replaces an image, unlike rename
        except FileExistsError:
            raise FileExistsError(
                errno.EEXIST, f"image {target.image_id} appeared while it was being written"
            ) from None
        partial.unlink()
        fsync_dir(final.parent)


def _create_exclusive(path: Path) -> io.FileIO:
    """Open a new file for writing; fails if anything, a link included, is already there."""
    return open(
        path, "xb", buffering=0, opener=lambda p, flags: os.open(p, flags | os.O_NOFOLLOW, 0o644)
    )


def _digest_of(path: Path, chunk_bytes: int) -> bytes:
    digest = hashlib.sha256()
    buf = bytearray(chunk_bytes)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            digest.update(view[:n])
    return digest.digest()
