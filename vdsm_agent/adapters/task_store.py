"""Durable task records: one JSON file per task in the state directory, written atomically.

A record is written to a temporary file, fsynced, renamed over the old one and the directory
fsynced, so after a crash each record is either the old or the new version, never a torn one.
A write that fails (the state directory is full) raises and leaves nothing behind: no temporary
file, and the old version of the record, if any, untouched. A record that does not hold a task
anyway (cut short or zeroed by the storage under it, or edited by hand) is set aside at start
as `<task_id>.json.corrupt` beside the others, with a warning naming it (docs/design.md §9).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from vdsm_agent.adapters.storage import fsync_dir, write_all
from vdsm_agent.domain.records import CorruptRecord, decode_record, quarantine_name, task_id_of
from vdsm_agent.domain.tasks import Task

log = logging.getLogger(__name__)

TMP_SUFFIX = ".json.tmp"


class TaskStore:
    """The task records of one agent: STATE_DIR/tasks/<task_id>.json, one per task."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "tasks"
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, task_id: str) -> Path:
        return self.dir / f"{task_id}.json"

    def save(self, task: Task) -> None:
        """Write the task's record durably, or raise OSError (ENOSPC: the state directory is
        full) having changed nothing on disk."""
        path = self._path(task.task_id)
        tmp = path.with_suffix(TMP_SUFFIX)
        data = json.dumps(task.to_record(), sort_keys=True).encode()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                write_all(lambda chunk: os.write(fd, chunk), data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)  # a write cut short by a full disk is not left behind
            raise
        fsync_dir(self.dir)

    def delete(self, task_id: str) -> None:
        try:
            self._path(task_id).unlink()
        except FileNotFoundError:
            return
        fsync_dir(self.dir)

    def load_all(self) -> list[Task]:
        """Every stored task, oldest first. Leftover temporary files are removed, and records
        that do not hold a task are set aside."""
        tasks: list[Task] = []
        paths = sorted(self.dir.iterdir())
        names = {path.name for path in paths}
        for path in paths:
            if path.name.endswith(TMP_SUFFIX):
                path.unlink()  # a write that never reached its rename
                continue
            task_id = task_id_of(path.name)
            if task_id is None:
                continue  # a record set aside earlier, or a stranger
            try:
                tasks.append(decode_record(task_id, path.read_bytes()))
            except CorruptRecord as exc:
                self._set_aside(path, str(exc), names)
            except OSError as exc:  # unreadable now; perhaps not at the next start
                log.error("task record %s could not be read and was skipped: %s", path, exc)
        tasks.sort(key=lambda t: (t.accepted_at, t.task_id))
        return tasks

    def _set_aside(self, path: Path, reason: str, names: set[str]) -> None:
        """Rename a corrupt record to `<name>.corrupt` (never read again, never overwritten),
        so that the agent starts without it and a person can look at it."""
        aside = path.with_name(quarantine_name(path.name, names))
        try:
            os.rename(path, aside)
            fsync_dir(self.dir)
        except OSError as exc:
            log.error(
                "task record %s is corrupt (%s) and could not be set aside: %s", path, reason, exc
            )
            return
        names.add(aside.name)
        log.warning(
            "task record %s is corrupt (%s): set aside as %s; this agent no longer knows task "
            "%s, and the engine fails its command as lost",
            path,
            reason,
            aside.name,
            path.name.removesuffix(".json"),
        )
