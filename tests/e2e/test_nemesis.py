"""The nemesis's short run (`make nemesis` runs the long one): a seed whose schedule holds every
kind of fault, against real processes, a PostgreSQL of its own and, as root, a network namespace;
it must end with lost 0, stuck 0, leaked 0 and print the schedule its seed makes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness import nemesis
from tests.unit.test_nemesis import LAST_LINE

SEED, SECONDS = 23, 35  # schedule(23, 35) holds all six kinds of fault


def test_a_short_nemesis_run_loses_nothing() -> None:
    why = nemesis.unavailable()
    if why:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"REQUIRE_POSTGRES=1 but the nemesis cannot run: {why}")
        pytest.skip(f"the nemesis needs a PostgreSQL of its own: {why}")
    assert {f.kind for f in nemesis.schedule(SEED, SECONDS)} == set(nemesis.FAULT_KINDS)
    ran = subprocess.run(
        [sys.executable, "-m", "harness.nemesis", "--seconds", str(SECONDS), "--seed", str(SEED)],
        capture_output=True,
        text=True,
        timeout=420,
    )
    lines = ran.stdout.splitlines()
    assert ran.returncode == 0, ran.stdout[-6000:] + ran.stderr[-3000:]
    assert LAST_LINE.fullmatch(lines[-1]), lines[-1]
    assert lines[-1].endswith("lost 0, stuck 0, leaked 0")
    printed = nemesis.faults_of(iter(lines))
    expected = [f"{f.describe()}" for f in nemesis.schedule(SEED, SECONDS)]
    if "no partitions here" in ran.stdout:
        expected = [f.describe() for f in nemesis.schedule(SEED, SECONDS, partitions=False)]
    assert printed == expected
