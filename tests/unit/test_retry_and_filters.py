"""RetryCommand and the ListCommands filters (issue 17) over the fakes: a FAILED or CANCELLED
command runs again as a new command with the same parameters, both histories naming the other,
idempotent by request id; the listing filters by type, target, time windows and host."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from engine_service.domain.commands import CommandFilter, CommandStatus, Outcome
from engine_service.domain.history import EventKind
from engine_service.service_layer.engine import Engine
from service_common.errors import FailedPrecondition, InvalidArgument, NotFound
from tests.unit.world import World

FAILED = Outcome(CommandStatus.FAILED, "no space")


def engine_of(w: World) -> Engine:
    return Engine(w.uow, w.pool, w.lifecycle, w.manager(), w.reconciler(), None)  # type: ignore[arg-type]


def failed_disk(w: World, name: str = "d") -> str:
    root = w.add_disk(next(iter(w.store.domains)), name, size=4096)
    assert w.lifecycle.finish(root, FAILED)
    return root


def kinds(w: World, command_id: str) -> list[EventKind]:
    return [e.kind for e in w.store.events if e.command_id == command_id]


def make_world() -> World:
    w = World()
    w.host()
    w.domain()
    return w


def test_a_failed_command_runs_again_with_the_same_parameters_and_linked_histories() -> None:
    w = make_world()
    old = failed_disk(w)
    view = engine_of(w).retry(old)
    new = w.command(view.command_id)
    assert new.command_id != old and new.status is CommandStatus.ACTIVE
    before, after = w.command(old).params, new.params
    assert (after["name"], after["storage_domain_id"], after["size_bytes"]) == (
        before["name"],
        before["storage_domain_id"],
        before["size_bytes"],
    )
    assert after["disk_id"] != before["disk_id"] and after["image_id"] != before["image_id"]
    assert kinds(w, old)[-1] is EventKind.RETRIED_AS
    assert EventKind.RETRY_OF in kinds(w, new.command_id)
    [link] = [e for e in w.store.events if e.kind is EventKind.RETRY_OF]
    assert link.message == f"retry of command {old}"


def test_a_cancelled_template_is_retried_under_its_freed_name() -> None:
    w = make_world()
    sd = next(iter(w.store.domains))
    root = w.add_template(w.vm(w.disk(sd, "a")), sd, "golden")
    w.lifecycle.cancel(root)
    view = engine_of(w).retry(root)
    assert w.command(view.command_id).params["name"] == "golden"
    assert [t.name for t in w.store.templates.values()] == ["golden"]


def test_a_retry_is_idempotent_by_request_id() -> None:
    w = make_world()
    old = failed_disk(w)
    request_id = str(uuid.uuid4())
    engine = engine_of(w)
    first = engine.retry(old, request_id)
    again = engine.retry(old, request_id)
    assert first.command_id == again.command_id
    assert len([c for c in w.store.commands.values() if c.parent_id is None]) == 2


@pytest.mark.parametrize("state", ["active", "succeeded", "child"])
def test_only_a_failed_or_cancelled_top_level_command_can_be_retried(state: str) -> None:
    w = make_world()
    root = w.add_disk(next(iter(w.store.domains)))
    target = root
    if state == "succeeded":
        assert w.lifecycle.finish(root, Outcome(CommandStatus.SUCCEEDED))
    if state == "child":
        assert w.lifecycle.finish(root, FAILED)
        target = w.children(root)[0].command_id
    commits = w.uow.commits
    with pytest.raises(FailedPrecondition):
        engine_of(w).retry(target)
    assert w.uow.commits == commits


def test_retrying_an_unknown_command_is_not_found() -> None:
    with pytest.raises(NotFound, match="command_id"):
        engine_of(make_world()).retry(str(uuid.uuid4()))


def listed(w: World, **where: Any) -> set[str]:
    views, _ = engine_of(w).commands(CommandFilter(**where), 100, "")
    return {v.command_id for v in views}


def test_listing_filters_by_type_target_created_window_and_host() -> None:
    w = make_world()
    sd = next(iter(w.store.domains))
    disk = w.add_disk(sd, "x")
    template = w.add_template(w.vm(w.disk(sd, "a")), sd, "t")
    w.store.commands[disk].created_at -= timedelta(hours=2)
    assert listed(w, action_type="AddDisk") == {disk}
    assert listed(w, action_type="AddVmTemplate") == {template}
    target = w.command(template).target_id
    assert listed(w, target_id=target) == {template}
    now = w.command(template).created_at
    assert listed(w, created_after=now - timedelta(hours=1)) == {template}
    assert listed(w, created_before=now - timedelta(hours=1)) == {disk}
    host = next(iter(w.store.hosts))
    assert listed(w, host_id=host) == {disk, template}
    assert listed(w, host_id=str(uuid.uuid4())) == set()


@pytest.mark.parametrize(
    ("where", "field"),
    [
        ({"action_type": "Reboot"}, "action_type"),
        ({"target_id": "nope"}, "target_id"),
        ({"host_id": "nope"}, "host_id"),
    ],
)
def test_a_bad_filter_names_its_field(where: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument, match=field):
        listed(make_world(), **where)


def test_an_empty_created_window_is_refused() -> None:
    w = make_world()
    now = w.store.hosts[next(iter(w.store.hosts))].created_at
    with pytest.raises(InvalidArgument, match="created_after"):
        listed(w, created_after=now, created_before=now)
