"""VDSM's task words, shared by the agent and the engine: a task's state and its result.

The values are VDSM's own strings (how they are stored, logged and printed). On the wire both
services' protos name them `TASK_STATE_<NAME>` and `TASK_RESULT_<NAME>` (`TASK_RESULT_UNSPECIFIED`
for a task that has no result yet): `wire_name` and `from_wire_name` convert, so neither service
needs the other's generated code for them.
"""

from __future__ import annotations

from enum import StrEnum


class TaskState(StrEnum):
    """Where a task is: VDSM's `init`, `running`, `finished`, `aborting`, `cleaning`."""

    INIT = "init"
    RUNNING = "running"
    FINISHED = "finished"
    ABORTING = "aborting"
    CLEANING = "cleaning"

    @property
    def wire_name(self) -> str:
        return f"TASK_STATE_{self.name}"


class TaskResult(StrEnum):
    """How a finished task ended; NONE while it runs. Only SUCCESS counts as success."""

    NONE = ""
    SUCCESS = "success"
    FAILURE = "failure"
    CLEAN_SUCCESS = "cleanSuccess"
    CLEAN_FAILURE = "cleanFailure"

    @property
    def wire_name(self) -> str:
        return "TASK_RESULT_UNSPECIFIED" if self is TaskResult.NONE else f"TASK_RESULT_{self.name}"


def state_from_wire_name(name: str) -> TaskState:
    """The state a proto enum name stands for; ValueError for a name that is none."""
    if not name.startswith("TASK_STATE_") or name[11:] not in TaskState.__members__:
        raise ValueError(f"{name!r} is not a task state")
    return TaskState[name[11:]]


def result_from_wire_name(name: str) -> TaskResult:
    """The result a proto enum name stands for; ValueError for a name that is none."""
    if name == "TASK_RESULT_UNSPECIFIED":
        return TaskResult.NONE
    member = name[12:] if name.startswith("TASK_RESULT_") else ""
    if member not in TaskResult.__members__ or member == "NONE":  # NONE is UNSPECIFIED
        raise ValueError(f"{name!r} is not a task result")
    return TaskResult[member]
