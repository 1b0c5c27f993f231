"""Commands in phases (MoveDisk) and the removals (RemoveDisk, RemoveVmTemplate), and
AddVmFromTemplate, over the fakes: each phase's placeholders commit, with the previous phase's
end, before any agent call of that phase; the source is deleted only after its copy is recorded
as the disk; whatever ends a move, the disk is OK and no image nobody owns is kept."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from engine_service.domain.commands import CommandStatus
from engine_service.domain.history import EventKind
from engine_service.domain.inventory import Disk, DiskStatus, Template, TemplateStatus
from engine_service.domain.tasks import TaskCleanup, Verb, new_id
from engine_service.service_layer.commands.add_vm_from_template import AddVmFromTemplate
from engine_service.service_layer.commands.base import CommandBase
from engine_service.service_layer.commands.move_disk import MoveDisk
from engine_service.service_layer.commands.remove_disk import RemoveDisk
from engine_service.service_layer.commands.remove_vm_template import RemoveVmTemplate
from engine_service.service_layer.idempotency import optional_request
from service_common.errors import FailedPrecondition, NotFound
from service_common.vdsm_tasks import TaskResult
from tests.unit.world import World


def submit(w: World, make: Any) -> str:
    return w.lifecycle.submit(make, optional_request("X", "")).command_id


def moving() -> tuple[World, Any, Disk, str, str]:
    w = World()
    host = w.host()
    src, dst = w.domain("src"), w.domain("dst")
    disk = w.disk(src, "data")
    root = submit(w, lambda: MoveDisk.create(disk.disk_id, dst))
    return w, host, disk, dst, root


def finish_all(w: World, host: Any, root: str, result: TaskResult = TaskResult.SUCCESS) -> None:
    """Every sent task of the command finishes on its agent; a poll records it and the manager
    ends (or advances) what is decided."""
    for task in w.tasks(root):
        if task.vdsm_task_id is not None and task.cleanup is TaskCleanup.NONE:
            w.finish_on_agent(task, result)
    w.record_poll(host)
    w.manager().end_decided_commands()


def test_a_move_copies_then_records_the_copy_then_removes_the_source() -> None:
    w, host, disk, dst, root = moving()
    (copy,) = w.tasks(root)
    assert (copy.verb, copy.vdsm_task_id is not None) == (Verb.COPY_IMAGE, True)

    calls_before = len(w.agents.calls)
    finish_all(w, host, root)

    moved = w.store.disks[disk.disk_id]
    assert (moved.storage_domain_id, moved.status) == (dst, DiskStatus.LOCKED)
    assert moved.image_id == copy.image_id, "the disk is its verified copy now"
    removal = next(t for t in w.tasks(root) if t.verb == Verb.REMOVE_IMAGE)
    assert (removal.storage_domain_id, removal.image_id) == (disk.storage_domain_id, disk.image_id)
    assert removal.vdsm_task_id is not None, "phase 2 started right after its commit"
    # The commit that ended phase 1 and added phase 2's placeholder came before phase 2's call.
    starts = [i for i, c in enumerate(w.agents.calls) if c[1] == "start_task"]
    assert starts[-1] >= calls_before and w.agent_calls_at_commit[-2] <= starts[-1]
    assert w.store.tasks[copy.task_id].cleanup is TaskCleanup.CLEAR, "phase 1's copy is kept"
    kinds = [e.kind for e in w.repo().events_of(root, 0, 1000)]
    assert EventKind.PHASE_ENDED in kinds and EventKind.ENDED not in kinds

    finish_all(w, host, root)

    assert w.command(root).status is CommandStatus.SUCCEEDED
    assert w.store.disks[disk.disk_id].status is DiskStatus.OK
    assert w.store.locks == {}


def test_a_move_that_fails_copying_leaves_the_disk_where_it_was() -> None:
    w, host, disk, _, root = moving()
    (copy,) = w.tasks(root)

    finish_all(w, host, root, TaskResult.FAILURE)

    assert w.command(root).status is CommandStatus.FAILED
    kept = w.store.disks[disk.disk_id]
    assert (kept.storage_domain_id, kept.image_id, kept.status) == (
        disk.storage_domain_id,
        disk.image_id,
        DiskStatus.OK,
    )
    assert w.store.tasks[copy.task_id].cleanup is TaskCleanup.COMPENSATE  # the copy goes
    assert not [t for t in w.tasks(root) if t.verb == Verb.REMOVE_IMAGE]


def test_a_move_cancelled_while_removing_the_source_keeps_the_copy_and_removes_the_source() -> None:
    w, host, disk, dst, root = moving()
    finish_all(w, host, root)  # phase 1 done: phase 2 running

    w.lifecycle.cancel(root)

    assert w.command(root).status is CommandStatus.CANCELLED
    moved = w.store.disks[disk.disk_id]
    assert (moved.storage_domain_id, moved.status) == (dst, DiskStatus.OK)
    removal = next(t for t in w.tasks(root) if t.verb == Verb.REMOVE_IMAGE)
    assert removal.cleanup is TaskCleanup.COMPENSATE
    result = w.record_poll(host)
    w.manager().clean_up(result)  # stops it
    result = w.record_poll(host)
    w.manager().clean_up(result)  # stopped: compensation finishes the removal
    deleted = w.agent(host).deleted_images
    assert (disk.storage_domain_id, disk.image_id) in deleted, "the source is deleted"
    assert (dst, moved.image_id) not in deleted, "never the disk's copy"


def test_a_move_whose_second_phase_never_reached_an_agent_is_failed_and_its_source_removed() -> (
    None
):
    """The engine died at between_phases: phase 2's placeholder is committed, never sent."""
    w, host, disk, dst, root = moving()
    w.lifecycle.run_soon = lambda work: None  # the crash: nothing after the commit
    finish_all(w, host, root)
    removal = next(t for t in w.tasks(root) if t.verb == Verb.REMOVE_IMAGE)
    assert removal.vdsm_task_id is None
    # The restart: a new process executes nothing, and the placeholder is from before it.
    w.lifecycle._executing.clear()
    w.store.tasks[removal.task_id].created_at -= timedelta(seconds=5)

    report = w.reconciler().reconcile()

    assert root in report.failed_command_ids
    assert w.command(root).status is CommandStatus.FAILED
    assert w.store.disks[disk.disk_id].storage_domain_id == dst
    assert w.store.disks[disk.disk_id].status is DiskStatus.OK
    kept = w.store.tasks[removal.task_id]
    assert kept.cleanup is TaskCleanup.COMPENSATE, "an unsent removal is debt, not dropped"
    w.manager().clean_up(w.record_poll(host))
    assert (disk.storage_domain_id, disk.image_id) in w.agent(host).deleted_images
    assert removal.task_id not in w.store.tasks


