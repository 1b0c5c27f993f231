"""Ending commands (docs/design.md §4 step 6, invariants I3, I4, I6): exactly once, children
with their parent, locks released and entities settled in the same commit; cancel's rules."""

from __future__ import annotations

from typing import Any

import pytest

from engine_service.domain.commands import CommandStatus, Outcome
from engine_service.domain.inventory import DiskStatus, TemplateStatus
from engine_service.domain.tasks import TaskCleanup, new_id
from engine_service.service_layer.commands.add_disk import AddDisk
from engine_service.service_layer.commands.add_vm_template import AddVmTemplate
from service_common.errors import FailedPrecondition, NotFound
from tests.unit.fake_repository import FakeRepository
from tests.unit.world import World

SUCCEEDED = Outcome(CommandStatus.SUCCEEDED)
FAILED = Outcome(CommandStatus.FAILED, "task t ended failure")


def disk_world() -> tuple[World, str]:
    w = World()
    w.host()
    return w, w.add_disk(w.domain(), "data")


def template_world() -> tuple[World, str, tuple[str, ...]]:
    w = World()
    w.host()
    sd = w.domain()
    vm = w.vm(w.disk(sd, "a"), w.disk(sd, "b"))
    return w, w.add_template(vm, sd, "golden"), vm.disk_ids


def test_a_command_ends_exactly_once() -> None:
    w, root = disk_world()
    assert w.lifecycle.finish(root, FAILED) is True
    assert w.lifecycle.finish(root, SUCCEEDED) is False
    command = w.command(root)
    assert (command.status, command.failure_reason) == (CommandStatus.FAILED, FAILED.reason)
    assert command.ended_at is not None


def test_children_end_with_their_parent_at_the_same_instant() -> None:
    w, root, _ = template_world()
    w.lifecycle.finish(root, FAILED)
    parent = w.command(root)
    assert [(c.status, c.failure_reason, c.ended_at) for c in w.children(root)] == [
        (CommandStatus.FAILED, FAILED.reason, parent.ended_at)
    ] * 2


def test_ending_releases_the_commands_locks() -> None:
    w, root, _ = template_world()
    assert len(w.locks(root)) == 3
    w.lifecycle.finish(root, SUCCEEDED)
    assert w.store.locks == {}


def test_add_disk_success_makes_the_disk_ok_and_its_tasks_to_clear() -> None:
    w, root = disk_world()
    w.lifecycle.finish(root, SUCCEEDED)
    [disk] = w.store.disks.values()
    assert disk.disk_id == w.command(root).target_id and disk.status is DiskStatus.OK
    assert [t.cleanup for t in w.tasks(root)] == [TaskCleanup.CLEAR]


def test_add_disk_failure_deletes_the_disk_and_compensates_its_task() -> None:
    w, root = disk_world()
    w.lifecycle.finish(root, FAILED)
    assert w.store.disks == {}
    assert [t.cleanup for t in w.tasks(root)] == [TaskCleanup.COMPENSATE]


def test_add_vm_template_success_makes_template_copies_and_sources_ok() -> None:
    w, root, sources = template_world()
    w.lifecycle.finish(root, SUCCEEDED)
    [template] = w.store.templates.values()
    assert template.status is TemplateStatus.OK and len(template.disk_ids) == 2
    assert {w.store.disks[d].status for d in template.disk_ids + sources} == {DiskStatus.OK}


def test_add_vm_template_failure_deletes_template_and_copies_and_frees_the_sources() -> None:
    w, root, sources = template_world()
    w.lifecycle.finish(root, FAILED)
    assert w.store.templates == {}
    assert set(w.store.disks) == set(sources)
    assert {d.status for d in w.store.disks.values()} == {DiskStatus.OK}


def test_unsent_placeholders_are_deleted_and_unresolved_ones_kept_as_debt() -> None:
    w = World()
    host, sd = w.host(), w.domain()
    vm = w.vm(w.disk(sd, "a"), w.disk(sd, "b"))
    root = w.commit_only(AddVmTemplate.create(vm.vm_id, "t", sd), host)
    unresolved, _unsent = w.tasks(root)
    w.lifecycle.finish(root, FAILED, unresolved=[unresolved.task_id])
    [kept] = w.tasks(root)
    assert (kept.task_id, kept.cleanup) == (unresolved.task_id, TaskCleanup.COMPENSATE)


def test_finish_many_ends_every_decided_command_in_one_commit() -> None:
    w, first = disk_world()
    second = w.add_disk(next(iter(w.store.domains)), "other")
    w.lifecycle.finish(second, FAILED)
    commits = w.uow.commits
    ended = w.lifecycle.finish_many({first: SUCCEEDED, second: SUCCEEDED, new_id(): FAILED})
    assert ended == [first] and w.uow.commits == commits + 1
    assert w.command(second).status is CommandStatus.FAILED


