"""The engine's domain in one import: statuses, hosts, tasks, commands and inventory.

Plain Python: nothing here imports SQLAlchemy, gRPC or the agent's package."""

from engine_service.domain.clock import utcnow
from engine_service.domain.commands import (
    CommandBatch,
    CommandRecord,
    CommandStatus,
    OrphanQuery,
    Outcome,
    decide_outcome,
    mean_progress,
)
from engine_service.domain.hosts import Host, HostChange, HostStatus, least_busy
from engine_service.domain.inventory import (
    Disk,
    DiskStatus,
    EntityKind,
    EntityLock,
    StorageDomain,
    Template,
    TemplateStatus,
    Vm,
)
from engine_service.domain.requests import ClientRequest, Conflict, StoredRequest
from engine_service.domain.tasks import (
    AsyncTask,
    ReportedStatus,
    TaskCleanup,
    TaskPlan,
    TaskUpdate,
    TaskView,
    Verb,
    new_id,
    written_image,
)
from service_common.vdsm_tasks import TaskResult, TaskState

__all__ = [
    "AsyncTask",
    "ClientRequest",
    "CommandBatch",
    "CommandRecord",
    "CommandStatus",
    "Conflict",
    "Disk",
    "DiskStatus",
    "EntityKind",
    "EntityLock",
    "Host",
    "HostChange",
    "HostStatus",
    "OrphanQuery",
    "Outcome",
    "ReportedStatus",
    "StorageDomain",
    "StoredRequest",
    "TaskCleanup",
    "TaskPlan",
    "TaskResult",
    "TaskState",
    "TaskUpdate",
    "TaskView",
    "Template",
    "TemplateStatus",
    "Verb",
    "Vm",
    "decide_outcome",
    "least_busy",
    "mean_progress",
    "new_id",
    "utcnow",
    "written_image",
]
