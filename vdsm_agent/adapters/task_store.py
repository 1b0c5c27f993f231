"""Durable task records: one JSON file per task in the state directory, written atomically.

A record is written to a temporary file, fsynced, renamed over the old one and the directory
fsynced, so after a crash each record is either the old or the new version, never a torn one.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from vdsm_agent.adapters.storage import fsync_dir
from vdsm_agent.domain.tasks import Task

log = logging.getLogger(__name__)


class TaskStore:
    """The task records of one agent: STATE_DIR/tasks/<task_id>.json, one per task."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "tasks"
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, task_id: str) -> Path:
        return self.dir / f"{task_id}.json"

    def save(self, task: Task) -> None:
        path = self._path(task.task_id)
        tmp = path.with_suffix(".json.tmp")
        data = json.dumps(task.to_record(), sort_keys=True).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(self.dir)

    def delete(self, task_id: str) -> None:
        try:
            self._path(task_id).unlink()
        except FileNotFoundError:
            return
        fsync_dir(self.dir)

    def load_all(self) -> list[Task]:
        """Every stored task, oldest first. Leftover temporary files are removed."""
        tasks: list[Task] = []
        for path in self.dir.iterdir():
            if path.name.endswith(".json.tmp"):
                path.unlink()  # a write that never reached its rename
                continue
            if path.suffix != ".json":
                continue
            try:
                tasks.append(Task.from_record(json.loads(path.read_bytes())))
            except (ValueError, KeyError) as exc:
                # Only reachable by hand-editing: renames make torn writes impossible.
                log.error("task record %s is unreadable and was skipped: %s", path, exc)
        tasks.sort(key=lambda t: (t.accepted_at, t.task_id))
        return tasks
