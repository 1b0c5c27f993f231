"""AgentService over gRPC: translate a request into a TaskManager call, an error into a status."""

from __future__ import annotations

import logging

import grpc

from service_common.errors import InvalidArgument, ServiceError
from service_common.grpc_server import error_mapper, status_code_of
from service_common.ids import require_uuid
from vdsm_agent import observability as metrics
from vdsm_agent.domain.tasks import Task, TaskSpec
from vdsm_agent.service_layer.admission import (
    copy_image_spec,
    create_volume_spec,
    remove_image_spec,
)
from vdsm_agent.service_layer.task_manager import MAX_STARTS, Cleared, TaskManager
from vdsm_agent.v1 import agent_service_pb2 as pb
from vdsm_agent.v1 import agent_service_pb2_grpc as pb_grpc
from vdsm_agent.wire import RESULT_TO_PB, STATE_TO_PB

log = logging.getLogger(__name__)

rpc = error_mapper(metrics.RPC_SECONDS, log)

CLEARED_TO_PB = {
    Cleared.CLEARED: pb.CLEAR_OUTCOME_CLEARED,
    Cleared.NOT_FOUND: pb.CLEAR_OUTCOME_NOT_FOUND,
    Cleared.NOT_FINISHED: pb.CLEAR_OUTCOME_NOT_FINISHED,
}


def task_start(i: int, start: pb.TaskStart) -> tuple[str, TaskSpec]:
    """Start `i` of a StartTasks call as (request id, spec); InvalidArgument naming its field
    (`starts[i].copy_image.dst_image_id`) if it cannot be read."""
    verb = start.WhichOneof("start")
    if verb is None:
        raise InvalidArgument(
            f"starts[{i}]", "names no task: set create_volume, copy_image or remove_image"
        )
    try:
        request_id = require_uuid("request_id", getattr(start, verb).request_id)
        if verb == "create_volume":
            v = start.create_volume
            spec: TaskSpec = create_volume_spec(
                v.storage_domain_id, v.image_id, v.size_bytes, v.fill_pattern
            )
        elif verb == "copy_image":
            c = start.copy_image
            spec = copy_image_spec(
                c.src_storage_domain_id, c.src_image_id, c.dst_storage_domain_id, c.dst_image_id
            )
        else:
            r = start.remove_image
            spec = remove_image_spec(r.storage_domain_id, r.image_id)
        return request_id, spec
    except InvalidArgument as exc:
        raise exc.within(f"starts[{i}].{verb}.") from None


def task_starts(request: pb.StartTasksRequest) -> list[tuple[str, TaskSpec]]:
    """The starts of a StartTasks call, each read and checked before any is taken."""
    if len(request.starts) > MAX_STARTS:
        raise InvalidArgument("starts", f"{len(request.starts)} starts, at most {MAX_STARTS}")
    starts = [task_start(i, s) for i, s in enumerate(request.starts)]
    seen: set[str] = set()
    for i, (request_id, _) in enumerate(starts):
        if request_id in seen:
            verb = request.starts[i].WhichOneof("start")
            raise InvalidArgument(
                f"starts[{i}].{verb}.request_id", f"{request_id} is repeated in the call"
            )
        seen.add(request_id)
    return starts


def start_result(outcome: Task | ServiceError) -> pb.TaskStartResult:
    if isinstance(outcome, Task):
        return pb.TaskStartResult(task_id=outcome.task_id)
    code = status_code_of(outcome) or grpc.StatusCode.INTERNAL
    return pb.TaskStartResult(code=code.value[0], message=str(outcome))


def task_status(task: Task) -> pb.TaskStatus:
    """A task as the wire's TaskStatus."""
    return pb.TaskStatus(
        task_id=task.task_id,
        state=STATE_TO_PB[task.state],
        result=RESULT_TO_PB[task.result],
        progress_percent=task.progress_percent,
        message=task.message,
        code=int(task.code),
    )


