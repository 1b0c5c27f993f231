"""AgentService over gRPC: translate a request into a TaskManager call, an error into a status."""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from vdsm_agent import observability as metrics
from vdsm_agent.domain import errors
from vdsm_agent.domain.tasks import Task, TaskResult, TaskState
from vdsm_agent.service_layer.task_manager import TaskManager
from vdsm_agent.v1 import agent_service_pb2 as pb
from vdsm_agent.v1 import agent_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

_STATUS: dict[type[errors.AgentError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}

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

Handler = TypeVar("Handler", bound=Callable[..., Any])


def rpc(method: Handler) -> Handler:
    """Map domain errors to their status codes; never let a caller see a traceback."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return method(self, request, context)
        except errors.AgentError as exc:
            code = _STATUS[type(exc)]
            context.abort(code, str(exc))
        except Exception:
            code = grpc.StatusCode.INTERNAL
            error_id = uuid.uuid4()
            log.exception("internal error %s in %s", error_id, method.__name__)
            context.abort(code, f"internal error {error_id}; the agent's log has the details")
        finally:
            metrics.RPC_SECONDS.labels(method.__name__, code.name).observe(
                time.perf_counter() - started
            )

    return wrapper  # type: ignore[return-value]


def task_status(task: Task) -> pb.TaskStatus:
    return pb.TaskStatus(
        task_id=task.task_id,
        state=STATE_TO_PB[task.state],
        result=RESULT_TO_PB[task.result],
        progress_percent=task.progress_percent,
        message=task.message,
        code=int(task.code),
    )


class AgentServicer(pb_grpc.AgentServiceServicer):
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
