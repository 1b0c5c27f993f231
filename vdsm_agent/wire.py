"""The shared task words (service_common.vdsm_tasks) as the agent's proto enums, both ways."""

from __future__ import annotations

from service_common.vdsm_tasks import TaskResult, TaskState
from vdsm_agent.v1 import agent_service_pb2 as pb

# The generated module has a constant per enum value, typed as its enum (`Value` is only `int`).
STATE_TO_PB: dict[TaskState, pb.TaskState] = {s: getattr(pb, s.wire_name) for s in TaskState}
RESULT_TO_PB: dict[TaskResult, pb.TaskResult] = {r: getattr(pb, r.wire_name) for r in TaskResult}
STATE_FROM_PB = {wire: state for state, wire in STATE_TO_PB.items()}
RESULT_FROM_PB = {wire: result for result, wire in RESULT_TO_PB.items()}
