"""The console (`engine-service --ui-listen HOST:PORT`, docs/design.md §14) in a real headless
Chromium over real engine and agent processes: it follows a template to its end and a host that
dies, without a reload; with tokens it lets nobody in without one; with the API's certificate it
serves HTTPS.

`CONSOLE_SCREENSHOT=docs/console.png` makes the first test save the README's screenshot (the
command page in the middle of a template)."""

from __future__ import annotations

import http.client
import os
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from engine_service.v1 import engine_service_pb2 as pb
from service_common.tls import ClientTls, init_pki

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20
UI = ["--ui-listen", "127.0.0.1:0"]
THROTTLE = 1 * MiB  # bytes per second per copy: an 8 MiB disk takes about 8 s
MARK = "window.consoleTestMark"  # survives as long as the page is not reloaded
READER = "viewer:a-long-read-only-secret:read"
TASK_HOSTS = (
    "return [...document.querySelectorAll('tbody[data-list=tasks] td[data-label=Host]')]"
    ".map(cell => cell.textContent);"
)
T = TypeVar("T")


def wait_for(condition: Callable[[], T], what: str, timeout: float = 45.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def mark(browser: Any) -> None:
    browser.execute_script(f"{MARK} = 'not reloaded';")


def still_marked(browser: Any) -> bool:
    return bool(browser.execute_script(f"return {MARK} === 'not reloaded';"))


def read(browser: Any, selector: str) -> dict[str, Any] | None:
    """One row's (or the page's) progress, status and text, read in one round trip."""
    return browser.execute_script(
        """
        const root = document.querySelector(arguments[0]);
        if (!root) return null;
        const bar = root.querySelector("progress"), badge = root.querySelector(".badge");
        return {progress: bar ? bar.value : null, status: badge ? badge.textContent : null,
                text: root.textContent};
        """,
        selector,
    )


def test_a_templates_progress_bars_advance_to_succeeded_without_a_reload(make_dc, browser) -> None:
    dc, vm, _, dst = make_dc(
        hosts=2, throttle=THROTTLE, disks=2, disk_bytes=8 * MiB, engine_args=UI
    )
    started = time.perf_counter()
    browser.get(dc.engine.ui_url("/commands"))
    load_seconds = time.perf_counter() - started
    mark(browser)
    command_id = dc.start_template(vm, "golden", dst).command.command_id
    row = f'tbody[data-list="commands"] tr[data-key="{command_id}"]'
    # The new command's row appears, then its bar moves, on the page loaded before it existed.
    wait_for(lambda: (read(browser, row) or {}).get("status") == "ACTIVE", "the new row")
    wait_for(lambda: (read(browser, row) or {}).get("progress", 0) > 0, "the list's bar to move")
    assert still_marked(browser)

    # To the command's page, by keyboard: its link is a real link.
    browser.find_element(By.CSS_SELECTOR, f"{row} a").send_keys(Keys.ENTER)
    wait_for(lambda: browser.current_url.endswith(f"/commands/{command_id}"), "its page")
    mark(browser)
    seen: list[int] = []
    hosts: set[str] = set()
    shot = os.environ.get("CONSOLE_SCREENSHOT")
    while True:
        page = read(browser, "main")
        assert page is not None
        seen.append(int(page["progress"]))
        hosts |= set(browser.execute_script(TASK_HOSTS))
        if shot and 30 <= seen[-1] <= 75:
            browser.save_screenshot(str(ROOT / shot))
            shot = None
        if page["status"] != "ACTIVE":
            break
        assert len(seen) < 900, f"still ACTIVE after 90 s: {seen[-20:]}"
        time.sleep(0.1)
    assert page["status"] == "SUCCEEDED", page
    final = read(browser, ".overall")
    assert final is not None and final["progress"] == 100 and "100%" in final["text"]
    assert any(0 < value < 100 for value in seen), seen  # it moved, not jumped
    assert seen == sorted(seen), seen  # and never went back
    assert hosts == {"host1", "host2"}  # each copy on its host, while it ran
    history = wait_for(
        lambda: "task_cleared" in (read(browser, "ol.timeline") or {}).get("text", ""),
        "the history to tell the clearing",
    )
    assert history and still_marked(browser)
    assert "ended" in browser.find_element(By.CSS_SELECTOR, "ol.timeline").text
    assert load_seconds < 5, load_seconds


def test_a_host_killed_mid_run_turns_non_responsive_on_the_hosts_page(make_dc, browser) -> None:
    args = [*UI, "--host-failure-polls", "2", "--poll-interval", "1"]  # the default interval
    dc, vm, _, dst = make_dc(throttle=THROTTLE, disks=1, disk_bytes=16 * MiB, engine_args=args)
    dc.start_template(vm, "golden", dst)
    host_id = dc.hosts["host1"].host_id
    browser.get(dc.engine.ui_url("/hosts"))
    row = f'tbody[data-list="hosts"] tr[data-key="{host_id}"]'
    cell = row + ' td[data-label="{}"]'

    def text(label: str) -> str:
        return str(
            browser.execute_script(
                "const c = document.querySelector(arguments[0]); return c ? c.textContent : '';",
                cell.format(label),
            )
        )

    wait_for(lambda: text("Tasks in flight") == "1", "the copy in flight on host1")
    assert (read(browser, row) or {}).get("status") == "UP" and text("Answering") == "yes"
    mark(browser)
    dc.agents[0].kill()  # host1's agent, in the middle of its copy
    wait_for(lambda: (read(browser, row) or {}).get("status") == "NON_RESPONSIVE", "NON_RESPONSIVE")
    assert text("Answering").startswith("no, since ") and text("Maintenance") == "no"
    assert "1 not answering" in browser.find_element(By.CSS_SELECTOR, ".summary").text
    assert still_marked(browser)

    # A phone's width: each row a card, nothing wider than the screen.
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True},
    )
    narrow = browser.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth,"
        " getComputedStyle(document.querySelector(arguments[0])).display];",
        row,
    )
    assert narrow[0] <= narrow[1] == 390 and narrow[2] == "block", narrow


