"""Reconciler (docs/design.md §7, invariant I7): unsent placeholders the agent knows are
adopted, the others fail their commands in one transaction; an unreachable host's placeholders
stay as debt; a second run reports zeros; `--orphans resubmit` sends confirmed orphans again."""

from __future__ import annotations

import pytest

from engine_service.domain.commands import CommandStatus
from engine_service.domain.hosts import Host, HostStatus
from engine_service.domain.inventory import DiskStatus
from engine_service.domain.tasks import AsyncTask, TaskCleanup
from engine_service.service_layer import reconciliation
from engine_service.service_layer.commands.add_disk import AddDisk
from engine_service.service_layer.commands.add_vm_template import AddVmTemplate
from engine_service.service_layer.reconciliation import ORPHAN_REASON, ReconcileReport
from service_common.vdsm_tasks import TaskState
from tests.unit.world import World


def crashed_disk(w: World, host: Host, name: str = "d") -> tuple[str, AsyncTask]:
    """An AddDisk whose engine died after committing its placeholder, before sending it."""
    root = w.commit_only(AddDisk.create(name, next(iter(w.store.domains)), 1), host)
    [placeholder] = w.tasks(root)
    return root, placeholder


def reached_agent(w: World, host: Host, placeholder: AsyncTask) -> str:
    """The agent accepted the placeholder's task; its id never reached the engine."""
    image = (placeholder.storage_domain_id, placeholder.image_id)
    return w.agent(host).add_task(placeholder.task_id, placeholder.verb, image)


def failed(w: World, *roots: str, **counts: int) -> ReconcileReport:
    """The report of a reconciliation that failed `roots` (and did `counts`)."""
    at = w.command(roots[0]).ended_at
    return ReconcileReport(list(roots), failed_commands=len(roots), failed_at=at, **counts)


def setup() -> tuple[World, Host]:
    w = World()
    host = w.host()
    w.domain()
    return w, host


def test_an_unsent_placeholder_the_agent_knows_is_adopted() -> None:
    w, host = setup()
    root, placeholder = crashed_disk(w, host)
    vdsm_id = reached_agent(w, host, placeholder)
    report = w.reconciler().reconcile()
    assert report == ReconcileReport(adopted_tasks=1)
    adopted = w.store.tasks[placeholder.task_id]
    assert adopted.vdsm_task_id == vdsm_id and adopted.submitted_at is not None
    assert w.command(root).status is CommandStatus.ACTIVE


def test_a_placeholder_the_agent_does_not_know_fails_its_command() -> None:
    w, host = setup()
    root, placeholder = crashed_disk(w, host)
    report = w.reconciler().reconcile()
    assert report == failed(w, root, removed_placeholders=1)
    command = w.command(root)
    assert (command.status, command.failure_reason) == (CommandStatus.FAILED, ORPHAN_REASON)
    assert [c.status for c in w.children(root)] == [CommandStatus.FAILED]
    assert w.store.tasks == {} and w.store.locks == {} and w.store.disks == {}


def test_orphans_of_many_commands_fail_in_one_commit() -> None:
    w, host = setup()
    roots = [crashed_disk(w, host, f"d{i}")[0] for i in range(3)]
    commits = w.uow.commits
    report = w.reconciler().reconcile()
    assert sorted(report.failed_command_ids) == sorted(roots)
    assert report.removed_placeholders == 3 and w.uow.commits == commits + 1


def test_a_command_with_one_adopted_task_and_one_orphan_fails_and_compensates() -> None:
    w, host = setup()
    sd = next(iter(w.store.domains))
    vm = w.vm(w.disk(sd, "a"), w.disk(sd, "b"))
    root = w.commit_only(AddVmTemplate.create(vm.vm_id, "t", sd), host)
    adopted, orphan = w.tasks(root)
    reached_agent(w, host, adopted)
    report = w.reconciler().reconcile()
    assert report == failed(w, root, removed_placeholders=1, adopted_tasks=1)
    [kept] = w.tasks(root)
    assert (kept.task_id, kept.cleanup) == (adopted.task_id, TaskCleanup.COMPENSATE)
    assert w.store.templates == {} and set(w.store.disks) == set(vm.disk_ids)
    assert {d.status for d in w.store.disks.values()} == {DiskStatus.OK}


