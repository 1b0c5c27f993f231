from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.scenario import DataCenter, build_datacenter

# Debian's packages chromium and chromium-driver (.ci/run installs them when it can).
CHROMIUM = ("chromium", "/usr/bin/chromium")
CHROMEDRIVER = ("chromedriver", "/usr/bin/chromedriver")
# Headless, and nothing that reaches beyond this machine: its network is closed.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)


@pytest.fixture
def make_dc(agent_factory, engine_factory) -> Callable[..., tuple[DataCenter, str, str, str]]:
    """`make_dc(hosts=1, throttle=None, engine_args=None, disks=3, disk_bytes=2 MiB)`: a data
    center with a VM; returns (dc, vm, source domain, destination domain)."""

    def make(**kwargs: Any) -> tuple[DataCenter, str, str, str]:
        return build_datacenter(agent_factory, engine_factory, **kwargs)

    return make


def _found(names: tuple[str, str]) -> str | None:
    return shutil.which(names[0]) or (names[1] if os.access(names[1], os.X_OK) else None)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A headless Chromium driven by Selenium (a fresh profile), closed after the test. Skipped
    with the reason when Chromium, ChromeDriver or Selenium is missing, unless
    REQUIRE_BROWSER=1 (CI, once it installed them), where that is a failure."""
    chromium, chromedriver = _found(CHROMIUM), _found(CHROMEDRIVER)
    problem = None
    if chromium is None or chromedriver is None:
        problem = "no headless browser: apt-get install chromium chromium-driver"
    else:
        try:
            from selenium import webdriver
        except ImportError:
            problem = "selenium is not installed: pip install -e '.[dev]'"
    if problem is not None:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(problem)
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    service = webdriver.ChromeService(
        executable_path=str(chromedriver), log_output=str(tmp_path / "chromedriver.log")
    )
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