class AgentServicer(pb_grpc.AgentServiceServicer):
    """AgentService's RPCs, each one call of the TaskManager."""

    def __init__(self, tasks: TaskManager) -> None:
        self.tasks = tasks

    @rpc
    def CreateStorageDomain(
        self, request: pb.CreateStorageDomainRequest, context: grpc.ServicerContext
    ) -> pb.CreateStorageDomainResponse:
        self.tasks.create_storage_domain(request.storage_domain_id)
        return pb.CreateStorageDomainResponse()

    @rpc
    def CreateVolume(
        self, request: pb.CreateVolumeRequest, context: grpc.ServicerContext
    ) -> pb.CreateVolumeResponse:
        task = self.tasks.create_volume(
            request.request_id,
            request.storage_domain_id,
            request.image_id,
            request.size_bytes,
            request.fill_pattern,
        )
        return pb.CreateVolumeResponse(task_id=task.task_id)

    @rpc
    def CopyImage(
        self, request: pb.CopyImageRequest, context: grpc.ServicerContext
    ) -> pb.CopyImageResponse:
        task = self.tasks.copy_image(
            request.request_id,
            request.src_storage_domain_id,
            request.src_image_id,
            request.dst_storage_domain_id,
            request.dst_image_id,
        )
        return pb.CopyImageResponse(task_id=task.task_id)

    @rpc
    def RemoveImage(
        self, request: pb.RemoveImageRequest, context: grpc.ServicerContext
    ) -> pb.RemoveImageResponse:
        task = self.tasks.remove_image(
            request.request_id, request.storage_domain_id, request.image_id
        )
        return pb.RemoveImageResponse(task_id=task.task_id)

    @rpc
    def DeleteImage(
        self, request: pb.DeleteImageRequest, context: grpc.ServicerContext
    ) -> pb.DeleteImageResponse:
        self.tasks.delete_image(request.storage_domain_id, request.image_id)
        return pb.DeleteImageResponse()

    @rpc
    def GetAllTasksStatuses(
        self, request: pb.GetAllTasksStatusesRequest, context: grpc.ServicerContext
    ) -> pb.GetAllTasksStatusesResponse:
        return pb.GetAllTasksStatusesResponse(
            statuses=[task_status(t) for t in self.tasks.all_tasks()]
        )

    @rpc
    def GetAllTasksInfo(
        self, request: pb.GetAllTasksInfoRequest, context: grpc.ServicerContext
    ) -> pb.GetAllTasksInfoResponse:
        return pb.GetAllTasksInfoResponse(
            tasks=[
                pb.TaskInfo(
                    task_id=t.task_id,
                    request_id=t.request_id,
                    verb=t.verb.value,
                    storage_domain_id=t.spec.target.storage_domain_id,
                    image_id=t.spec.target.image_id,
                )
                for t in self.tasks.all_tasks()
            ]
        )

    @rpc
    def GetTaskStatus(
        self, request: pb.GetTaskStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetTaskStatusResponse:
        return pb.GetTaskStatusResponse(status=task_status(self.tasks.get(request.task_id)))

    @rpc
    def StopTask(
        self, request: pb.StopTaskRequest, context: grpc.ServicerContext
    ) -> pb.StopTaskResponse:
        self.tasks.stop(request.task_id)
        return pb.StopTaskResponse()

    @rpc
    def ClearTask(
        self, request: pb.ClearTaskRequest, context: grpc.ServicerContext
    ) -> pb.ClearTaskResponse:
        self.tasks.clear(request.task_id)
        return pb.ClearTaskResponse()

    @rpc
    def ClearTasks(
        self, request: pb.ClearTasksRequest, context: grpc.ServicerContext
    ) -> pb.ClearTasksResponse:
        return pb.ClearTasksResponse(
            results=[
                pb.ClearTaskResult(task_id=task_id, outcome=CLEARED_TO_PB[outcome])
                for task_id, outcome in self.tasks.clear_many(list(request.task_ids))
            ]
        )

    @rpc
    def StartTasks(
        self, request: pb.StartTasksRequest, context: grpc.ServicerContext
    ) -> pb.StartTasksResponse:
        results = self.tasks.start_many(task_starts(request))
        return pb.StartTasksResponse(results=[start_result(r) for r in results])