def test_a_move_checks_its_disk_and_destination() -> None:
    w = World()
    w.host()
    src, dst = w.domain("src"), w.domain("dst")
    used = w.disk(src, "used")
    w.vm(used)
    free = w.disk(src, "free")
    cases = [
        (lambda: MoveDisk.create(new_id(), dst), NotFound, "disk_id"),
        (lambda: MoveDisk.create(used.disk_id, dst), FailedPrecondition, "used by VM"),
        (lambda: MoveDisk.create(free.disk_id, new_id()), NotFound, "destination"),
        (lambda: MoveDisk.create(free.disk_id, src), FailedPrecondition, "already"),
    ]
    for make, error, words in cases:
        with pytest.raises(error, match=words):
            submit(w, make)
    assert w.store.commands == {} and w.agents.calls == []


def test_a_disk_removal_deletes_it_and_a_failed_one_still_does() -> None:
    for result, status in (
        (TaskResult.SUCCESS, CommandStatus.SUCCEEDED),
        (TaskResult.FAILURE, CommandStatus.FAILED),
    ):
        w = World()
        host = w.host()
        disk = w.disk(w.domain())
        root = submit(w, lambda disk=disk: RemoveDisk.create(disk.disk_id))
        assert w.store.disks[disk.disk_id].status is DiskStatus.LOCKED

        finish_all(w, host, root, result)

        assert w.command(root).status is status
        assert disk.disk_id not in w.store.disks, "a removal is never undone"
        if status is CommandStatus.FAILED:
            w.manager().clean_up(w.record_poll(host))
            assert (disk.storage_domain_id, disk.image_id) in w.agent(host).deleted_images


