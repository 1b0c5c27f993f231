"""Messages of the engine's API from the service layer's views and domain values, and the
request fields the service layer takes (filters, instants). The servicer uses these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from google.protobuf.timestamp_pb2 import Timestamp

from engine_service.domain.commands import CommandFilter, CommandStatus
from engine_service.domain.history import CommandEvent
from engine_service.domain.inventory import Disk, StorageDomain, Template, Vm
from engine_service.service_layer.reconciliation import ReconcileReport
from engine_service.service_layer.views import CommandView, HostView, TaskInfo
from engine_service.v1 import engine_service_pb2 as pb
from service_common.errors import InvalidArgument


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value.replace(tzinfo=UTC))
    return ts


def host_message(info: HostView) -> pb.Host:
    h = info.host
    return pb.Host(
        host_id=h.host_id,
        name=h.name,
        address=h.address,
        status=f"HOST_STATUS_{h.status.value}",
        tasks_in_flight=info.tasks_in_flight,
        last_seen_at=timestamp(h.last_seen_at),
        unreachable_since=timestamp(h.unreachable_since),
        confirmed_rebooted_at=timestamp(h.confirmed_rebooted_at),
        confirmed_rebooted_by=h.confirmed_rebooted_by,
        confirmed_rebooted_reason=h.confirmed_rebooted_reason,
    )


def domain_message(d: StorageDomain) -> pb.StorageDomain:
    return pb.StorageDomain(storage_domain_id=d.storage_domain_id, name=d.name)


def disk_message(d: Disk) -> pb.Disk:
    return pb.Disk(
        disk_id=d.disk_id,
        name=d.name,
        storage_domain_id=d.storage_domain_id,
        image_id=d.image_id,
        size_bytes=d.size_bytes,
        status=f"DISK_STATUS_{d.status.value}",
    )


def vm_message(vm: Vm) -> pb.Vm:
    return pb.Vm(vm_id=vm.vm_id, name=vm.name, disk_ids=vm.disk_ids)


def template_message(t: Template) -> pb.VmTemplate:
    return pb.VmTemplate(
        template_id=t.template_id,
        name=t.name,
        vm_id=t.vm_id,
        disk_ids=t.disk_ids,
        status=f"TEMPLATE_STATUS_{t.status.value}",
    )


def task_message(t: TaskInfo) -> pb.Task:
    return pb.Task(
        task_id=t.task_id,
        vdsm_task_id=t.vdsm_task_id or "",
        host_id=t.host_id,
        # The engine's task enums carry the same names as the agent's (vdsm_tasks.wire_name).
        state=t.state.wire_name if t.state else "TASK_STATE_UNSPECIFIED",
        result=t.result.wire_name if t.result else "TASK_RESULT_UNSPECIFIED",
        progress_percent=t.progress_percent,
        verb=t.verb,
        command_id=t.command_id,
        message=t.message,
    )


def command_message(v: CommandView) -> pb.Command:
    return pb.Command(
        command_id=v.command_id,
        action_type=v.action_type,
        status=f"COMMAND_STATUS_{v.status.value}",
        progress_percent=v.progress_percent,
        failure_reason=v.failure_reason,
        child_commands=[command_message(c) for c in v.children],
        tasks=[task_message(t) for t in v.tasks],
        parent_command_id=v.parent_id or "",
        target_id=v.target_id or "",
        created_at=timestamp(v.created_at),
        ended_at=timestamp(v.ended_at),
    )


def event_message(e: CommandEvent) -> pb.CommandEvent:
    return pb.CommandEvent(
        event_id=e.event_id,
        command_id=e.command_id,
        time=timestamp(e.time),
        kind=e.kind.value,
        task_id=e.task_id or "",
        host_id=e.host_id or "",
        message=e.message,
    )


def report_fields(r: ReconcileReport) -> dict[str, Any]:
    """The fields ReconcileReport and ReconcileOrphansResponse share."""
    return {
        "failed_command_ids": r.failed_command_ids,
        "removed_placeholders": r.removed_placeholders,
        "adopted_tasks": r.adopted_tasks,
        "cleared_zombies": r.cleared_zombies,
        "failed_commands": r.failed_commands,
        "failed_at": timestamp(r.failed_at),
    }


def report_message(r: ReconcileReport) -> pb.ReconcileReport:
    return pb.ReconcileReport(**report_fields(r))


def reconcile_response(
    report: ReconcileReport, startup: ReconcileReport
) -> pb.ReconcileOrphansResponse:
    """Bounded whatever the number of commands failed: the reports list at most the first
    LISTED_IDS ids (reconciliation.py), and count them all."""
    return pb.ReconcileOrphansResponse(
        **report_fields(report), startup_report=report_message(startup)
    )


def instant(message: Any, name: str) -> datetime | None:
    """A Timestamp field of a request as naive UTC; None if unset."""
    if not message.HasField(name):
        return None
    try:
        return cast(datetime, getattr(message, name).ToDatetime())
    except (ValueError, OverflowError):
        raise InvalidArgument(name, "is not a representable instant") from None


def command_filter(request: pb.ListCommandsRequest) -> CommandFilter:
    return CommandFilter(
        status=status_filter(request.status),
        ended_after=instant(request, "ended_after"),
        ended_before=instant(request, "ended_before"),
        failure_reason_contains=request.failure_reason_contains,
        action_type=request.action_type,
        target_id=request.target_id,
        created_after=instant(request, "created_after"),
        created_before=instant(request, "created_before"),
        host_id=request.host_id,
    )


def status_filter(value: int) -> CommandStatus | None:
    if value == pb.COMMAND_STATUS_UNSPECIFIED:
        return None
    try:
        return CommandStatus(pb.CommandStatus.Name(value).removeprefix("COMMAND_STATUS_"))
    except ValueError:
        raise InvalidArgument("status", f"{value} is not a CommandStatus") from None