def test_a_batch_settles_each_command_by_its_own_outcome() -> None:
    w, ok_disk = disk_world()
    sd = next(iter(w.store.domains))
    failed_disk = w.add_disk(sd, "doomed")
    vm = w.vm(w.disk(sd, "a"), w.disk(sd, "b"))
    template = w.add_template(vm, sd, "golden")
    ended = w.lifecycle.finish_many({ok_disk: SUCCEEDED, failed_disk: FAILED, template: SUCCEEDED})
    assert sorted(ended) == sorted([ok_disk, failed_disk, template])
    assert [w.command(r).status for r in (ok_disk, failed_disk, template)] == [
        CommandStatus.SUCCEEDED,
        CommandStatus.FAILED,
        CommandStatus.SUCCEEDED,
    ]
    assert w.command(failed_disk).failure_reason == FAILED.reason
    assert [t.cleanup for t in w.tasks(ok_disk)] == [TaskCleanup.CLEAR]
    assert [t.cleanup for t in w.tasks(failed_disk)] == [TaskCleanup.COMPENSATE]
    assert {t.cleanup for t in w.tasks(template)} == {TaskCleanup.CLEAR}
    assert w.command(failed_disk).target_id not in w.store.disks  # what it made is gone
    assert {d.status for d in w.store.disks.values()} == {DiskStatus.OK}
    assert [t.status for t in w.store.templates.values()] == [TemplateStatus.OK]
    assert w.store.locks == {}


def test_a_batch_of_one_type_is_settled_with_one_call_whatever_its_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w, first = disk_world()
    sd = next(iter(w.store.domains))
    roots = [first] + [w.add_disk(sd, f"d{i}") for i in range(7)]
    calls: dict[str, list[int]] = {"end_command_trees": [], "set_disk_status": []}
    for name, sizes in calls.items():
        method = getattr(FakeRepository, name)

        def spy(repo: FakeRepository, ids: Any, *args: Any, _m: Any = method, _s: Any = sizes):
            ids = list(ids)
            _s.append(len(ids))
            return _m(repo, ids, *args)

        monkeypatch.setattr(FakeRepository, name, spy)
    assert sorted(w.lifecycle.finish_many(dict.fromkeys(roots, SUCCEEDED))) == sorted(roots)
    assert calls == {"end_command_trees": [8], "set_disk_status": [8]}


def test_finish_many_with_nothing_to_end_does_not_commit() -> None:
    w, root = disk_world()
    w.lifecycle.finish(root, FAILED)
    commits = w.uow.commits
    assert w.lifecycle.finish_many({root: SUCCEEDED}) == [] and w.uow.commits == commits


def test_finishing_a_missing_command_is_not_found() -> None:
    w, _ = disk_world()
    with pytest.raises(NotFound, match="command_id"):
        w.lifecycle.finish(new_id(), FAILED)


def test_cancel_ends_an_active_command_cancelled() -> None:
    w, root = disk_world()
    w.lifecycle.cancel(root)
    command = w.command(root)
    assert (command.status, command.failure_reason) == (
        CommandStatus.CANCELLED,
        "cancelled by a client",
    )
    assert w.store.disks == {} and w.store.locks == {}


def test_cancel_of_a_terminal_command_is_a_failed_precondition() -> None:
    w, root = disk_world()
    w.lifecycle.finish(root, SUCCEEDED)
    with pytest.raises(FailedPrecondition, match="already SUCCEEDED"):
        w.lifecycle.cancel(root)
    assert w.command(root).status is CommandStatus.SUCCEEDED


def test_cancel_of_a_child_is_a_failed_precondition() -> None:
    w, root = disk_world()
    [child] = w.children(root)
    with pytest.raises(FailedPrecondition, match=f"child of {root}"):
        w.lifecycle.cancel(child.command_id)
    assert w.command(root).status is CommandStatus.ACTIVE


def test_cancel_of_a_missing_command_is_not_found() -> None:
    w, _ = disk_world()
    with pytest.raises(NotFound, match="command_id: no command"):
        w.lifecycle.cancel(new_id())


def test_ending_a_command_of_a_never_registered_type_is_impossible() -> None:
    w, root = disk_world()
    w.store.commands[root].action_type = "Nope"
    with pytest.raises(LookupError, match="'Nope'"):
        w.lifecycle.finish(root, FAILED)
    assert w.store.commands[root].status is CommandStatus.ACTIVE  # rolled back


def test_add_disk_is_rebuilt_from_its_record() -> None:
    w, root = disk_world()
    record = w.command(root)
    rebuilt = AddDisk.from_record(record)
    assert isinstance(rebuilt, AddDisk) and rebuilt.params.name == "data"
    assert (rebuilt.command_id, rebuilt.target_id) == (root, record.target_id)
