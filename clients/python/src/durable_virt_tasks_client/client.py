"""A small typed client of the engine: one method per use, retries on `UNAVAILABLE`, a request
id per logical call, pages followed, and failover between an active engine and its standbys.

    with EngineClient.connect("engine:50051", ca=Path("ca.pem"), token=SECRET) as engine:
        host = engine.add_host("host1", "host1:54321")
        disk, command = engine.add_disk("disk1", domain_id, 1 << 30)
        done = engine.wait(command.command_id)

Request ids: every call that starts or creates something (AddHost, AddStorageDomain, AddDisk,
AddVm, AddVmTemplate, RemoveDisk, MoveDisk, RemoveVmTemplate, AddVmFromTemplate, RetryCommand)
carries a request id. The client makes one (a UUID) when the caller
gives none, and sends the same one on every attempt of that call, so a retry after a lost reply
gets the first result, never a second disk or command. A caller that may itself retry across
processes (a job runner restarted) passes its own, stored beside its own work.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from durable_virt_tasks_client.channels import open_channels
from durable_virt_tasks_client.errors import CallError
from durable_virt_tasks_client.retry import RetryPolicy
from durable_virt_tasks_client.v1 import engine_service_pb2 as pb
from durable_virt_tasks_client.v1 import engine_service_pb2_grpc as pb_grpc

M = TypeVar("M", bound=Message)
TERMINAL = frozenset(
    {pb.COMMAND_STATUS_SUCCEEDED, pb.COMMAND_STATUS_FAILED, pb.COMMAND_STATUS_CANCELLED}
)
DEFAULT_TIMEOUT = 30.0


def is_terminal(command: pb.Command) -> bool:
    return command.status in TERMINAL


class EngineClient:
    """The engine's API behind typed methods. Thread-safe: share one per process.

    `stubs` are the engine's addresses as stubs, in order of preference: an active engine and
    its standbys. A call that answers `UNAVAILABLE` (not ready: a standby, or an engine that
    lost its database) is tried again on the next one, after the policy's wait.
    """

    def __init__(
        self,
        stubs: Sequence[Any],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        sleep: Callable[[float], None] = time.sleep,
        new_request_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        rng: random.Random | None = None,
        channels: Sequence[grpc.Channel] = (),
    ) -> None:
        if not stubs:
            raise ValueError("at least one engine address is needed")
        self._stubs = list(stubs)
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self._metadata = tuple(metadata)
        self._sleep = sleep
        self._new_request_id = new_request_id
        self._rng = rng
        self._channels = list(channels)
        self._current = 0
        self._lock = threading.Lock()

    @classmethod
    def connect(
        cls,
        target: str,
        *,
        ca: bytes | Path | None = None,
        cert: bytes | Path | None = None,
        key: bytes | Path | None = None,
        server_name: str | None = None,
        token: str | None = None,
        insecure: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> EngineClient:
        """A client of the engine at `target` ("host:port", or several separated by commas).

        With `ca`, TLS (and mutual TLS with `cert` and `key`); the token then rides as call
        credentials. Without it, plaintext, which only a loopback address may use unless
        `insecure` says so (as the servers refuse to listen in plaintext elsewhere).
        """
        channels, metadata = open_channels(target, ca, cert, key, server_name, token, insecure)
        return cls(
            [pb_grpc.EngineServiceStub(c) for c in channels],
            timeout=timeout,
            retry=retry,
            metadata=metadata,
            channels=channels,
        )

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the one way every call goes ------------------------------------------------------------

    def call(self, method: str, request: Message, *, timeout: float | None = None) -> Any:
        """`method` (an RPC name, e.g. "GetCommand") with `request`, retried by the policy. A
        request with an empty `request_id` field gets one, kept for every attempt."""
        carries_id: Any = request  # an Add* or RetryCommand request: it has the field
        if "request_id" in request.DESCRIPTOR.fields_by_name and not carries_id.request_id:
            carries_id.request_id = self._new_request_id()
        waits = self._retry.waits(self._rng)
        attempt = 1
        while True:
            stub = self._stub()
            try:
                return getattr(stub, method)(
                    request,
                    timeout=timeout if timeout is not None else self._timeout,
                    metadata=self._metadata or None,
                )
            except grpc.RpcError as error:
                self._after_failure(method, error, stub, waits, attempt)
                attempt += 1

    def _after_failure(
        self, method: str, error: grpc.RpcError, stub: Any, waits: Iterator[float], attempt: int
    ) -> None:
        """Attempt `attempt` of `method` failed: raise CallError unless the policy retries its
        status and has a wait left; else prefer the next address and wait."""
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        wait = next(waits, None) if self._retry.retries(code) else None
        if wait is None:
            raise CallError.of(method, error, attempt) from error
        self._next_stub(stub)
        self._sleep(wait)

    def _stub(self) -> Any:
        with self._lock:
            return self._stubs[self._current]

    def _next_stub(self, failed: Any) -> None:
        """After `failed` answered UNAVAILABLE, prefer the next address (if no other thread
        moved on already)."""
        with self._lock:
            if self._stubs[self._current] is failed:
                self._current = (self._current + 1) % len(self._stubs)

    def _pages(self, method: str, request: Any, field: str) -> Iterator[Any]:
        while True:
            reply = self.call(method, request)
            yield from getattr(reply, field)
            if not reply.next_page_token:
                return
            request.page_token = reply.next_page_token

    # -- hosts ------------------------------------------------------------------------------------

    def add_host(self, name: str, address: str, *, request_id: str = "") -> pb.Host:
        request = pb.AddHostRequest(name=name, address=address, request_id=request_id)
        host: pb.Host = self.call("AddHost", request).host
        return host

    def hosts(self, *, page_size: int = 0) -> Iterator[pb.Host]:
        return self._pages("ListHosts", pb.ListHostsRequest(page_size=page_size), "hosts")

    def set_host_maintenance(self, host_id: str, maintenance: bool) -> pb.Host:
        request = pb.SetHostMaintenanceRequest(host_id=host_id, maintenance=maintenance)
        host: pb.Host = self.call("SetHostMaintenance", request).host
        return host

    def remove_host(self, host_id: str) -> None:
        """Forget a host. A retry that finds it gone (NOT_FOUND after an attempt that answered
        UNAVAILABLE) means an earlier attempt removed it: that is success."""
        try:
            self.call("RemoveHost", pb.RemoveHostRequest(host_id=host_id))
        except CallError as error:
            if not (error.code == grpc.StatusCode.NOT_FOUND and error.attempts > 1):
                raise

    def confirm_host_rebooted(self, host_id: str, reason: str) -> pb.ConfirmHostRebootedResponse:
        request = pb.ConfirmHostRebootedRequest(host_id=host_id, reason=reason)
        reply: pb.ConfirmHostRebootedResponse = self.call("ConfirmHostRebooted", request)
        return reply

    # -- storage, disks, VMs, templates -----------------------------------------------------------

    def add_storage_domain(self, name: str, *, request_id: str = "") -> pb.StorageDomain:
        request = pb.AddStorageDomainRequest(name=name, request_id=request_id)
        domain: pb.StorageDomain = self.call("AddStorageDomain", request).storage_domain
        return domain

    def storage_domains(self, *, page_size: int = 0) -> Iterator[pb.StorageDomain]:
        request = pb.ListStorageDomainsRequest(page_size=page_size)
        return self._pages("ListStorageDomains", request, "storage_domains")

    def add_disk(
        self, name: str, storage_domain_id: str, size_bytes: int, *, request_id: str = ""
    ) -> tuple[pb.Disk, pb.Command]:
        """A new disk (LOCKED until its command ends) and the command creating it."""
        request = pb.AddDiskRequest(
            name=name,
            storage_domain_id=storage_domain_id,
            size_bytes=size_bytes,
            request_id=request_id,
        )
        reply: pb.AddDiskResponse = self.call("AddDisk", request)
        return reply.disk, reply.command

    def remove_disk(self, disk_id: str, *, request_id: str = "") -> pb.Command:
        """Start removing a disk (never undone); the RemoveDisk command."""
        request = pb.RemoveDiskRequest(disk_id=disk_id, request_id=request_id)
        reply: pb.RemoveDiskResponse = self.call("RemoveDisk", request)
        return reply.command

    def move_disk(
        self, disk_id: str, destination_storage_domain_id: str, *, request_id: str = ""
    ) -> tuple[pb.Disk, pb.Command]:
        """Start moving a disk (copy, then remove the source); the disk and its command."""
        request = pb.MoveDiskRequest(
            disk_id=disk_id,
            destination_storage_domain_id=destination_storage_domain_id,
            request_id=request_id,
        )
        reply: pb.MoveDiskResponse = self.call("MoveDisk", request)
        return reply.disk, reply.command

    def get_disk(self, disk_id: str) -> pb.Disk:
        disk: pb.Disk = self.call("GetDisk", pb.GetDiskRequest(disk_id=disk_id)).disk
        return disk

    def disks(self, *, page_size: int = 0) -> Iterator[pb.Disk]:
        return self._pages("ListDisks", pb.ListDisksRequest(page_size=page_size), "disks")

    def add_vm(self, name: str, disk_ids: Sequence[str], *, request_id: str = "") -> pb.Vm:
        request = pb.AddVmRequest(name=name, disk_ids=list(disk_ids), request_id=request_id)
        vm: pb.Vm = self.call("AddVm", request).vm
        return vm

    def get_vm(self, vm_id: str) -> pb.Vm:
        vm: pb.Vm = self.call("GetVm", pb.GetVmRequest(vm_id=vm_id)).vm
        return vm

    def add_vm_template(
        self, vm_id: str, name: str, destination_storage_domain_id: str, *, request_id: str = ""
    ) -> tuple[pb.VmTemplate, pb.Command]:
        """A new template of the VM's disks (LOCKED until its command ends) and its command."""
        request = pb.AddVmTemplateRequest(
            vm_id=vm_id,
            name=name,
            destination_storage_domain_id=destination_storage_domain_id,
            request_id=request_id,
        )
        reply: pb.AddVmTemplateResponse = self.call("AddVmTemplate", request)
        return reply.template, reply.command

    def remove_vm_template(self, template_id: str, *, request_id: str = "") -> pb.Command:
        """Start removing a template and its disks (never undone); the command."""
        request = pb.RemoveVmTemplateRequest(template_id=template_id, request_id=request_id)
        reply: pb.RemoveVmTemplateResponse = self.call("RemoveVmTemplate", request)
        return reply.command

    def add_vm_from_template(
        self,
        template_id: str,
        name: str,
        destination_storage_domain_id: str,
        *,
        request_id: str = "",
    ) -> tuple[pb.Vm, pb.Command]:
        """A new VM whose disks are copies of the template's, and the command making them."""
        request = pb.AddVmFromTemplateRequest(
            template_id=template_id,
            name=name,
            destination_storage_domain_id=destination_storage_domain_id,
            request_id=request_id,
        )
        reply: pb.AddVmFromTemplateResponse = self.call("AddVmFromTemplate", request)
        return reply.vm, reply.command

    def get_vm_template(self, template_id: str) -> pb.VmTemplate:
        request = pb.GetVmTemplateRequest(template_id=template_id)
        template: pb.VmTemplate = self.call("GetVmTemplate", request).template
        return template

    def vm_templates(self, *, page_size: int = 0) -> Iterator[pb.VmTemplate]:
        request = pb.ListVmTemplatesRequest(page_size=page_size)
        return self._pages("ListVmTemplates", request, "templates")

    # -- commands ---------------------------------------------------------------------------------

    def get_command(self, command_id: str) -> pb.Command:
        request = pb.GetCommandRequest(command_id=command_id)
        command: pb.Command = self.call("GetCommand", request).command
        return command

    def commands(
        self,
        *,
        status: int = pb.COMMAND_STATUS_UNSPECIFIED,
        action_type: str = "",
        target_id: str = "",
        host_id: str = "",
        failure_reason_contains: str = "",
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        ended_after: datetime | None = None,
        ended_before: datetime | None = None,
        page_size: int = 0,
    ) -> Iterator[pb.Command]:
        """Commands newest first, every page; the filters combine with AND."""
        request = pb.ListCommandsRequest(
            status=status,  # type: ignore[arg-type]
            action_type=action_type,
            target_id=target_id,
            host_id=host_id,
            failure_reason_contains=failure_reason_contains,
            page_size=page_size,
        )
        for name, moment in (
            ("created_after", created_after),
            ("created_before", created_before),
            ("ended_after", ended_after),
            ("ended_before", ended_before),
        ):
            if moment is not None:
                if moment.tzinfo is None:
                    raise ValueError(f"{name}: give a timezone-aware datetime")
                stamp = Timestamp()
                stamp.FromDatetime(moment)
                getattr(request, name).CopyFrom(stamp)
        return self._pages("ListCommands", request, "commands")

    def command_events(self, command_id: str, *, page_size: int = 0) -> Iterator[pb.CommandEvent]:
        """A command's history, oldest first."""
        request = pb.ListCommandEventsRequest(command_id=command_id, page_size=page_size)
        return self._pages("ListCommandEvents", request, "events")

    def cancel_command(self, command_id: str) -> pb.Command:
        request = pb.CancelCommandRequest(command_id=command_id)
        command: pb.Command = self.call("CancelCommand", request).command
        return command

    def retry_command(self, command_id: str, *, request_id: str = "") -> pb.Command:
        """A FAILED or CANCELLED command run again, as a new command."""
        request = pb.RetryCommandRequest(command_id=command_id, request_id=request_id)
        command: pb.Command = self.call("RetryCommand", request).command
        return command

    def reconcile_orphans(self) -> pb.ReconcileOrphansResponse:
        reply: pb.ReconcileOrphansResponse = self.call(
            "ReconcileOrphans", pb.ReconcileOrphansRequest()
        )
        return reply

    def watch(self, command_id: str) -> Iterator[pb.Command]:
        """The command now and after each change, until it has ended and its tasks are cleared.
        A stream the engine drops (`UNAVAILABLE`: restarted, failed over) is opened again by
        the policy, and a state already seen is not yielded twice."""
        request = pb.WatchCommandRequest(command_id=command_id)
        waits = self._retry.waits(self._rng)
        last: pb.Command | None = None
        attempt = 1
        while True:
            stub = self._stub()
            try:
                stream = stub.WatchCommand(request, metadata=self._metadata or None)
                for reply in stream:
                    if reply.command != last:
                        last = reply.command
                        yield reply.command
                return
            except grpc.RpcError as error:
                self._after_failure("WatchCommand", error, stub, waits, attempt)
                attempt += 1

    def wait(self, command_id: str, *, timeout: float | None = None) -> pb.Command:
        """The command once it has ended (SUCCEEDED, FAILED or CANCELLED), polled with
        GetCommand; `TimeoutError` if it has not after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = 0.05
        while True:
            command = self.get_command(command_id)
            if is_terminal(command):
                return command
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"command {command_id} still active after {timeout} s")
            self._sleep(interval)
            interval = min(interval * 2, 1.0)
