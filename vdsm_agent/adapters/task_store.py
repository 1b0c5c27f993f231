"""Durable task records: the task journal STATE_DIR/tasks/journal, written with group commit.

Each version of a task's record is one line appended to the journal (`domain.records`), and a
cleared task gets a line saying so. `submit` queues a line and returns at once; its `wait`
returns once the line is durable: concurrent records share one write and one fdatasync
(`adapters.journal`), no lock is held across the I/O, and a caller that waits has its own line
on disk. A record that cannot be written (the state directory is full) raises from `wait`, and
the journal is cut back to what it held, so the older version of the record stands.

At start the journal is read back and rewritten with the newest line of each task alone. Damaged
lines are never believed: the tasks whose newest line they may have been are no longer known,
and the journal as it was is kept as `journal.corrupt` beside it, with a warning naming it and
those tasks (docs/design.md §9). One file per task, `<task_id>.json`, was the layout of older
agents: such files are read once, the ones that do not hold a task set aside as
`<task_id>.json.corrupt`, and moved into the journal.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from vdsm_agent.adapters.journal import Journal, Pending
from vdsm_agent.adapters.storage import fsync_dir
from vdsm_agent.domain.records import (
    CorruptRecord,
    JournalContents,
    decode_record,
    encode_line,
    quarantine_name,
    read_journal,
    task_id_of,
)
from vdsm_agent.domain.tasks import Task

log = logging.getLogger(__name__)

JOURNAL = "journal"
TMP_SUFFIX = ".json.tmp"


class TaskStore:
    """The task records of one agent: one journal in STATE_DIR/tasks."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "tasks"
        if not self.dir.is_dir():
            self.dir.mkdir(parents=True, exist_ok=True)
            fsync_dir(self.dir.parent)
        self.journal = Journal(self.dir / JOURNAL)

    @property
    def path(self) -> Path:
        return self.journal.path

    def submit(self, task: Task) -> Pending:
        """Queue the task's record as it is now; `wait` on the answer for it to be durable."""
        return self.journal.append(task.task_id, encode_line(task.task_id, task.to_record()))

    def submit_delete(self, task_id: str) -> Pending:
        """Queue the forgetting of a task's record; `wait` on the answer for it to be durable."""
        return self.journal.append(task_id, encode_line(task_id, None), live=False)

    def save(self, task: Task) -> None:
        """Write the task's record durably, or raise OSError (ENOSPC: the state directory is
        full) having changed nothing that a restart reads."""
        self.submit(task).wait()

    def delete(self, task_id: str) -> None:
        self.submit_delete(task_id).wait()

    def load_all(self) -> list[Task]:
        """Every stored task, oldest first, the journal rewritten with them alone. Call it
        once, before any record is written."""
        contents = read_journal(self.journal.read())
        legacy, legacy_files = self._load_legacy(contents.seen)
        live = {task_id: line for task_id, (_, line) in contents.tasks.items()}
        live.update({t.task_id: encode_line(t.task_id, t.to_record()) for t in legacy})
        names = {p.name for p in self.dir.iterdir()}
        keep_as = quarantine_name(JOURNAL, names) if contents.damage else None
        tidy = self._restart(contents, live, keep_as, legacy_files)
        self._warn(contents, keep_as if tidy else None)
        if tidy and legacy_files:
            self._remove_legacy(legacy_files)
        tasks = [task for task, _ in contents.tasks.values()] + legacy
        tasks.sort(key=lambda t: (t.accepted_at, t.task_id))
        return tasks

    def _restart(
        self,
        contents: JournalContents,
        live: dict[str, bytes],
        keep_as: str | None,
        legacy_files: list[Path],
    ) -> bool:
        """Rewrite the journal with `live` unless it holds just that; False if it could not."""
        (self.dir / f"{JOURNAL}.tmp").unlink(missing_ok=True)  # a compaction cut short
        if contents.compact and not legacy_files:
            self.journal.adopt(live)
            return True
        try:
            self.journal.restart(live, contents.complete_bytes, keep_as)
        except OSError as exc:
            log.error(
                "could not rewrite the task journal %s (%s): it is read as it is at every start "
                "until it can be",
                self.path,
                exc,
            )
            return False
        return True

    def _warn(self, contents: JournalContents, kept_as: str | None) -> None:
        aside = f"kept as {kept_as}" if kept_as else "left in place (it could not be rewritten)"
        for damage in contents.damage:
            lost = (
                f"this agent no longer knows task(s) {', '.join(damage.lost)}, whose newest "
                "record it may have been, and the engine fails their commands as lost"
                if damage.lost
                else "no task whose newest record it may have been could be told from it"
            )
            log.warning(
                "task journal %s is corrupt at byte %d (%s): the journal as it was is %s; %s",
                self.path,
                damage.offset,
                damage.reason,
                aside,
                lost,
            )

    # -- the layout of older agents: one file per task ---------------------------------------

    def _load_legacy(self, known: set[str]) -> tuple[list[Task], list[Path]]:
        """Tasks in `<task_id>.json` files the journal does not know, and every such file;
        leftover temporary files are removed, and files that do not hold a task set aside."""
        tasks: list[Task] = []
        files: list[Path] = []
        paths = sorted(self.dir.iterdir())
        names = {path.name for path in paths}
        for path in paths:
            if path.name.endswith(TMP_SUFFIX):
                path.unlink()  # a write that never reached its rename
                continue
            task_id = task_id_of(path.name)
            if task_id is None:
                continue  # the journal, a record set aside earlier, or a stranger
            if task_id in known:
                files.append(path)  # moved into the journal before; removed below
                continue
            try:
                tasks.append(decode_record(task_id, path.read_bytes()))
                files.append(path)
            except CorruptRecord as exc:
                self._set_aside(path, str(exc), names)
            except OSError as exc:  # unreadable now; perhaps not at the next start
                log.error("task record %s could not be read and was skipped: %s", path, exc)
        return tasks, files

    def _remove_legacy(self, files: list[Path]) -> None:
        """Remove older agents' record files, now in the journal (read again, and ignored, at
        the next start if this fails)."""
        try:
            for path in files:
                path.unlink(missing_ok=True)
            fsync_dir(self.dir)
        except OSError as exc:
            log.error("could not remove the task records moved into the journal: %s", exc)

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
