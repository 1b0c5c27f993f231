"""Reading a task record back, and what to make of one that does not hold a task.

A record is the JSON of `Task.to_record` in STATE_DIR/tasks/<task_id>.json (docs/design.md §9).
Writes are atomic (temporary file, fsync, rename), so a record is torn only when the storage
under it lied or something else wrote it: a file cut short, zeroed, or hand-edited. Such a record
must not stop the agent from starting, nor be half-believed: `decode_record` either returns the
whole task or says why the record is corrupt, and the task store then sets the file aside
(`quarantine_name`). The engine fails that task's command as lost (invariant I5).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from vdsm_agent.domain.tasks import CopyImageSpec, Task

RECORD_SUFFIX = ".json"
CORRUPT_SUFFIX = ".corrupt"

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class CorruptRecord(Exception):
    """A task record that does not hold a task; the message says why, for the log."""


def decode_record(task_id: str, data: bytes) -> Task:
    """The task that the record of `task_id` (its file's name) holds; CorruptRecord saying why
    when it holds none: empty, cut short, not JSON, not an object, a field missing or of the
    wrong type, an id that is not a canonical UUID, or another task's id than its file's."""
    if not data.strip(b"\0 \t\r\n"):
        raise CorruptRecord(f"it is empty ({len(data)} bytes, none of them JSON)")
    try:
        rec = json.loads(data)
    except ValueError as exc:  # also a UnicodeDecodeError
        raise CorruptRecord(f"it is not JSON: {exc}") from None
    if not isinstance(rec, dict):
        raise CorruptRecord(f"it holds a JSON {type(rec).__name__}, not an object")
    try:
        task = Task.from_record(rec)
    except KeyError as exc:
        raise CorruptRecord(f"the field {exc} is missing") from None
    except (ValueError, TypeError, AttributeError) as exc:
        raise CorruptRecord(f"a field has a wrong value: {exc}") from None
    _check_fields(task, rec)
    if task.task_id != task_id:
        raise CorruptRecord(f"it holds task {task.task_id}, not task {task_id} of its name")
    return task


def _check_fields(task: Task, rec: dict[str, Any]) -> None:
    """What `Task.from_record` takes without looking: ids are canonical UUIDs (paths are built
    from them), the message is text, progress a percentage, the acceptance time a number."""
    ids = {"task_id": task.task_id, "request_id": task.request_id}
    refs = [("", task.spec.target)]
    if isinstance(task.spec, CopyImageSpec):
        refs.append(("source ", task.spec.source))
    for what, ref in refs:
        ids[f"{what}storage_domain_id"] = ref.storage_domain_id
        ids[f"{what}image_id"] = ref.image_id
    for field, value in ids.items():
        if not isinstance(value, str) or not _UUID.match(value):
            raise CorruptRecord(f"its {field} {value!r} is not a UUID")
    if not isinstance(rec["message"], str):
        raise CorruptRecord(f"its message {rec['message']!r} is not text")
    if not 0 <= task.progress_percent <= 100:
        raise CorruptRecord(f"its progress {task.progress_percent} is not a percentage")
    if not math.isfinite(task.accepted_at):
        raise CorruptRecord(f"its acceptance time {task.accepted_at} is not a time")


def task_id_of(file_name: str) -> str | None:
    """The task id a record's file name stands for; None for any other file in the directory
    (a temporary file, a record set aside)."""
    if not file_name.endswith(RECORD_SUFFIX):
        return None
    return file_name.removesuffix(RECORD_SUFFIX)


def quarantine_name(file_name: str, taken: set[str]) -> str:
    """The name a corrupt record is renamed to, in the same directory: `<name>.corrupt`, or
    `<name>.<n>.corrupt` when that is taken. A set-aside record is never read as a task again,
    never overwritten, and left for a person to look at (or delete)."""
    name = file_name + CORRUPT_SUFFIX
    n = 1
    while name in taken:
        n += 1
        name = f"{file_name}.{n}{CORRUPT_SUFFIX}"
    return name