def fetch(
    url: str, headers: dict[str, str] | None = None, tls: ssl.SSLContext | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request, redirects not followed: (status, headers, body)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 0
    connection = (
        http.client.HTTPSConnection(host, port, context=tls, timeout=10)
        if parts.scheme == "https"
        else http.client.HTTPConnection(host, port, timeout=10)
    )
    try:
        connection.request(
            "GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers or {}
        )
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_a_console_with_tokens_refuses_a_request_without_one(engine_factory, browser) -> None:
    engine = engine_factory(extra_args=[*UI, "--api-token", READER])
    status, headers, _ = fetch(engine.ui_url("/api/hosts"))
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    status, headers, _ = fetch(engine.ui_url("/hosts"))
    assert status == 303 and headers["location"] == "/login?next=%2Fhosts"
    bearer = {"Authorization": "Bearer a-long-read-only-secret"}
    assert fetch(engine.ui_url("/api/hosts"), bearer)[0] == 200
    assert fetch(engine.ui_url("/api/hosts"), {"Authorization": "Bearer nope"})[0] == 401

    # A person: sent to the login form, refused with a wrong token, let in with the right one.
    browser.get(engine.ui_url("/hosts"))
    assert "/login?next=" in browser.current_url
    field = browser.find_element(By.ID, "token")
    assert browser.find_element(By.CSS_SELECTOR, "label[for=token]").text == "API token"
    field.send_keys("not-the-token", Keys.ENTER)
    wait_for(lambda: "not accepted" in browser.page_source, "the refusal")
    browser.find_element(By.ID, "token").send_keys("a-long-read-only-secret", Keys.ENTER)
    wait_for(lambda: browser.current_url.endswith("/hosts"), "the hosts page")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Hosts"
    assert "viewer" in browser.find_element(By.CSS_SELECTOR, "header").text
    assert "console_session" not in browser.execute_script("return document.cookie;")  # HttpOnly
    before = browser.find_element(By.CSS_SELECTOR, "[data-text=updated]").text
    wait_for(
        lambda: browser.find_element(By.CSS_SELECTOR, "[data-text=updated]").text != before,
        "the page to keep polling with its session",
    )


def test_the_console_serves_https_with_the_apis_certificate(engine_factory, tmp_path) -> None:
    pki = init_pki(tmp_path / "pki")
    tls = ["--tls-cert", str(pki["engine"]), "--tls-key", str(pki["engine_key"])]
    engine = engine_factory(extra_args=[*UI, *tls], start=False)
    engine.client_tls = ClientTls(pki["ca"])
    engine.start()
    assert engine.ui_url().startswith("https://")
    trusted = ssl.create_default_context(cafile=str(pki["ca"]))
    status, headers, body = fetch(engine.ui_url("/api/hosts"), tls=trusted)
    assert status == 200 and b'"hosts":[]' in body
    plain = engine.ui_url("/api/hosts").replace("https://", "http://")
    try:
        status = fetch(plain)[0]
    except (OSError, http.client.HTTPException):
        status = 0
    assert status != 200  # no plaintext beside it
    assert list(engine.stub().ListHosts(pb.ListHostsRequest(), timeout=10).hosts) == []


def test_a_standby_serves_no_console_until_it_takes_over(engine_factory) -> None:
    active = engine_factory(extra_args=UI)
    standby = engine_factory("standby", database_url=active.database_url, start=False)
    standby.extra_args = UI
    standby.start(wait=False)
    assert standby.wait_listening() == "NOT_SERVING"
    assert fetch(active.ui_url("/api/reconciliation"))[0] == 200
    time.sleep(1.0)
    try:
        standby.ui_address  # noqa: B018
        raise AssertionError("a standby must not serve the console")
    except RuntimeError:
        pass
    active.kill()
    standby.wait_serving(timeout=30)
    status, _, body = fetch(standby.ui_url("/api/reconciliation"))
    assert status == 200 and b'"ran":true' in body
