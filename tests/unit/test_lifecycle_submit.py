"""CommandLifecycle.submit (docs/design.md §4 steps 1 to 3, invariants I1, I2, I8): everything a
command needs is committed in ONE unit of work before any agent is called; a refusal writes
nothing; a repeated request makes one command; a conflict is validated again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from engine_service.adapters.agent_client import AgentRejected
from engine_service.domain.commands import CommandStatus
from engine_service.domain.hosts import HostStatus
from engine_service.domain.inventory import DiskStatus, EntityKind, Template, TemplateStatus
from engine_service.domain.tasks import new_id
from engine_service.service_layer.commands.add_disk import AddDisk
from engine_service.service_layer.commands.add_vm_template import AddVmTemplate
from engine_service.service_layer.commands.move_disk import MoveDisk
from engine_service.service_layer.idempotency import optional_request
from engine_service.service_layer.views import command_view, held_view
from service_common.errors import AlreadyExists, FailedPrecondition, NotFound
from tests.unit.fakes import Store
from tests.unit.world import World

REQUEST_ID = "5d1f3a2e-8c4b-4d6e-9f70-1a2b3c4d5e6f"


def world_with_vm(disks: int = 2) -> tuple[World, Any, str]:
    w = World()
    w.host()
    sd = w.domain()
    vm = w.vm(*(w.disk(sd, f"d{i}") for i in range(disks)))
    return w, vm, sd


def nothing_written(w: World) -> bool:
    return w.uow.commits == 0 and w.store.commands == {} and w.store.tasks == {}


def test_add_disk_commits_everything_in_one_unit_before_any_agent_call() -> None:
    w = World()
    host, sd = w.host(), w.domain()
    root = w.add_disk(sd, "data", 4096)
    first = w.uow.snapshots[0]
    assert w.agent_calls_at_commit[0] == 0
    command = first.commands[root]
    [child] = [c for c in first.commands.values() if c.parent_id == root]
    [placeholder] = first.tasks.values()
    assert (command.action_type, child.action_type) == ("AddDisk", "CreateVolume")
    assert (placeholder.command_id, placeholder.root_command_id) == (child.command_id, root)
    assert placeholder.vdsm_task_id is None and placeholder.host_id == host.host_id
    disk = first.disks[str(command.target_id)]
    assert (disk.name, disk.size_bytes, disk.status) == ("data", 4096, DiskStatus.LOCKED)
    assert set(first.locks) == {(EntityKind.DISK, disk.disk_id)}


def test_add_vm_template_commits_one_placeholder_per_disk_with_its_locks_and_copies() -> None:
    w, vm, sd = world_with_vm(disks=2)
    root = w.add_template(vm, sd, "golden")
    first = w.uow.snapshots[0]
    assert w.agent_calls_at_commit[0] == 0
    children = [c for c in first.commands.values() if c.parent_id == root]
    assert [c.action_type for c in children] == ["CreateImageTemplate"] * 2
    assert sorted(t.command_id for t in first.tasks.values()) == sorted(
        c.command_id for c in children
    )
    template = first.templates[str(first.commands[root].target_id)]
    assert (template.name, template.status) == ("golden", TemplateStatus.LOCKED)
    assert {first.disks[d].status for d in template.disk_ids + vm.disk_ids} == {DiskStatus.LOCKED}
    expected = {(EntityKind.VM, vm.vm_id)} | {(EntityKind.DISK, d) for d in vm.disk_ids}
    assert set(first.locks) == expected


def test_the_request_id_is_committed_with_the_command() -> None:
    w = World()
    w.host()
    root = w.add_disk(w.domain(), request_id=REQUEST_ID)
    stored = w.uow.snapshots[0].requests[("AddDisk", REQUEST_ID)]
    assert stored.result_id == root


def test_a_validation_failure_writes_nothing_and_calls_no_agent() -> None:
    w = World()
    w.host()
    with pytest.raises(NotFound, match="storage_domain_id"):
        w.add_disk(new_id())
    assert nothing_written(w) and w.agents.calls == []
    assert w.lifecycle.executing() == set()


def test_no_host_up_is_a_failed_precondition_and_writes_nothing() -> None:
    w = World()
    w.host("h1", HostStatus.MAINTENANCE)
    w.host("h2", HostStatus.NON_RESPONSIVE)
    sd = w.domain()
    with pytest.raises(FailedPrecondition, match="no host is UP"):
        w.add_disk(sd)
    assert nothing_written(w) and w.store.disks == {} and w.agents.calls == []


def test_the_same_request_id_and_arguments_return_the_first_command() -> None:
    w = World()
    host, sd = w.host(), w.domain()
    first = w.add_disk(sd, "d", 10, request_id=REQUEST_ID)
    again = w.add_disk(sd, "d", 10, request_id=REQUEST_ID)
    assert again == first
    assert [c for c in w.store.commands.values() if c.parent_id is None] == [w.command(first)]
    assert len(w.agent(host).called("start_task")) == 1


def test_the_same_request_id_with_other_arguments_is_already_exists() -> None:
    w = World()
    w.host()
    sd = w.domain()
    w.add_disk(sd, "d", 10, request_id=REQUEST_ID)
    commits = w.uow.commits
    with pytest.raises(AlreadyExists, match=f"request_id: {REQUEST_ID}"):
        w.add_disk(sd, "d", 11, request_id=REQUEST_ID)
    assert w.uow.commits == commits and len(w.store.disks) == 1


def test_request_ids_are_scoped_per_rpc() -> None:
    w, vm, sd = world_with_vm()
    disk_root = w.add_disk(sd, request_id=REQUEST_ID)
    template_root = w.add_template(vm, sd, request_id=REQUEST_ID)
    assert template_root != disk_root
    assert w.command(template_root).action_type == "AddVmTemplate"


def counting(make: Callable[[], AddDisk], made: list[AddDisk]) -> Callable[[], AddDisk]:
    def make_and_count() -> AddDisk:
        made.append(make())
        return made[-1]

    return make_and_count


def test_a_conflict_is_retried_with_a_fresh_command_validated_again() -> None:
    w = World()
    w.host()
    sd = w.domain()
    w.uow.conflict_next_commit()
    made: list[AddDisk] = []
    root = w.lifecycle.submit(counting(lambda: AddDisk.create("d", sd, 1), made), None).command_id
    assert len(made) == 2 and root == made[1].command_id
    assert [c.command_id for c in w.store.commands.values() if c.parent_id is None] == [root]
    assert w.command(root).status is CommandStatus.ACTIVE


def test_after_a_conflict_validation_reports_the_name_the_other_request_took() -> None:
    w, vm, sd = world_with_vm()
    theirs = Template(new_id(), "golden", vm.vm_id, TemplateStatus.LOCKED)

    def concurrent(store: Store) -> None:
        store.templates[theirs.template_id] = theirs

    w.uow.conflict_next_commit(concurrent)
    with pytest.raises(
        AlreadyExists, match=f"name: template 'golden' exists \\({theirs.template_id}"
    ):
        w.add_template(vm, sd, "golden")
    assert w.store.commands == {} and w.agents.calls == []
    assert {w.store.disks[d].status for d in vm.disk_ids} == {DiskStatus.OK}


def test_after_a_conflict_validation_reports_the_lock_the_other_request_took() -> None:
    w, vm, sd = world_with_vm()
    w.uow.conflict_next_commit(lambda store: w.lock(vm.disk_ids[1], "other-command"))
    with pytest.raises(FailedPrecondition, match=f"{vm.disk_ids[1]} is locked by command other"):
        w.add_template(vm, sd)
    assert w.store.commands == {}


def test_a_request_that_keeps_conflicting_gives_up_after_three_attempts() -> None:
    w = World()
    w.host()
    sd = w.domain()
    for _ in range(3):
        w.uow.conflict_next_commit()
    made: list[AddDisk] = []
    with pytest.raises(FailedPrecondition, match="kept conflicting"):
        w.lifecycle.submit(counting(lambda: AddDisk.create("d", sd, 1), made), None)
    assert len(made) == 3 and w.store.commands == {} and w.agents.calls == []


def test_a_duplicate_that_fails_on_what_the_first_request_committed_returns_its_id() -> None:
    """Under READ COMMITTED a duplicate can miss the first request's id, then trip over what
    the first committed a moment later: it answers with the first command's id."""
    w = World()
    w.host()
    sd = w.domain()
    request = optional_request("AddDisk", REQUEST_ID, name="d", storage_domain_id=sd, size_bytes=1)
    assert request is not None
    first = request.stored("first-command")

    class Racing(AddDisk):
        def validate(self, repo: Any) -> None:
            w.store.requests[("AddDisk", REQUEST_ID)] = first
            raise AlreadyExists("name: taken")

    submitted = w.lifecycle.submit(lambda: Racing.create("d", sd, 1), request)
    assert submitted.command_id == "first-command" and submitted.held is None
    assert w.store.commands == {}


