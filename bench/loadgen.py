"""The load benchmark's workload: AddDisk and AddVmTemplate alternating, through the engine's
gRPC API, and a janitor that removes what they made once their command has ended, so that the
inventory stays level and the database can reach a steady state (bench/load.py).

- Operation i is an AddDisk when i is even, an AddVmTemplate of a VM from the pool when odd
  (an AddDisk instead when no VM is free: counted). A VM is busy from its AddVmTemplate until
  the janitor has removed that template (a removal the engine accepts proves the template's
  command ended, and with it the VM's lock).
- The janitor tries to remove each made disk or template `settle` seconds after it was made
  (RemoveDisk, RemoveVmTemplate), and again every `retry` seconds while the engine answers
  FAILED_PRECONDITION (still locked: its copies still run). NOT_FOUND (the add failed and left
  nothing) ends the attempt too. Removals are timed apart from the adds.
"""

from __future__ import annotations

import heapq
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc
from sqlalchemy import insert

from engine_service.adapters.db import make_engine
from engine_service.adapters.orm import DiskRow, VmDiskRow, VmRow, utcnow
from engine_service.v1 import engine_service_pb2 as epb
from engine_service.v1 import engine_service_pb2_grpc as epb_grpc

TIMEOUT = 60.0


@dataclass(frozen=True)
class Sample:
    """One operation: when it was due (seconds from the start of its run), how long it took
    from then until it returned, its kind, and whether the engine accepted it."""

    due: float
    latency: float
    kind: str
    ok: bool


def write_vms(
    url: str, storage_domain_id: str, images: Sequence[str], size: int, count: int
) -> list[str]:
    """`count` VMs, each with one disk per source image, written straight into the engine's
    database (setup, not measured); their ids."""
    now = utcnow()
    vms: list[dict[str, Any]] = []
    disks: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    for _ in range(count):
        vm = str(uuid.uuid4())
        vms.append({"vm_id": vm, "name": f"load-{vm[:8]}", "created_at": now})
        for position, image in enumerate(images):
            disk = str(uuid.uuid4())
            disks.append(
                {
                    "disk_id": disk,
                    "name": f"disk{position}",
                    "storage_domain_id": storage_domain_id,
                    "image_id": image,
                    "size_bytes": size,
                    "status": "OK",
                    "created_at": now,
                }
            )
            links.append({"vm_id": vm, "position": position, "disk_id": disk})
    db = make_engine(url)
    try:
        with db.begin() as conn:
            conn.execute(insert(VmRow), vms)
            conn.execute(insert(DiskRow), disks)
            conn.execute(insert(VmDiskRow), links)
    finally:
        db.dispose()
    return [str(vm["vm_id"]) for vm in vms]


@dataclass(order=True)
class Made:
    """Something an add made, due for removal at `due` (monotonic seconds)."""

    due: float
    kind: str = field(compare=False)  # "disk" or "template"
    entity_id: str = field(compare=False)
    vm_id: str = field(compare=False, default="")


