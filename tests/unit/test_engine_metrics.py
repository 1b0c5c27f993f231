"""The metrics a dashboard reads (issue 17): ACTIVE commands by type, the oldest one's age,
hosts by status and liveness, and how long commands took, by type and outcome."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import REGISTRY

from engine_service.domain.clock import utcnow
from engine_service.domain.commands import CommandStatus, Outcome
from engine_service.domain.hosts import HostStatus
from tests.unit.world import World


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_active_commands_by_type_the_oldest_age_and_hosts_by_status() -> None:
    w = World()
    w.host("up")
    silent = w.host("silent", HostStatus.MAINTENANCE, unreachable_since=utcnow())
    sd = w.domain()
    disk = w.add_disk(sd)
    w.add_template(w.vm(w.disk(sd, "a")), sd)
    w.store.commands[disk].created_at -= timedelta(hours=1)
    w.manager().measure()
    assert sample("engine_active_commands", action_type="AddDisk") == 1
    assert sample("engine_active_commands", action_type="AddVmTemplate") == 1
    assert 3599 < sample("engine_oldest_active_command_age_seconds") < 3700
    assert sample("engine_hosts", status="UP", answering="true") == 1
    assert sample("engine_hosts", status="MAINTENANCE", answering="false") == 1
    assert sample("engine_hosts", status="NON_RESPONSIVE", answering="false") == 0
    assert silent.host_id in w.store.hosts


def test_a_commands_duration_is_observed_by_type_and_outcome() -> None:
    w = World()
    w.host()
    root = w.add_disk(w.domain())
    w.store.commands[root].created_at -= timedelta(seconds=30)
    labels = {"action_type": "AddDisk", "status": "FAILED"}
    before = sample("engine_command_duration_seconds_count", **labels)
    within = sample("engine_command_duration_seconds_bucket", le="60.0", **labels)
    assert w.lifecycle.finish(root, Outcome(CommandStatus.FAILED, "x"))
    assert sample("engine_command_duration_seconds_count", **labels) == before + 1
    assert sample("engine_command_duration_seconds_bucket", le="60.0", **labels) == within + 1
