"""Task records as stored, read back, and what to make of one that does not hold a task.

A record is the JSON of `Task.to_record`. It is stored as one line of the task journal,
STATE_DIR/tasks/journal (docs/design.md §9): `<task_id> <crc32> <JSON>` for each version of a
record, `<task_id> <crc32> -` when the task is cleared, the CRC-32 (8 hex digits) taken over the
task id, a space and the rest; the newest line of a task is its record. `read_journal` reads the
lines back. Older agents kept one file per task, STATE_DIR/tasks/<task_id>.json; `decode_record`
reads those too.

A line is written whole and fsynced before anyone relies on it, so only the storage under it or
a person can damage it: cut, zeroed, hand-edited. A damaged line must not stop the agent from
starting, nor be half-believed: it is never read as a record, and a task whose newest line it may
have been (its id is in the line, and no sound line of that task follows) is no longer known;
the engine fails its command as lost (invariant I5). The task store keeps the damaged journal
for a person (`quarantine_name`). An unfinished line at the end was never acknowledged (its
append did not reach the fsync that would have let the caller go on) and is simply dropped.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

from vdsm_agent.domain.tasks import CopyImageSpec, Task

RECORD_SUFFIX = ".json"
CORRUPT_SUFFIX = ".corrupt"
CLEARED = b"-"
# One encoder for every line: json.dumps with arguments builds a new one per call, which costs
# about as much as encoding a record.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_UUIDS = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


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
    for name, value in ids.items():
        if not isinstance(value, str) or not _UUID.match(value):
            raise CorruptRecord(f"its {name} {value!r} is not a UUID")
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


# -- the journal ----------------------------------------------------------------------------------


def encode_line(task_id: str, record: dict[str, Any] | None) -> bytes:
    """The journal line of a task's record, or of its clearing when `record` is None."""
    payload = CLEARED if record is None else _ENCODE(record).encode()
    head = task_id.encode("ascii")
    return b"%s %08x %s\n" % (head, zlib.crc32(payload, zlib.crc32(head + b" ")), payload)


def decode_line(line: bytes) -> tuple[str, Task | None]:
    """The task id a journal line (without its newline) is about, and its record (None: the
    task was cleared); CorruptRecord saying why when the line is damaged."""
    head, _, rest = line.partition(b" ")
    crc, _, payload = rest.partition(b" ")
    task_id = head.decode("ascii", "replace")
    if not _UUID.match(task_id) or len(crc) != 8:
        raise CorruptRecord(f"it is not a journal line ({len(line)} bytes)")
    try:
        expected = int(crc, 16)
    except ValueError:
        raise CorruptRecord(f"its checksum {crc!r} is not hexadecimal") from None
    if zlib.crc32(payload, zlib.crc32(head + b" ")) != expected:
        raise CorruptRecord("its checksum does not match: it changed after it was written")
    if payload == CLEARED:
        return task_id, None
    return task_id, decode_record(task_id, payload)


@dataclass
class Damage:
    """A damaged line of the journal: where, why, and the tasks it made unknown (their ids are
    in it and no sound line of theirs follows it)."""

    offset: int
    reason: str
    lost: list[str]


@dataclass
class JournalContents:
    """What the journal holds: each known task's newest record and the line it came from, every
    task id with a sound line (recorded or cleared), the damaged lines, and where the complete
    lines end (after them, an unfinished append that is dropped)."""

    tasks: dict[str, tuple[Task, bytes]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    damage: list[Damage] = field(default_factory=list)
    complete_bytes: int = 0
    total_bytes: int = 0

    @property
    def compact(self) -> bool:
        """Whether the journal holds exactly one sound line per known task and nothing else."""
        return self.total_bytes == sum(len(line) for _, line in self.tasks.values())


def read_journal(data: bytes) -> JournalContents:
    """The journal `data` read line by line: the newest sound line of a task wins."""
    end = data.rfind(b"\n") + 1
    newest: dict[str, tuple[int, Task | None, bytes]] = {}
    damaged: list[tuple[int, int, str, tuple[str | None, set[str]]]] = []
    offset = 0
    for index, line in enumerate(data[:end].split(b"\n")[:-1]):
        if line:  # an empty line is what a failed append leaves when it cannot be cut off
            try:
                task_id, task = decode_line(line)
            except CorruptRecord as exc:
                damaged.append((index, offset, str(exc), _ids_in(line)))
            else:
                newest[task_id] = (index, task, line + b"\n")
        offset += len(line) + 1
    journal = JournalContents(seen=set(newest), complete_bytes=end, total_bytes=len(data))
    lost: set[str] = set()
    for index, at, reason, (head, ids) in damaged:
        # The line's own task, and any known task whose line the damage may have swallowed,
        # unless a sound line of theirs follows.
        named = {i for i in ids if i in newest} | ({head} if head else set())
        mine = sorted(i for i in named if i not in newest or newest[i][0] < index)
        lost.update(mine)
        journal.damage.append(Damage(at, reason, mine))
    for task_id, (_, task, line) in newest.items():
        if task is not None and task_id not in lost:
            journal.tasks[task_id] = (task, line)
    return journal


def _ids_in(line: bytes) -> tuple[str | None, set[str]]:
    """The task id a damaged line starts with, if it still reads as one, and every id in it."""
    head = line[:36].decode("ascii", "replace")
    own = head if line[36:37] == b" " and _UUID.match(head) else None
    return own, {m.decode() for m in _UUIDS.findall(line)}
