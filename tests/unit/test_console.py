"""The console (`--ui-listen`, docs/design.md §14) over the unit-test fakes: what each page shows,
built from the same `Engine` use cases as the gRPC API, and the application in front of it
(pages, their JSON twins, tokens, the login form), through Starlette's TestClient: no socket,
no process."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from engine_service.domain.clock import utcnow
from engine_service.domain.commands import CommandStatus, Outcome
from engine_service.domain.hosts import Host, HostStatus
from engine_service.entrypoints.console import ConsoleAccess, console_app
from engine_service.entrypoints.console.access import COOKIE, SESSION_SECONDS
from engine_service.entrypoints.console.views import (
    command_detail_view,
    commands_view,
    hosts_view,
    reconciliation_view,
)
from engine_service.entrypoints.settings import parse_args
from engine_service.entrypoints.tokens import parse_token
from engine_service.service_layer.commands.add_disk import AddDisk
from engine_service.service_layer.engine import Engine
from engine_service.service_layer.inventory import Inventory
from service_common.errors import InvalidArgument, NotFound
from service_common.vdsm_tasks import TaskState
from tests.unit.world import World

READER = "viewer:a-long-read-only-secret:read"
OPERATOR = "ops:a-long-operator-secret"


def engine_of(w: World) -> Engine:
    return Engine(w.uow, w.pool, w.lifecycle, w.manager(), w.reconciler(), Inventory(w.uow, w.pool))


def template(w: World, *hosts: Host, disks: int = 2) -> str:
    sd = w.domain()
    vm = w.vm(*(w.disk(sd, f"d{i}") for i in range(disks)))
    return w.add_template(vm, sd)


def keys(rows: list[dict[str, Any]]) -> list[str]:
    return [row["key"] for row in rows]


# -- the views ---------------------------------------------------------------------------------


def test_the_hosts_page_shows_status_answering_load_last_seen_and_maintenance() -> None:
    w = World()
    now = utcnow()
    busy = w.host("busy", last_seen_at=now - timedelta(seconds=2))
    w.host(
        "silent",
        HostStatus.NON_RESPONSIVE,
        failed_polls=3,
        unreachable_since=now - timedelta(seconds=42),
    )
    w.host("resting", HostStatus.MAINTENANCE)
    template(w, busy, disks=3)  # only `busy` is UP: all three copies go there
    page = hosts_view(engine_of(w), now)
    rows = {row["name"]: row for row in page["hosts"]}
    assert rows["busy"] == {
        "key": busy.host_id,
        "name": "busy",
        "address": busy.address,
        "status": "UP",
        "answering": "yes",
        "answers": "yes",
        "tasks_in_flight": 3,
        "last_seen": f"{(now - timedelta(seconds=2)):%Y-%m-%d %H:%M:%S} UTC (2 s ago)",
        "maintenance": "no",
    }
    silent = rows["silent"]
    assert silent["status"] == "NON_RESPONSIVE" and silent["answers"] == "no"
    assert silent["answering"].startswith("no, since ") and silent["answering"].endswith("(42 s)")
    assert silent["last_seen"] == "never" and silent["tasks_in_flight"] == 0
    assert rows["resting"]["maintenance"] == "yes" and rows["resting"]["status"] == "MAINTENANCE"
    assert page["summary"] == "3 host(s), 1 not answering" and not page["empty"]
    assert hosts_view(engine_of(World()))["empty"] is True


def test_the_commands_page_lists_newest_first_with_progress_and_filters() -> None:
    w = World()
    host = w.host()
    first = w.add_disk(w.domain("a"), "first")
    second = template(w, host)
    task = w.tasks(second)[0]
    assert task.vdsm_task_id is not None
    w.agent(host).report(task.vdsm_task_id, TaskState.RUNNING, progress=80)
    w.record_poll(host)
    failed = w.add_disk(w.domain("b"), "third")
    assert w.lifecycle.finish(failed, Outcome(CommandStatus.FAILED, "No space left on device"))
    engine = engine_of(w)
    page = commands_view(engine)
    assert keys(page["commands"]) == [failed, second, first]  # newest first
    row = page["commands"][1]
    assert row["action_type"] == "AddVmTemplate" and row["status"] == "ACTIVE"
    assert row["progress"] == 40 and row["progress_text"] == "40%"  # (80 + 0) / 2
    assert row["href"] == f"/commands/{second}" and row["children"] == 2 and row["tasks_left"] == 2
    assert row["duration"].startswith("running for ")
    assert page["commands"][0]["failure_reason"] == "No space left on device"
    assert page["commands"][0]["duration"].startswith("took ")
    assert keys(commands_view(engine, status="failed")["commands"]) == [failed]
    assert keys(commands_view(engine, action_type="AddVmTemplate")["commands"]) == [second]
    assert commands_view(engine, status="CANCELLED")["empty"] is True
    with pytest.raises(InvalidArgument, match="status"):
        commands_view(engine, status="sleeping")
    with pytest.raises(InvalidArgument, match="action_type"):
        commands_view(engine, action_type="DropTables")


def test_the_commands_page_links_to_older_commands_past_its_first_page() -> None:
    w = World()
    w.host()
    sd = w.domain()
    made = [w.add_disk(sd, f"d{i}") for i in range(51)]
    page = commands_view(engine_of(w), status="active")
    assert len(page["commands"]) == 50
    assert page["older_href"].startswith("/commands?status=active&page=")
    token = page["older_href"].rsplit("page=", 1)[1]
    assert keys(commands_view(engine_of(w), "active", page=token)["commands"]) == made[:1]


def test_one_command_shows_its_children_each_task_on_its_host_and_its_history() -> None:
    w = World()
    first, second = w.host("host1"), w.host("host2")
    root = template(w, first, second)
    engine = engine_of(w)
    page = command_detail_view(engine, root)
    assert page["command"]["key"] == root and page["command"]["parent_href"] == ""
    children = {c.command_id for c in w.children(root)}
    assert set(keys(page["children"])) == children
    assert {t["host"] for t in page["tasks"]} == {"host1", "host2"}
    by_id = {t.task_id: t for t in w.tasks(root)}
    for row in page["tasks"]:
        task = by_id[row["key"]]
        assert row["vdsm_task_id"] == task.vdsm_task_id and row["verb"] == "CopyImage"
        assert row["state"] == "accepted, not polled yet" and row["progress_text"] == "0%"
        assert row["child"] == task.command_id[:8]
    kinds = [e["kind"] for e in page["events"]]
    assert kinds == ["accepted", "placeholder", "placeholder", "task_accepted", "task_accepted"]
    assert {e["host"] for e in page["events"][1:]} == {"host1", "host2"}
    child = command_detail_view(engine, next(iter(children)))
    assert child["command"]["parent_href"] == f"/commands/{root}" and child["events"] == []
    with pytest.raises(NotFound):
        command_detail_view(engine, "0f2b6c7e-3d4a-4e5f-8a9b-1c2d3e4f5a6b")
    with pytest.raises(InvalidArgument):
        command_detail_view(engine, "not-an-id")


def test_the_reconciliation_page_shows_the_startup_report_and_the_latest_one() -> None:
    w = World()
    host = w.host()
    engine = engine_of(w)
    page = reconciliation_view(engine)
    assert page["startup"]["ran"] is False and page["last"] == {"ran": False, "at": "not yet"}
    sd = w.domain()
    orphaned = w.commit_only(AddDisk.create("d", sd, 1024), host)
    report = engine.reconcile()
    assert report.failed_command_ids == [orphaned]
    engine.reconciler.startup_at = engine.reconciler.last_at  # as Engine.start records it
    page = reconciliation_view(engine)
    last = page["last"]
    assert (
        last["ran"] is True and last["failed_commands"] == 1 and last["removed_placeholders"] == 1
    )
    assert last["failed"] == [
        {"key": orphaned, "href": f"/commands/{orphaned}", "short_id": orphaned[:8]}
    ]
    assert page["startup"]["ran"] is True and page["startup"]["failed_commands"] == 0
    engine.reconcile()  # a second run reports all zeros (I7): the latest report says so
    assert reconciliation_view(engine)["last"]["failed_commands"] == 0
    assert reconciliation_view(engine)["startup"]["failed_commands"] == 0


# -- the application ---------------------------------------------------------------------------


def client(w: World, *tokens: str, secure: bool = False) -> TestClient:
    access = ConsoleAccess([parse_token(t) for t in tokens])
    app = console_app(engine_of(w), access, secure_cookie=secure)
    return TestClient(app, base_url="https://console" if secure else "http://console")


def test_each_page_renders_what_its_json_twin_returns_escaped_and_read_only() -> None:
    w = World()
    host = w.host("<img src=x onerror=alert(1)>")
    root = template(w, host)
    web = client(w)
    for path in ("/commands", "/hosts", "/reconciliation", f"/commands/{root}"):
        page = web.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert f'data-source="/api{path}"' in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"
        twin = web.get(f"/api{path}")
        assert twin.status_code == 200 and twin.headers["content-type"] == "application/json"
        assert web.post(f"/api{path}").status_code == 405  # nothing changes state
    hosts = web.get("/hosts").text
    assert "<img src=x" not in hosts and "&lt;img src=x onerror=alert(1)&gt;" in hosts
    assert web.get("/api/hosts").json()["hosts"][0]["name"] == "<img src=x onerror=alert(1)>"
    assert web.get("/", follow_redirects=False).headers["location"] == "/commands"
    script = web.get("/static/console.js")
    assert script.status_code == 200 and "setTimeout(poll, every)" in script.text
    assert web.get("/static/console.css").status_code == 200


def test_bad_input_and_unknown_commands_are_precise_errors() -> None:
    web = client(World())
    assert web.get("/api/commands?status=sleeping").status_code == 400
    assert "status" in web.get("/api/commands?status=sleeping").json()["error"]
    assert web.get("/commands?status=sleeping").status_code == 400
    missing = "/commands/0f2b6c7e-3d4a-4e5f-8a9b-1c2d3e4f5a6b"
    assert web.get(f"/api{missing}").status_code == 404
    page = web.get(missing)
    assert page.status_code == 404 and "no command" in page.text
    assert web.get("/api/commands/not-an-id").status_code == 400
    assert web.get("/login", follow_redirects=False).headers["location"] == "/commands"  # open


def test_with_tokens_a_request_without_one_is_refused() -> None:
    web = client(World(), READER, OPERATOR)
    refused = web.get("/api/hosts")
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    page = web.get("/hosts?x=1", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fhosts%3Fx%3D1"
    assert web.get("/api/hosts", headers={"Authorization": "Bearer wrong"}).status_code == 401
    for secret in ("a-long-read-only-secret", "a-long-operator-secret"):
        ok = web.get("/api/hosts", headers={"Authorization": f"Bearer {secret}"})
        assert ok.status_code == 200 and ok.json()["empty"] is True
    web.cookies.set(COOKIE, "viewer.99999999999.0000")
    assert web.get("/api/hosts").status_code == 401  # a forged session
    login = web.get("/login?next=/hosts")
    assert login.status_code == 200 and 'type="password"' in login.text
    assert web.get("/static/console.css").status_code == 200  # the login page's style


def test_the_login_form_sets_an_http_only_session_cookie_that_never_holds_the_secret() -> None:
    web = client(World(), READER, secure=True)
    wrong = web.post("/login", data={"token": "nope", "next": "/hosts"}, follow_redirects=False)
    assert wrong.status_code == 401 and "not accepted" in wrong.text and COOKIE not in web.cookies
    right = web.post(
        "/login",
        data={"token": "a-long-read-only-secret", "next": "/hosts"},
        follow_redirects=False,
    )
    assert right.status_code == 303 and right.headers["location"] == "/hosts"
    cookie = right.headers["set-cookie"]
    for flag in ("HttpOnly", "Secure", "SameSite=strict", f"Max-Age={SESSION_SECONDS}", "Path=/"):
        assert flag in cookie
    assert "a-long-read-only-secret" not in cookie and cookie.startswith(f"{COOKIE}=viewer.")
    page = web.get("/hosts")
    assert page.status_code == 200 and "viewer" in page.text and "Log out" in page.text
    out = web.post("/logout", follow_redirects=False)
    assert out.headers["location"] == "/login" and "Max-Age=0" in out.headers["set-cookie"]
    elsewhere = web.post(
        "/login",
        data={"token": "a-long-read-only-secret", "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert elsewhere.headers["location"] == "/commands"  # never to another site


def test_a_session_lapses_and_dies_with_its_token() -> None:
    now = [1_000_000.0]
    reader = parse_token(READER)
    access = ConsoleAccess([reader], clock=lambda: now[0])
    session = access.login("a-long-read-only-secret")
    assert session is not None and access.login("wrong") is None
    name, cookie = session
    assert name == "viewer" and access.session(cookie) == "viewer"
    assert access.identify({}, {COOKIE: cookie}) == "viewer"
    tampered = cookie.replace("viewer.", "ops.", 1)
    assert access.session(tampered) is None
    rotated = ConsoleAccess([parse_token("viewer:another-long-secret:read")], clock=lambda: now[0])
    assert rotated.session(cookie) is None
    now[0] += SESSION_SECONDS + 1
    assert access.session(cookie) is None
    assert ConsoleAccess([]).identify({}, {}) == "anonymous"


# -- the setting -------------------------------------------------------------------------------


def test_the_console_is_off_by_default_and_plaintext_only_on_loopback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name in [n for n in os.environ if n.startswith("ENGINE_")]:
        monkeypatch.delenv(name)
    assert parse_args([]).ui_listen is None
    assert parse_args(["--ui-listen", "127.0.0.1:0"]).ui_listen == "127.0.0.1:0"
    with pytest.raises(SystemExit) as stopped:
        parse_args(["--ui-listen", "0.0.0.0:8080"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "0.0.0.0:8080 (--ui-listen)" in err and "--insecure" in err
    assert parse_args(["--ui-listen", "0.0.0.0:8080", "--insecure"]).insecure is True
    cert, key = tmp_path / "engine.pem", tmp_path / "engine.key"
    tls = parse_args(["--ui-listen", "[::]:8443", "--tls-cert", str(cert), "--tls-key", str(key)])
    assert tls.ui_listen == "[::]:8443"
    monkeypatch.setenv("ENGINE_UI_LISTEN", "127.0.0.1:8080")
    assert parse_args([]).ui_listen == "127.0.0.1:8080"