class Workload:
    """The adds (`add`, from any number of threads) and the janitor removing what they made."""

    def __init__(
        self,
        channel: grpc.Channel,
        storage_domain_id: str,
        vms: Sequence[str],
        disk_bytes: int,
        settle: float = 2.0,
        retry: float = 0.5,
    ) -> None:
        self.stub = epb_grpc.EngineServiceStub(channel)
        self.storage_domain_id = storage_domain_id
        self.disk_bytes = disk_bytes
        self.settle = settle
        self.retry = retry
        self.counts: Counter[str] = Counter()
        self.removals: list[tuple[float, float]] = []  # (monotonic end, seconds)
        self._free = list(vms)
        self._due: list[Made] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._removers = ThreadPoolExecutor(4, thread_name_prefix="janitor")
        self._thread = threading.Thread(target=self._janitor, name="janitor", daemon=True)

    # -- the adds ----------------------------------------------------------------------------

    def add(self, number: int) -> tuple[str, bool]:
        """Operation `number`: (its kind, whether the engine accepted it)."""
        vm = ""
        if number % 2:
            with self._lock:
                vm = self._free.pop() if self._free else ""
            if not vm:
                self.count("template skipped: no free VM")
        try:
            if vm:
                reply = self.stub.AddVmTemplate(
                    epb.AddVmTemplateRequest(
                        vm_id=vm,
                        name=f"load-{uuid.uuid4()}",
                        destination_storage_domain_id=self.storage_domain_id,
                    ),
                    timeout=TIMEOUT,
                )
                self._made(Made(0.0, "template", reply.template.template_id, vm))
                return "AddVmTemplate", True
            disk = self.stub.AddDisk(
                epb.AddDiskRequest(
                    name="load",
                    storage_domain_id=self.storage_domain_id,
                    size_bytes=self.disk_bytes,
                ),
                timeout=TIMEOUT,
            )
            self._made(Made(0.0, "disk", disk.disk.disk_id))
            return "AddDisk", True
        except grpc.RpcError as exc:
            self.count(f"add failed: {exc.code().name}")
            if vm:
                self._release(vm)
            return ("AddVmTemplate" if vm else "AddDisk"), False

    def count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    @property
    def backlog(self) -> int:
        """Made and not yet removed."""
        with self._lock:
            return len(self._due)

    @property
    def free_vms(self) -> int:
        with self._lock:
            return len(self._free)

    def _made(self, made: Made) -> None:
        made.due = time.monotonic() + self.settle
        with self._lock:
            heapq.heappush(self._due, made)

    def _release(self, vm: str) -> None:
        with self._lock:
            self._free.append(vm)

    # -- the janitor -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._removers.shutdown(wait=True, cancel_futures=True)

    def _janitor(self) -> None:
        while not self._stop.wait(0.05):
            now = time.monotonic()
            with self._lock:
                ready = []
                while self._due and self._due[0].due <= now:
                    ready.append(heapq.heappop(self._due))
            for made in ready:
                self._removers.submit(self._remove, made)

    def _remove(self, made: Made) -> None:
        began = time.monotonic()
        try:
            if made.kind == "template":
                self.stub.RemoveVmTemplate(
                    epb.RemoveVmTemplateRequest(template_id=made.entity_id), timeout=TIMEOUT
                )
            else:
                self.stub.RemoveDisk(epb.RemoveDiskRequest(disk_id=made.entity_id), timeout=TIMEOUT)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:  # still locked: later
                made.due = time.monotonic() + self.retry
                with self._lock:
                    heapq.heappush(self._due, made)
                return
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                self.count(f"removal failed: {exc.code().name}")
                made.due = time.monotonic() + self.retry * 4
                with self._lock:
                    heapq.heappush(self._due, made)
                return
            self.count(f"{made.kind} gone before its removal")
        else:
            ended = time.monotonic()
            with self._lock:
                self.removals.append((ended, ended - began))
                self.counts[f"{made.kind} removed"] += 1
        if made.vm_id:
            self._release(made.vm_id)


def closed_loop(workload: Workload, clients: int, seconds: float) -> tuple[float, list[Sample]]:
    """`clients` threads adding one after another for `seconds`: (adds per second, samples)."""
    samples: list[Sample] = []
    lock = threading.Lock()
    numbers = iter(range(1 << 62))
    began = time.monotonic()
    deadline = began + seconds

    def client() -> None:
        while (start := time.monotonic()) < deadline:
            with lock:
                number = next(numbers)
            kind, ok = workload.add(number)
            sample = Sample(start - began, time.monotonic() - start, kind, ok)
            with lock:
                samples.append(sample)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    return sum(s.ok for s in samples) / elapsed, samples


def open_loop(
    workload: Workload,
    rate: float,
    seconds: float,
    began: float,
    workers: int = 64,
    inflight: dict[int, float] | None = None,
) -> list[Sample]:
    """Adds due at `rate` per second from `began` (monotonic) for `seconds`, whatever the
    engine's pace: each one's latency runs from when it was due (a late start counts), so a
    stall shows in every request it delays. `inflight`, if given, holds each add not yet
    answered (its number -> when it was due) for a watcher to read."""
    samples: list[Sample] = []
    lock = threading.Lock()
    waiting = inflight if inflight is not None else {}

    def one(number: int, due: float) -> None:
        waiting[number] = due
        try:
            kind, ok = workload.add(number)
        finally:
            waiting.pop(number, None)
        sample = Sample(due - began, time.monotonic() - due, kind, ok)
        with lock:
            samples.append(sample)

    with ThreadPoolExecutor(workers, thread_name_prefix="load") as pool:
        number = 0
        while (due := began + number / rate) < began + seconds:
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            pool.submit(one, number, due)
            number += 1
    return samples
