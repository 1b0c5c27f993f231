"""The agent's crash points (docs/design.md §6), armed by VDSM_AGENT_CRASH_AT."""

from __future__ import annotations

from service_common.crash import CrashPoints

# after_task_persist: the task record is durable, the reply is not sent.
# mid_copy: a CopyImage has written part of its partial file and not published it.
crash_point = CrashPoints("VDSM_AGENT_CRASH_AT", ("after_task_persist", "mid_copy"))
