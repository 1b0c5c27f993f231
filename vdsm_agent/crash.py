"""Named crash points (design section 5): the process dies there, with no cleanup, when
VDSM_AGENT_CRASH_AT names the point. Nothing happens when the variable is unset."""

from __future__ import annotations

import os
import sys

ENV_VAR = "VDSM_AGENT_CRASH_AT"
# after_task_persist: the task record is durable, the reply is not sent.
# mid_copy: a CopyImage has written part of its partial file and not published it.
CRASH_POINTS = ("after_task_persist", "mid_copy")
CRASH_EXIT_CODE = 86


def check_configured() -> str | None:
    """The configured point, or None; a name that is not a crash point is a startup error."""
    name = os.environ.get(ENV_VAR) or None
    if name is not None and name not in CRASH_POINTS:
        raise SystemExit(f"{ENV_VAR}={name!r} is not one of {', '.join(CRASH_POINTS)}")
    return name


def crash_point(name: str) -> None:
    if os.environ.get(ENV_VAR) == name:
        sys.stderr.write(f"{ENV_VAR}={name}: crashing here on purpose\n")
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)