# -- the reply: what the submission holds, or a read -------------------------------------------


def test_a_submission_whose_starts_were_all_stored_holds_what_a_read_back_shows() -> None:
    """The reply to AddVmTemplate needs no read: every start was accepted and stored, so the
    command is as its submission left it, and what it holds equals what a read would show."""
    w, vm, sd = world_with_vm(disks=3)
    submitted = w.lifecycle.submit(lambda: AddVmTemplate.create(vm.vm_id, "golden", sd), None)
    held = submitted.held
    assert held is not None
    assert held_view(held.records, held.tasks) == command_view(w.repo(), submitted.command_id)
    assert isinstance(held.entity, Template) and held.entity == w.repo().template(
        held.records[0].target_id
    )
    assert all(t.vdsm_task_id for t in held.tasks) and len(held.tasks) == 3


def test_a_new_disk_is_held_and_a_moved_one_is_read_back() -> None:
    w = World()
    w.host()
    src, dst = w.domain("src"), w.domain("dst")
    added = w.lifecycle.submit(lambda: AddDisk.create("d", src, 4096), None)
    assert added.held is not None and added.held.entity == w.repo().disk(
        added.held.records[0].target_id
    )
    disk = w.disk(src)
    moved = w.lifecycle.submit(lambda: MoveDisk.create(disk.disk_id, dst), None)
    assert moved.held is not None and moved.held.entity is None  # the type makes no entity


def test_a_submission_with_a_refused_start_holds_nothing_and_is_read_back() -> None:
    w, vm, sd = world_with_vm(disks=2)
    [host] = w.store.hosts.values()
    w.agent(host).fail("start_task", AgentRejected(grpc.StatusCode.INVALID_ARGUMENT, "no"), 1)
    submitted = w.lifecycle.submit(lambda: AddVmTemplate.create(vm.vm_id, "t", sd), None)
    assert submitted.held is None
    assert w.command(submitted.command_id).status is CommandStatus.FAILED
