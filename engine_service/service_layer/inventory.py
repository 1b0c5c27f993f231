"""Hosts, storage domains, disks, VMs and templates: adding them and reading them."""

from __future__ import annotations

import logging

from engine_service.adapters.agent_client import AgentPool, AgentRejected, AgentUnavailable
from engine_service.domain.hosts import Host, HostStatus
from engine_service.domain.inventory import Disk, StorageDomain, Template, Vm
from engine_service.domain.requests import ClientRequest, Conflict
from engine_service.domain.tasks import new_id
from engine_service.service_layer.idempotency import first_result, optional_request, record_request
from engine_service.service_layer.liveness import LastSeen
from engine_service.service_layer.unit_of_work import AbstractUnitOfWork, UnitOfWorkFactory
from engine_service.service_layer.views import (
    HostView,
    decode_name_token,
    decode_token,
    encode_name_token,
    encode_token,
    page_size,
)
from service_common.addresses import is_loopback_address
from service_common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from service_common.ids import require_uuid

log = logging.getLogger(__name__)

MAX_NAME = 255
MAX_DISK_BYTES = 1 << 40
MAX_VM_DISKS = 64


def require_name(field: str, value: str) -> str:
    if not value or not value.strip():
        raise InvalidArgument(field, "is required")
    if len(value) > MAX_NAME:
        raise InvalidArgument(field, f"is {len(value)} characters; at most {MAX_NAME}")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidArgument(field, "must not contain control characters")
    return value


