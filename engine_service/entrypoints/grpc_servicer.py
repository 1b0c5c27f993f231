"""EngineService over gRPC: each method translates a request into an Engine call and the
result into messages; errors become status codes through `rpc` (service_common)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from engine_service import observability as metrics
from engine_service.domain.commands import CommandFilter, CommandStatus
from engine_service.domain.inventory import Disk, StorageDomain, Template, Vm
from engine_service.service_layer.engine import Engine
from engine_service.service_layer.reconciliation import ReconcileReport
from engine_service.service_layer.views import CommandView, HostView, TaskInfo
from engine_service.v1 import engine_service_pb2 as pb
from engine_service.v1 import engine_service_pb2_grpc as pb_grpc
from service_common.errors import InvalidArgument
from service_common.grpc_server import error_mapper

log = logging.getLogger(__name__)
rpc = error_mapper(metrics.RPC_SECONDS, log)

WATCH_INTERVAL = 0.2


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


def caller(context: grpc.ServicerContext) -> str:
    """Who made a call, for the records an operator's action leaves: the client's address
    (a named token will say more, once tokens have names)."""
    return context.peer() or "unknown"


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
    )


def status_filter(value: int) -> CommandStatus | None:
    if value == pb.COMMAND_STATUS_UNSPECIFIED:
        return None
    try:
        return CommandStatus(pb.CommandStatus.Name(value).removeprefix("COMMAND_STATUS_"))
    except ValueError:
        raise InvalidArgument("status", f"{value} is not a CommandStatus") from None


class EngineServicer(pb_grpc.EngineServiceServicer):
    """EngineService: each RPC calls the engine's service layer and answers with its views."""

    def __init__(self, engine: Engine, max_watchers: int = 64) -> None:
        self.engine = engine
        self.watchers = threading.BoundedSemaphore(max_watchers)
        self.max_watchers = max_watchers

    @rpc
    def AddHost(
        self, request: pb.AddHostRequest, context: grpc.ServicerContext
    ) -> pb.AddHostResponse:
        info = self.engine.inventory.add_host(request.name, request.address, request.request_id)
        return pb.AddHostResponse(host=host_message(info))

    @rpc
    def ListHosts(
        self, request: pb.ListHostsRequest, context: grpc.ServicerContext
    ) -> pb.ListHostsResponse:
        return pb.ListHostsResponse(hosts=[host_message(h) for h in self.engine.inventory.hosts()])

    @rpc
    def SetHostMaintenance(
        self, request: pb.SetHostMaintenanceRequest, context: grpc.ServicerContext
    ) -> pb.SetHostMaintenanceResponse:
        info = self.engine.inventory.set_host_maintenance(request.host_id, request.maintenance)
        return pb.SetHostMaintenanceResponse(host=host_message(info))

    @rpc
    def RemoveHost(
        self, request: pb.RemoveHostRequest, context: grpc.ServicerContext
    ) -> pb.RemoveHostResponse:
        self.engine.inventory.remove_host(request.host_id)
        return pb.RemoveHostResponse()

    @rpc
    def ConfirmHostRebooted(
        self, request: pb.ConfirmHostRebootedRequest, context: grpc.ServicerContext
    ) -> pb.ConfirmHostRebootedResponse:
        fenced = self.engine.confirm_host_rebooted(request.host_id, request.reason, caller(context))
        return pb.ConfirmHostRebootedResponse(
            host=host_message(fenced.host),
            failed_commands=fenced.failed_commands,
            written_off_tasks=fenced.written_off_tasks,
        )

    @rpc
    def AddStorageDomain(
        self, request: pb.AddStorageDomainRequest, context: grpc.ServicerContext
    ) -> pb.AddStorageDomainResponse:
        domain = self.engine.inventory.add_storage_domain(request.name, request.request_id)
        return pb.AddStorageDomainResponse(storage_domain=domain_message(domain))

    @rpc
    def ListStorageDomains(
        self, request: pb.ListStorageDomainsRequest, context: grpc.ServicerContext
    ) -> pb.ListStorageDomainsResponse:
        return pb.ListStorageDomainsResponse(
            storage_domains=[domain_message(d) for d in self.engine.inventory.storage_domains()]
        )

    @rpc
    def AddDisk(
        self, request: pb.AddDiskRequest, context: grpc.ServicerContext
    ) -> pb.AddDiskResponse:
        disk, command = self.engine.add_disk(
            request.name, request.storage_domain_id, request.size_bytes, request.request_id
        )
        return pb.AddDiskResponse(
            disk=disk_message(disk) if disk else None, command=command_message(command)
        )

    @rpc
    def GetDisk(
        self, request: pb.GetDiskRequest, context: grpc.ServicerContext
    ) -> pb.GetDiskResponse:
        return pb.GetDiskResponse(disk=disk_message(self.engine.inventory.disk(request.disk_id)))

    @rpc
    def ListDisks(
        self, request: pb.ListDisksRequest, context: grpc.ServicerContext
    ) -> pb.ListDisksResponse:
        disks, token = self.engine.inventory.disks(request.page_size, request.page_token)
        return pb.ListDisksResponse(disks=[disk_message(d) for d in disks], next_page_token=token)

    @rpc
    def AddVm(self, request: pb.AddVmRequest, context: grpc.ServicerContext) -> pb.AddVmResponse:
        vm = self.engine.inventory.add_vm(request.name, list(request.disk_ids), request.request_id)
        return pb.AddVmResponse(vm=vm_message(vm))

    @rpc
    def GetVm(self, request: pb.GetVmRequest, context: grpc.ServicerContext) -> pb.GetVmResponse:
        return pb.GetVmResponse(vm=vm_message(self.engine.inventory.vm(request.vm_id)))

    @rpc
    def AddVmTemplate(
        self, request: pb.AddVmTemplateRequest, context: grpc.ServicerContext
    ) -> pb.AddVmTemplateResponse:
        template, command = self.engine.add_vm_template(
            request.vm_id, request.name, request.destination_storage_domain_id, request.request_id
        )
        return pb.AddVmTemplateResponse(
            template=template_message(template) if template else None,
            command=command_message(command),
        )

    @rpc
    def GetVmTemplate(
        self, request: pb.GetVmTemplateRequest, context: grpc.ServicerContext
    ) -> pb.GetVmTemplateResponse:
        info = self.engine.inventory.template(request.template_id)
        return pb.GetVmTemplateResponse(template=template_message(info))

    @rpc
    def ListVmTemplates(
        self, request: pb.ListVmTemplatesRequest, context: grpc.ServicerContext
    ) -> pb.ListVmTemplatesResponse:
        infos, token = self.engine.inventory.templates(request.page_size, request.page_token)
        return pb.ListVmTemplatesResponse(
            templates=[template_message(t) for t in infos], next_page_token=token
        )

    @rpc
    def GetCommand(
        self, request: pb.GetCommandRequest, context: grpc.ServicerContext
    ) -> pb.GetCommandResponse:
        return pb.GetCommandResponse(
            command=command_message(self.engine.command(request.command_id))
        )

    @rpc
    def ListCommands(
        self, request: pb.ListCommandsRequest, context: grpc.ServicerContext
    ) -> pb.ListCommandsResponse:
        views, token = self.engine.commands(
            command_filter(request), request.page_size, request.page_token
        )
        return pb.ListCommandsResponse(
            commands=[command_message(v) for v in views], next_page_token=token
        )

    def WatchCommand(
        self, request: pb.WatchCommandRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WatchCommandResponse]:
        if not self.watchers.acquire(blocking=False):
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self.max_watchers} WatchCommand streams are open already; close "
                "one or poll GetCommand",
            )
        try:
            first = self._watch_first(request, context)
            yield first
            last = first.command
            while context.is_active() and not _settled(last):
                time.sleep(WATCH_INTERVAL)
                current = self._watch_next(request, context)
                if current != last:
                    last = current
                    yield pb.WatchCommandResponse(command=current)
        finally:
            self.watchers.release()

    @rpc
    def _watch_first(
        self, request: pb.WatchCommandRequest, context: grpc.ServicerContext
    ) -> pb.WatchCommandResponse:
        return pb.WatchCommandResponse(
            command=command_message(self.engine.command(request.command_id))
        )

    @rpc
    def _watch_next(
        self, request: pb.WatchCommandRequest, context: grpc.ServicerContext
    ) -> pb.Command:
        return command_message(self.engine.command(request.command_id))

    @rpc
    def CancelCommand(
        self, request: pb.CancelCommandRequest, context: grpc.ServicerContext
    ) -> pb.CancelCommandResponse:
        return pb.CancelCommandResponse(
            command=command_message(self.engine.cancel(request.command_id))
        )

    @rpc
    def ReconcileOrphans(
        self, request: pb.ReconcileOrphansRequest, context: grpc.ServicerContext
    ) -> pb.ReconcileOrphansResponse:
        report = self.engine.reconcile()
        return reconcile_response(report, self.engine.reconciler.startup_report)


def _settled(command: pb.Command) -> bool:
    return command.status != pb.COMMAND_STATUS_ACTIVE and not command.tasks
