"""EngineService over gRPC: each method translates a request into an Engine call and the
result into messages; errors become status codes through `rpc` (service_common), the
database's faults included (adapters/db_faults.py)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import grpc

from engine_service import observability as metrics
from engine_service.adapters.db_faults import database_fault
from engine_service.entrypoints.auth import current_caller
from engine_service.entrypoints.messages import (
    command_filter,
    command_message,
    disk_message,
    domain_message,
    event_message,
    host_message,
    reconcile_response,
    template_message,
    vm_message,
)
from engine_service.service_layer.engine import Engine
from engine_service.v1 import engine_service_pb2 as pb
from engine_service.v1 import engine_service_pb2_grpc as pb_grpc
from service_common.grpc_server import error_mapper

log = logging.getLogger(__name__)
# A database fault that escaped a unit of work is still UNAVAILABLE (or RESOURCE_EXHAUSTED for a
# full disk), never INTERNAL (docs/design.md §10).
rpc = error_mapper(metrics.RPC_SECONDS, log, translate=database_fault)

WATCH_INTERVAL = 0.2


def caller(context: grpc.ServicerContext) -> str:
    """Who made a call, for the records an operator's action leaves: `token NAME from PEER`,
    or the client's address alone when the API is open (auth.TokenInterceptor sets the name)."""
    return str(current_caller(context.peer()))


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
        hosts, token = self.engine.inventory.host_page(request.page_size, request.page_token)
        return pb.ListHostsResponse(hosts=[host_message(h) for h in hosts], next_page_token=token)

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
        inventory = self.engine.inventory
        domains, token = inventory.storage_domain_page(request.page_size, request.page_token)
        return pb.ListStorageDomainsResponse(
            storage_domains=[domain_message(d) for d in domains], next_page_token=token
        )

    @rpc
    def AddDisk(
        self, request: pb.AddDiskRequest, context: grpc.ServicerContext
    ) -> pb.AddDiskResponse:
        disk, command = self.engine.add_disk(
            request.name,
            request.storage_domain_id,
            request.size_bytes,
            request.request_id,
            caller(context),
        )
        return pb.AddDiskResponse(
            disk=disk_message(disk) if disk else None, command=command_message(command)
        )

    @rpc
    def RemoveDisk(
        self, request: pb.RemoveDiskRequest, context: grpc.ServicerContext
    ) -> pb.RemoveDiskResponse:
        disk, command = self.engine.remove_disk(
            request.disk_id, request.request_id, caller(context)
        )
        return pb.RemoveDiskResponse(
            disk=disk_message(disk) if disk else None, command=command_message(command)
        )

    @rpc
    def MoveDisk(
        self, request: pb.MoveDiskRequest, context: grpc.ServicerContext
    ) -> pb.MoveDiskResponse:
        disk, command = self.engine.move_disk(
            request.disk_id,
            request.destination_storage_domain_id,
            request.request_id,
            caller(context),
        )
        return pb.MoveDiskResponse(
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
            request.vm_id,
            request.name,
            request.destination_storage_domain_id,
            request.request_id,
            caller(context),
        )
        return pb.AddVmTemplateResponse(
            template=template_message(template) if template else None,
            command=command_message(command),
        )

    @rpc
    def RemoveVmTemplate(
        self, request: pb.RemoveVmTemplateRequest, context: grpc.ServicerContext
    ) -> pb.RemoveVmTemplateResponse:
        template, command = self.engine.remove_vm_template(
            request.template_id, request.request_id, caller(context)
        )
        return pb.RemoveVmTemplateResponse(
            template=template_message(template) if template else None,
            command=command_message(command),
        )

    @rpc
    def AddVmFromTemplate(
        self, request: pb.AddVmFromTemplateRequest, context: grpc.ServicerContext
    ) -> pb.AddVmFromTemplateResponse:
        vm, command = self.engine.add_vm_from_template(
            request.template_id,
            request.name,
            request.destination_storage_domain_id,
            request.request_id,
            caller(context),
        )
        return pb.AddVmFromTemplateResponse(
            vm=vm_message(vm) if vm else None, command=command_message(command)
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
            command=command_message(self.engine.cancel(request.command_id, caller(context)))
        )

    @rpc
    def RetryCommand(
        self, request: pb.RetryCommandRequest, context: grpc.ServicerContext
    ) -> pb.RetryCommandResponse:
        view = self.engine.retry(request.command_id, request.request_id, caller(context))
        return pb.RetryCommandResponse(command=command_message(view))

    @rpc
    def ListCommandEvents(
        self, request: pb.ListCommandEventsRequest, context: grpc.ServicerContext
    ) -> pb.ListCommandEventsResponse:
        events, token = self.engine.command_events(
            request.command_id, request.page_size, request.page_token
        )
        return pb.ListCommandEventsResponse(
            events=[event_message(e) for e in events], next_page_token=token
        )

    @rpc
    def ReconcileOrphans(
        self, request: pb.ReconcileOrphansRequest, context: grpc.ServicerContext
    ) -> pb.ReconcileOrphansResponse:
        report = self.engine.reconcile()
        return reconcile_response(report, self.engine.reconciler.startup_report)


def _settled(command: pb.Command) -> bool:
    return command.status != pb.COMMAND_STATUS_ACTIVE and not command.tasks
