"""The nemesis's workload: two clients alternating AddDisk, AddVmTemplate and CancelCommand,
each from a random.Random seeded from the run's seed, every create with a request id of its own
that is kept so that it can be sent again after healing."""

from __future__ import annotations

import contextlib
import random
import threading
import uuid
from dataclasses import dataclass, field

import grpc

from durable_virt_tasks_client import CallError, EngineClient
from harness.nemesis.schedule import DISK_BYTES


@dataclass
class Create:
    """One create the workload sent: enough to send it again with the same request id."""

    kind: str  # AddDisk | AddVmTemplate
    request_id: str
    args: tuple[str, ...]
    command_id: str = ""  # "" while the client has not learnt it


@dataclass
class Workload:
    """The clients' work: every create sent (to send again after healing) and the cancels."""

    client: EngineClient
    seed: int
    domains: tuple[str, str]
    vms: list[str]
    creates: list[Create] = field(default_factory=list)
    cancels: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, worker: int, stop: threading.Event) -> None:
        rng = random.Random(self.seed * 1000 + worker)
        n = 0
        while not stop.is_set():
            n += 1
            roll = rng.random()
            if roll < 0.45:
                self.create(Create("AddDisk", str(uuid.uuid4()), (f"w{worker}-disk{n}",)))
            elif roll < 0.85:
                vm = rng.choice(self.vms)
                name = f"w{worker}-template{n}"
                self.create(Create("AddVmTemplate", str(uuid.uuid4()), (vm, name)))
            else:
                self.cancel(rng)
            stop.wait(rng.uniform(0.05, 0.4))

    def send(self, create: Create) -> None:
        """Send (or send again) one create with its request id; records the command id."""
        src, dst = self.domains
        if create.kind == "AddDisk":
            _, command = self.client.add_disk(
                create.args[0], src, DISK_BYTES, request_id=create.request_id
            )
        else:
            vm, name = create.args
            _, command = self.client.add_vm_template(vm, name, dst, request_id=create.request_id)
        if create.command_id and create.command_id != command.command_id:
            raise AssertionError(
                f"request id {create.request_id} answered {command.command_id}, "
                f"first {create.command_id}"
            )
        create.command_id = command.command_id

    def create(self, create: Create) -> None:
        with self.lock:
            self.creates.append(create)
        try:
            self.send(create)
        except CallError as error:
            # Refused (a locked disk, no host up) is an answer; UNAVAILABLE after every retry
            # is not: the create is sent again after healing.
            if error.code != grpc.StatusCode.UNAVAILABLE:
                create.command_id = f"refused:{error.code.name}"

    def cancel(self, rng: random.Random) -> None:
        with self.lock:
            started = [c.command_id for c in self.creates if is_command(c.command_id)]
        if not started:
            return
        with contextlib.suppress(CallError):
            self.client.cancel_command(rng.choice(started[-10:]))
            self.cancels += 1


def is_command(command_id: str) -> bool:
    return bool(command_id) and not command_id.startswith("refused:")