def test_a_disk_in_use_or_locked_is_not_removed() -> None:
    w = World()
    w.host()
    sd = w.domain()
    in_vm, locked = w.disk(sd, "a"), w.disk(sd, "b")
    w.vm(in_vm)
    w.lock(locked.disk_id, "some-command")
    with pytest.raises(FailedPrecondition, match="used by VM"):
        submit(w, lambda: RemoveDisk.create(in_vm.disk_id))
    with pytest.raises(FailedPrecondition, match="locked by command some-command"):
        submit(w, lambda: RemoveDisk.create(locked.disk_id))


def seeded_template(w: World, sd: str) -> Template:
    disks = (w.disk(sd, "t1"), w.disk(sd, "t2"))
    vm = w.vm(w.disk(sd, "v1"))
    template = Template(
        new_id(), "golden", vm.vm_id, TemplateStatus.OK, tuple(d.disk_id for d in disks)
    )
    w.store.templates[template.template_id] = template
    return template


def test_a_template_removal_deletes_it_and_its_disks() -> None:
    w = World()
    host = w.host()
    template = seeded_template(w, w.domain())
    root = submit(w, lambda: RemoveVmTemplate.create(template.template_id))
    assert [t.verb for t in w.tasks(root)] == [Verb.REMOVE_IMAGE] * 2
    assert w.store.templates[template.template_id].status is TemplateStatus.LOCKED

    finish_all(w, host, root)

    assert w.command(root).status is CommandStatus.SUCCEEDED
    assert template.template_id not in w.store.templates
    assert not set(template.disk_ids) & set(w.store.disks)


def test_a_vm_from_a_template_gets_copies_and_a_failed_one_leaves_nothing() -> None:
    for result in (TaskResult.SUCCESS, TaskResult.FAILURE):
        w = World()
        host = w.host()
        sd, dst = w.domain("sd"), w.domain("dst")
        template = seeded_template(w, sd)
        root = submit(
            w, lambda t=template, d=dst: AddVmFromTemplate.create(t.template_id, "vm2", d)
        )
        vm_id = w.command(root).target_id
        assert vm_id in w.store.vms
        copies = w.store.vms[str(vm_id)].disk_ids
        assert [w.store.disks[c].status for c in copies] == [DiskStatus.LOCKED] * 2
        with pytest.raises(FailedPrecondition, match="in use by command"):
            submit(w, lambda t=template: RemoveVmTemplate.create(t.template_id))

        finish_all(w, host, root, result)

        if result is TaskResult.SUCCESS:
            assert w.command(root).status is CommandStatus.SUCCEEDED
            assert [w.store.disks[c].storage_domain_id for c in copies] == [dst, dst]
            assert {w.store.disks[c].status for c in copies} == {DiskStatus.OK}
        else:
            assert w.command(root).status is CommandStatus.FAILED
            assert vm_id not in w.store.vms and not set(copies) & set(w.store.disks)
        assert {w.store.disks[d].status for d in template.disk_ids} == {DiskStatus.OK}


def test_every_command_type_is_registered_by_its_module_alone() -> None:
    assert {
        "AddDisk",
        "AddVmTemplate",
        "RemoveDisk",
        "MoveDisk",
        "RemoveVmTemplate",
        "AddVmFromTemplate",
    } <= set(CommandBase.action_types())
    assert MoveDisk.has_phases and not RemoveDisk.has_phases


def test_a_next_phase_with_no_host_up_fails_the_command() -> None:
    w, host, disk, _, root = moving()
    (copy,) = w.tasks(root)
    w.finish_on_agent(copy)
    w.record_poll(host)
    w.store.hosts[host.host_id].status = type(host.status).MAINTENANCE

    w.manager().end_decided_commands()

    command = w.command(root)
    assert command.status is CommandStatus.FAILED
    assert "next phase could not start" in str(command.failure_reason)
    kept = w.store.disks[disk.disk_id]
    assert (kept.storage_domain_id, kept.status) == (disk.storage_domain_id, DiskStatus.OK)
