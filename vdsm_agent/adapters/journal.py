"""An append-only journal file with group commit: the durable half of the task records.

Callers `append` a line for a key (a task id) and get a `Pending`; `Pending.wait` returns once
the line is on disk, or raises the OSError that kept it off. Appending is cheap and does no I/O,
so a caller may append under its own lock (the order of its appends is then the order of the
lines) and wait without it. The first caller to wait becomes the writer: it takes every line
appended so far, writes them with one `write` and makes them durable with one `fdatasync`, while
the lines appended meanwhile gather for the next writer; the others wait for it. No lock is held
across the I/O, and each caller goes on only after the fdatasync that covered its own line
(docs/design.md §9, task records).

A write or fdatasync that fails fails every line of its group, and the journal is cut back to
where it was, so a line that failed is not read back after a restart. When the file has grown
past twice what its newest lines hold (plus `compact_slack`), a writer writes only the newest
line of each key to a new file instead, fsyncs it, renames it over the journal and fsyncs the
directory: the journal stays proportional to the tasks it holds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from vdsm_agent.adapters.storage import fsync_dir, write_all

log = logging.getLogger(__name__)

COMPACT_SLACK = 4 << 20
# The log line of a compaction (bench/load.py reads it back): path, bytes before and after,
# tasks kept, milliseconds.
COMPACTED_MESSAGE = "compacted the task journal %s: %d -> %d bytes, %d task(s), in %.0f ms"


@dataclass
class _Group:
    """Lines appended since the last writer took them: (key, line, whether the key lives on)."""

    entries: list[tuple[str, bytes, bool]] = field(default_factory=list)
    done: bool = False
    error: BaseException | None = None


class Pending:
    """A line appended to the journal, not yet known to be durable."""

    def __init__(self, journal: Journal, group: _Group) -> None:
        self._journal = journal
        self._group = group

    def wait(self) -> None:
        """Return once the line is durable; raise OSError if it could not be made so."""
        self._journal.wait_for(self._group)


class Journal:
    """One append-only file of lines, each the newest line of a key until a later one replaces
    it; written in groups, one fdatasync per group."""

    def __init__(self, path: Path, compact_slack: int = COMPACT_SLACK) -> None:
        self.path = path
        self.compact_slack = compact_slack
        self._cond = threading.Condition(threading.Lock())
        self._group = _Group()
        self._writing = False
        # Only the writer of the moment reads or changes what follows.
        self._fd = _open_journal(path)
        self._size = os.fstat(self._fd).st_size  # bytes that are lines, durable or acknowledged
        self._torn = False  # a failed append may have left part of a line after them
        self._live: dict[str, bytes] = {}  # each key's newest durable line
        self._live_bytes = 0
        self._compactable = False  # set by `restart`: until then `_live` is not the whole file

    # -- appending ---------------------------------------------------------------------------

    def append(self, key: str, line: bytes, live: bool = True) -> Pending:
        """Queue `line` (ending in a newline) as the newest line of `key`; `live` False says the
        key is gone (the line records its removal). No I/O."""
        with self._cond:
            self._group.entries.append((key, line, live))
            return Pending(self, self._group)

    def wait_for(self, group: _Group) -> None:
        with self._cond:
            while not group.done and self._writing:
                self._cond.wait()
            lead = not group.done
            if lead:  # nobody is writing, so `group` is the one gathering lines: take it
                self._writing = True
                self._group = _Group()
        if lead:
            try:
                self._write(group)
            except BaseException as exc:
                group.error = exc
                raise
            finally:
                with self._cond:
                    group.done = True
                    self._writing = False
                    self._cond.notify_all()
        if group.error is not None:
            error = group.error
            if isinstance(error, OSError):
                raise OSError(error.errno, error.strerror, str(self.path)) from error
            raise OSError(f"writing the journal {self.path} failed: {error!r}") from error

    def _write(self, group: _Group) -> None:
        """The writer's I/O, without the lock: the group's lines, or the whole journal anew."""
        if self._compactable and self._size > 2 * self._live_bytes + self.compact_slack:
            live = dict(self._live)
            _apply(live, group.entries)
            began, before = time.monotonic(), self._size
            try:
                self._replace(live)
            except OSError as exc:
                log.warning("could not compact the task journal %s: %s", self.path, exc)
            else:
                log.info(
                    COMPACTED_MESSAGE,
                    self.path,
                    before,
                    self._size,
                    len(live),
                    (time.monotonic() - began) * 1e3,
                )
                return
        data = b"".join(line for _, line, _ in group.entries)
        if self._torn:
            data = b"\n" + data  # what a failed append left becomes a line of its own
        try:
            write_all(lambda chunk: os.write(self._fd, chunk), data)
            os.fdatasync(self._fd)
        except OSError as exc:
            group.error = exc
            self._cut_back()
            return
        self._size += len(data)
        self._torn = False
        self._live_bytes += _apply(self._live, group.entries)

    def _cut_back(self) -> None:
        """Remove what a failed append wrote; failing that, make sure the next append starts on
        a line of its own."""
        try:
            os.ftruncate(self._fd, self._size)
        except OSError as exc:
            log.error("could not cut a failed append off the task journal: %s", exc)
            self._torn = True
            with contextlib.suppress(OSError):
                self._size = os.fstat(self._fd).st_size

    def _set_live(self, live: dict[str, bytes]) -> None:
        self._live = live
        self._live_bytes = sum(len(line) for line in live.values())

    def _replace(self, live: dict[str, bytes]) -> None:
        """Write `live`'s lines to a new file and rename it over the journal, durably."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = b"".join(live.values())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        try:
            write_all(lambda chunk: os.write(fd, chunk), data)
            os.fsync(fd)
            os.replace(tmp, self.path)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        old, self._fd = self._fd, fd
        os.close(old)
        self._size, self._torn = len(data), False
        self._set_live(live)
        fsync_dir(self.path.parent)

    # -- starting ----------------------------------------------------------------------------

    def read(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read()

    def restart(self, live: dict[str, bytes], complete_bytes: int, keep_as: str | None) -> None:
        """Start from what was read: `live`, each key's newest line, which ended at offset
        `complete_bytes`. The journal is rewritten with those lines alone; first, when
        `keep_as` is given, the old one is kept under that name (a hard link) for a person to
        look at. On an OSError (a full disk), appends resume after the complete lines and the
        journal is compacted later only if it had nothing to keep; the error is raised. Call it
        once, before any append."""
        self._set_live(dict(live))
        try:
            if keep_as is not None:
                os.link(self.path, self.path.with_name(keep_as))
            self._replace(dict(live))
        except OSError:
            if self._size > complete_bytes:
                os.ftruncate(self._fd, complete_bytes)  # an unfinished append; no space needed
                self._size = complete_bytes
            self._compactable = keep_as is None
            raise
        self._compactable = True

    def adopt(self, live: dict[str, bytes]) -> None:
        """Start from a journal that holds exactly `live`'s lines: nothing to rewrite."""
        self._set_live(dict(live))
        self._compactable = True


def _apply(live: dict[str, bytes], entries: list[tuple[str, bytes, bool]]) -> int:
    """Make `entries` the newest lines of their keys in `live`; how many bytes `live` grew."""
    grew = 0
    for key, line, lives in entries:
        old = live.pop(key, None)
        if old is not None:
            grew -= len(old)
        if lives:
            live[key] = line
            grew += len(line)
    return grew


def _open_journal(path: Path) -> int:
    """The journal opened for appending; created, durably, when it is not there."""
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND)
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fsync(fd)
    fsync_dir(path.parent)
    return fd
