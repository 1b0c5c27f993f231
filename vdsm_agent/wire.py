"""VDSM's task words (the domain's) and their enums on the wire, both ways."""

from __future__ import annotations

from vdsm_agent.domain.tasks import TaskResult, TaskState
from vdsm_agent.v1 import agent_service_pb2 as pb

STATE_TO_PB = {
    TaskState.INIT: pb.TASK_STATE_INIT,
    TaskState.RUNNING: pb.TASK_STATE_RUNNING,
    TaskState.FINISHED: pb.TASK_STATE_FINISHED,
    TaskState.ABORTING: pb.TASK_STATE_ABORTING,
    TaskState.CLEANING: pb.TASK_STATE_CLEANING,
}
RESULT_TO_PB = {
    TaskResult.NONE: pb.TASK_RESULT_UNSPECIFIED,
    TaskResult.SUCCESS: pb.TASK_RESULT_SUCCESS,
    TaskResult.FAILURE: pb.TASK_RESULT_FAILURE,
    TaskResult.CLEAN_SUCCESS: pb.TASK_RESULT_CLEAN_SUCCESS,
    TaskResult.CLEAN_FAILURE: pb.TASK_RESULT_CLEAN_FAILURE,
}
STATE_FROM_PB = {wire: state for state, wire in STATE_TO_PB.items()}
RESULT_FROM_PB = {wire: result for result, wire in RESULT_TO_PB.items()}
