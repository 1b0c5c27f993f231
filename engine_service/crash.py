"""The engine's crash points (docs/design.md §6), armed by ENGINE_CRASH_AT."""

from __future__ import annotations

from service_common.crash import CrashPoints

crash_point = CrashPoints(
    "ENGINE_CRASH_AT",
    (
        "placeholders_uncommitted",  # placeholder rows added, before the commit
        "after_placeholders_commit",  # committed, before any agent call
        "after_agent_accept",  # the first child accepted, its agent id not stored
        "after_vdsm_id_commit",  # every child's agent id committed
        "before_end_commit",  # the command's end written, before the commit
        "before_clear",  # before ClearTask on the agent
        "mid_reconcile",  # inside the reconcile transaction
        # A command in phases: the transaction that ended one phase and committed the next
        # phase's placeholders is committed, and that phase's first agent call not made yet.
        "between_phases",
    ),
)