def require_address(field: str, value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or len(value) > 300:
        raise InvalidArgument(field, f"{value[:80]!r} is not HOST:PORT")
    return value


def require_size(field: str, value: int) -> int:
    if not 0 < value <= MAX_DISK_BYTES:
        raise InvalidArgument(field, f"must be from 1 to {MAX_DISK_BYTES} bytes, not {value}")
    return value


PLAINTEXT_OFF_LOOPBACK = (
    "is not a loopback address, and this engine reaches agents in plaintext: configure "
    "--agent-tls-ca (certificates from `enginectl pki init`) or start the engine with "
    "--insecure to accept plaintext to agents beyond this machine"
)


class Inventory:
    """Use cases over hosts, storage domains, disks, VMs and templates. With
    `refuse_plaintext_off_loopback` (an engine without --agent-tls-ca nor --insecure), a new host
    must be at a loopback address."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        agents: AgentPool,
        agent_deadline: float = 3.0,
        refuse_plaintext_off_loopback: bool = False,
        last_seen: LastSeen | None = None,
    ):
        self.uow = uow
        self.agents = agents
        self.agent_deadline = agent_deadline
        self.refuse_plaintext_off_loopback = refuse_plaintext_off_loopback
        # The poller's: a host's last answer is shown as this process saw it (liveness.py).
        self.last_seen = last_seen or LastSeen()

    # -- hosts -------------------------------------------------------------------------------

    def add_host(self, name: str, address: str, request_id: str = "") -> HostView:
        name, address = require_name("name", name), require_address("address", address)
        if self.refuse_plaintext_off_loopback and not is_loopback_address(address):
            raise FailedPrecondition(f"address: {address} {PLAINTEXT_OFF_LOOPBACK}")
        request = optional_request("AddHost", request_id, name=name, address=address)
        with self.uow() as uow:
            existing = first_result(uow.repo, request)
            if existing is None:
                self._check_host_free(
                    uow.repo.host_by(name=name), uow.repo.host_by(address=address), name, address
                )
        if existing is not None:  # read outside the unit above: SQLite has one writer at a time
            return self.host(existing)
        if not self.agents.get(address).serving(self.agent_deadline):
            raise Unavailable(f"address: no agent answers at {address} (is vdsm-agent running?)")
        host = Host(new_id(), name, address, HostStatus.UP)
        try:
            with self.uow() as uow:
                uow.repo.add_host(host)
                record_request(uow.repo, request, host.host_id)
                uow.commit()
        except Conflict:
            return self.add_host(name, address, request_id)  # raced: answer as the winner says
        log.info("host %s added at %s", name, address, extra={"host": name})
        return HostView(host, 0)

    @staticmethod
    def _check_host_free(
        by_name: Host | None, by_address: Host | None, name: str, address: str
    ) -> None:
        if by_name is not None:
            raise AlreadyExists(f"name: host {name!r} exists ({by_name.host_id})")
        if by_address is not None:
            raise AlreadyExists(f"address: host {by_address.name!r} already has address {address}")

    def warn_of_plaintext_hosts(self) -> list[Host]:
        """At start: hosts registered at non-loopback addresses that this engine reaches in
        plaintext although new ones are refused (registered before, or by an engine with
        --insecure). They are still polled, as their commands must end; a warning names them."""
        if not self.refuse_plaintext_off_loopback:
            return []
        with self.uow(read_only=True) as uow:
            exposed = [h for h in uow.repo.hosts() if not is_loopback_address(h.address)]
        if exposed:
            log.warning(
                "%d host(s) at non-loopback addresses are reached in PLAINTEXT and still "
                "polled: %s; a new one there is refused. Configure --agent-tls-ca, or "
                "--insecure to accept this",
                len(exposed),
                ", ".join(f"{h.name} ({h.address})" for h in exposed[:20]),
            )
        return exposed

    def _view(self, host: Host, load: dict[str, int]) -> HostView:
        return HostView(self.last_seen.shown(host), load.get(host.host_id, 0))

    def host(self, host_id: str) -> HostView:
        host_id = require_uuid("host_id", host_id)
        with self.uow(read_only=True) as uow:
            host = uow.repo.host(host_id)
            if host is None:
                raise NotFound(f"host_id: no host {host_id}")
            return self._view(host, uow.repo.tasks_per_host())

    def hosts(self) -> list[HostView]:
        with self.uow(read_only=True) as uow:
            load = uow.repo.tasks_per_host()
            return [self._view(h, load) for h in uow.repo.hosts()]

    def host_page(self, size: int, token: str) -> tuple[list[HostView], str]:
        """A page of the hosts by name (keyset: after the last name of the page before)."""
        limit, after = page_size(size), decode_name_token("hosts", token)
        with self.uow(read_only=True) as uow:
            rows = uow.repo.hosts(after, limit + 1)
            load = uow.repo.tasks_per_host()
        more, rows = len(rows) > limit, rows[:limit]
        views = [self._view(h, load) for h in rows]
        return views, encode_name_token("hosts", rows[-1].name) if more else ""

    def set_host_maintenance(self, host_id: str, maintenance: bool) -> HostView:
        host_id = require_uuid("host_id", host_id)
        with self.uow() as uow:
            host = uow.repo.host(host_id, for_update=True)
            if host is None:
                raise NotFound(f"host_id: no host {host_id}")
            host.set_maintenance(maintenance)
            host.last_seen_at = self.last_seen.newest(host)
            uow.repo.save_hosts([host])
            uow.commit()
        log.info(
            "host %s: maintenance %s",
            host.name,
            "on" if maintenance else "off",
            extra={"host": host.name},
        )
        return self.host(host_id)

    def remove_host(self, host_id: str) -> None:
        host_id = require_uuid("host_id", host_id)
        with self.uow() as uow:
            host = uow.repo.host(host_id, for_update=True)
            if host is None:
                raise NotFound(f"host_id: no host {host_id}")
            tasks = uow.repo.tasks_per_host().get(host_id, 0)
            if tasks:
                raise FailedPrecondition(
                    f"host {host.name} still has {tasks} task(s); wait for them to be cleared"
                )
            uow.repo.remove_host(host_id)
            uow.repo.forget_sightings_of_host(host_id)
            uow.commit()
        log.info("host %s removed", host.name, extra={"host": host.name})

    # -- storage domains ---------------------------------------------------------------------

    def add_storage_domain(self, name: str, request_id: str = "") -> StorageDomain:
        name = require_name("name", name)
        request = optional_request("AddStorageDomain", request_id, name=name)
        with self.uow() as uow:
            existing = first_result(uow.repo, request)
            if existing is not None:
                found = uow.repo.storage_domain(existing)
                assert found is not None
                return found
            taken = uow.repo.storage_domain_by_name(name)
            if taken is not None:
                raise AlreadyExists(
                    f"name: storage domain {name!r} exists ({taken.storage_domain_id})"
                )
            hosts = uow.repo.hosts_with_status(HostStatus.UP)
            if not hosts:
                raise FailedPrecondition("no host is UP to create the storage domain on")
            address = hosts[0].address
        domain = StorageDomain(new_id(), name)
        try:
            self.agents.get(address).create_storage_domain(domain.storage_domain_id)
        except AgentUnavailable as exc:
            raise Unavailable(f"the host could not create the storage domain: {exc}") from None
        except AgentRejected as exc:
            raise FailedPrecondition(
                f"the host refused to create the storage domain: {exc}"
            ) from None
        try:
            with self.uow() as uow:
                uow.repo.add_storage_domain(domain)
                record_request(uow.repo, request, domain.storage_domain_id)
                uow.commit()
        except Conflict:
            return self.add_storage_domain(name, request_id)
        log.info("storage domain %s created as %s", name, domain.storage_domain_id)
        return domain

    def storage_domains(self) -> list[StorageDomain]:
        with self.uow(read_only=True) as uow:
            return uow.repo.storage_domains()

    def storage_domain_page(self, size: int, token: str) -> tuple[list[StorageDomain], str]:
        """A page of the storage domains by name, and the token of the next page ("" if none)."""
        limit, after = page_size(size), decode_name_token("domains", token)
        with self.uow(read_only=True) as uow:
            rows = uow.repo.storage_domains(after, limit + 1)
        more, rows = len(rows) > limit, rows[:limit]
        return rows, encode_name_token("domains", rows[-1].name) if more else ""

    # -- disks -------------------------------------------------------------------------------

    def disk(self, disk_id: str) -> Disk:
        disk_id = require_uuid("disk_id", disk_id)
        with self.uow(read_only=True) as uow:
            disk = uow.repo.disk(disk_id)
            if disk is None:
                raise NotFound(f"disk_id: no disk {disk_id}")
            return disk

    def disks(self, size: int, token: str) -> tuple[list[Disk], str]:
        limit, after = page_size(size), decode_token(token)
        with self.uow(read_only=True) as uow:
            rows = uow.repo.disk_page(after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_token(rows[-1].created_at, rows[-1].disk_id) if more else ""

    # -- VMs ---------------------------------------------------------------------------------

    def add_vm(self, name: str, disk_ids: list[str], request_id: str = "") -> Vm:
        name = require_name("name", name)
        if len(disk_ids) > MAX_VM_DISKS:
            raise InvalidArgument("disk_ids", f"has {len(disk_ids)} disks; at most {MAX_VM_DISKS}")
        ids = [require_uuid(f"disk_ids[{i}]", d) for i, d in enumerate(disk_ids)]
        if len(set(ids)) != len(ids):
            raise InvalidArgument("disk_ids", "lists a disk more than once")
        request = optional_request("AddVm", request_id, name=name, disk_ids=ids)
        with self.uow() as uow:
            existing = first_result(uow.repo, request)
            if existing is None:
                vm = self._insert_vm(uow, name, ids, request)
        if existing is not None:  # read outside the unit above: SQLite has one writer at a time
            return self.vm(existing)
        return vm

    @staticmethod
    def _insert_vm(
        uow: AbstractUnitOfWork, name: str, ids: list[str], request: ClientRequest | None
    ) -> Vm:
        found = uow.repo.disks(ids)
        for i, disk_id in enumerate(ids):
            if disk_id not in found:
                raise NotFound(f"disk_ids[{i}]: no disk {disk_id}")
            if (why := found[disk_id].unusable_because()) is not None:
                raise FailedPrecondition(f"disk_ids[{i}]: {why}")
        vm = Vm(new_id(), name, tuple(ids))
        uow.repo.add_vm(vm)
        record_request(uow.repo, request, vm.vm_id)
        uow.commit()
        return vm

    def vm(self, vm_id: str) -> Vm:
        vm_id = require_uuid("vm_id", vm_id)
        with self.uow(read_only=True) as uow:
            vm = uow.repo.vm(vm_id)
            if vm is None:
                raise NotFound(f"vm_id: no VM {vm_id}")
            return vm

    # -- templates ---------------------------------------------------------------------------

    def template(self, template_id: str) -> Template:
        template_id = require_uuid("template_id", template_id)
        with self.uow(read_only=True) as uow:
            found = uow.repo.template(template_id)
            if found is None:
                raise NotFound(f"template_id: no template {template_id}")
            return found

    def templates(self, size: int, token: str) -> tuple[list[Template], str]:
        limit, after = page_size(size), decode_token(token)
        with self.uow(read_only=True) as uow:
            rows = uow.repo.template_page(after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1] if rows else None
        return rows, encode_token(last.created_at, last.template_id) if more and last else ""