def test_an_unreachable_hosts_placeholders_fail_the_command_but_stay_as_debt() -> None:
    w, host = setup()
    root, placeholder = crashed_disk(w, host)
    w.agent(host).down = True
    report = w.reconciler().reconcile()
    assert report == failed(w, root)
    debt = w.store.tasks[placeholder.task_id]
    assert (debt.vdsm_task_id, debt.cleanup) == (None, TaskCleanup.COMPENSATE)
    assert w.command(root).status is CommandStatus.FAILED and w.store.locks == {}


def test_a_second_reconciliation_reports_zeros() -> None:
    w, host = setup()
    crashed_disk(w, host, "lost")
    _, known = crashed_disk(w, host, "known")
    reached_agent(w, host, known)
    reconciler = w.reconciler()
    assert reconciler.reconcile() != ReconcileReport()
    commits = w.uow.commits
    assert reconciler.reconcile() == ReconcileReport()
    assert w.uow.commits == commits


def test_a_second_reconciliation_after_an_unreachable_host_reports_zeros() -> None:
    w, host = setup()
    crashed_disk(w, host)
    w.agent(host).down = True
    reconciler = w.reconciler()
    reconciler.reconcile()
    w.agent(host).down = False
    assert reconciler.reconcile() == ReconcileReport()


def test_a_command_being_submitted_is_left_alone() -> None:
    w, host = setup()
    root, placeholder = crashed_disk(w, host)
    reports: list[ReconcileReport] = []
    w.agent(host).on_start = lambda rid: reports.append(w.reconciler().reconcile())
    w.lifecycle.execute(root)
    assert reports == [ReconcileReport()]
    assert w.command(root).status is CommandStatus.ACTIVE
    assert w.store.tasks[placeholder.task_id].vdsm_task_id is not None


def test_with_resubmit_a_confirmed_orphan_is_sent_again_instead_of_failed() -> None:
    w, host = setup()
    root, placeholder = crashed_disk(w, host)
    report = w.reconciler(orphans="resubmit").reconcile()
    assert report == ReconcileReport()
    assert [r for _, r, _ in w.agent(host).called("start_task")] == [placeholder.task_id]
    resent = w.store.tasks[placeholder.task_id]
    assert resent.vdsm_task_id == w.agent(host).by_request[placeholder.task_id]
    assert w.command(root).status is CommandStatus.ACTIVE


def test_with_resubmit_only_commands_on_an_unreachable_host_fail() -> None:
    w, reachable = setup()
    silent = w.host("host2")
    resent, _ = crashed_disk(w, reachable, "a")
    failed_id, debt = crashed_disk(w, silent, "b")
    w.agent(silent).down = True
    report = w.reconciler(orphans="resubmit").reconcile()
    assert report == failed(w, failed_id)
    assert w.command(resent).status is CommandStatus.ACTIVE
    assert w.tasks(resent)[0].vdsm_task_id is not None
    assert w.store.tasks[debt.task_id].cleanup is TaskCleanup.COMPENSATE


def test_with_resubmit_an_orphan_whose_host_left_goes_to_an_up_host() -> None:
    w, old = setup()
    new = w.host("host2")
    root, placeholder = crashed_disk(w, old)
    w.store.hosts[old.host_id].status = HostStatus.MAINTENANCE
    w.reconciler(orphans="resubmit").reconcile()
    assert w.store.tasks[placeholder.task_id].host_id == new.host_id
    assert w.agent(old).called("start_task") == []
    assert len(w.agent(new).called("start_task")) == 1


def test_a_zombie_past_its_grace_is_counted_in_the_report() -> None:
    w = World(zombie_grace=0)
    host, sd = w.host(), w.domain()
    w.agent(host).add_task("not-ours", "CreateVolume", (sd, "img"))
    w.agent(host).report(w.agent(host).by_request["not-ours"], TaskState.FINISHED)
    assert w.reconciler().reconcile() == ReconcileReport(cleared_zombies=1)


def test_the_report_lists_the_first_ids_only_and_counts_them_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bounded whatever the number of orphans: 100,000 ids would pass gRPC's 4 MiB limit."""
    monkeypatch.setattr(reconciliation, "LISTED_IDS", 2)
    w, host = setup()
    roots = [crashed_disk(w, host, f"d{i}")[0] for i in range(5)]
    oldest = sorted(roots, key=lambda r: (w.command(r).created_at, r))
    report = w.reconciler().reconcile()
    assert report.failed_command_ids == oldest[:2]
    assert report.failed_commands == 5 and report.removed_placeholders == 5
    assert report.failed_at == w.command(roots[0]).ended_at is not None
    assert {w.command(r).ended_at for r in roots} == {report.failed_at}
    assert "failed 5 command(s)" in str(report) and "..." in str(report)
