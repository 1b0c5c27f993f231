"""Size-limited tmpfs mounts for storage-fault tests: a storage root or a state directory that
really fills up, so a process gets ENOSPC from the kernel and not from a fake.

    mount(tmp_path / "storage", 16 << 20)  # TmpfsUnavailable(why) where it is not permitted
    filler = fill(tmp_path / "storage")     # a file that takes every byte left
    ...
    filler.unlink()                         # the space is free again
    unmount(tmp_path / "storage")           # in the test's cleanup, after its processes

Mounting needs root (or CAP_SYS_ADMIN) and the `mount` program; a test skips with the reason
TmpfsUnavailable gives when they are missing. A tmpfs lives in memory: keep them small.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

FILL_CHUNK = 1 << 20


class TmpfsUnavailable(RuntimeError):
    """A tmpfs could not be mounted here; the message says why (for a skip)."""


def mount(path: Path, size_bytes: int) -> None:
    """Mount a tmpfs of `size_bytes` (rounded up to whole pages) on the directory `path`,
    creating it; TmpfsUnavailable with the reason when that is not permitted."""
    if shutil.which("mount") is None:
        raise TmpfsUnavailable("no mount program to mount a tmpfs with")
    path.mkdir(parents=True, exist_ok=True)
    argv = ["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0755", "tmpfs", str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        problem = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}, not root"
        raise TmpfsUnavailable(f"cannot mount a tmpfs ({who}): {' '.join(argv)}: {problem}")


def unmount(path: Path) -> None:
    """Unmount the tmpfs on `path`; lazily (detached now, freed once unused) if something still
    holds it open, so a test's cleanup never fails on a process it did not stop in time."""
    done = subprocess.run(["umount", str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, text=True, check=True)


def fill(directory: Path, name: str = ".filler") -> Path:
    """Write `directory/name` until its filesystem has no byte left (ENOSPC); returns the file,
    whose removal frees the space again. What was written before ENOSPC stays (a raw write
    that does not fit writes what does)."""
    path = directory / name
    chunk = b"\0" * FILL_CHUNK
    with open(path, "ab", buffering=0) as out:
        size = FILL_CHUNK
        while size:
            try:
                out.write(chunk[:size])
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                size //= 2  # page by page at the end; a 1-byte write that fails means full
        out.flush()
    return path


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still write on the filesystem of `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
