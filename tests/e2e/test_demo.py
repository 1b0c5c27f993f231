"""`make demo` runs the real scenario: it must keep working, and keep telling the story."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_runs_and_shows_progress_the_report_and_both_outcomes() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,  # not a terminal: the demo does not wait for Enter
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "AddVmTemplate ACTIVE" in out and "tasks:" in out  # progress, per task
    assert "AddVmTemplate SUCCEEDED" in out
    assert "at startup: failed commands ['" in out and "adopted tasks 1" in out
    assert "engine restarted before the task reached the host" in out  # the second template
    assert "golden" in out and "OK" in out  # the first template
    assert "partial files on storage: none; tasks left on the hosts: 0" in out
    assert "console: http://127.0.0.1:" in out  # its address, first
    # A disk moved in two phases, then the good template removed.
    assert "MoveDisk SUCCEEDED" in out and "phase 2 (remove the source image)" in out
    assert "RemoveVmTemplate SUCCEEDED" in out
    assert "lists the same 8 commands" in out  # served again after both restarts
    assert "stdin is not a terminal: not waiting" in out
    assert out.rstrip().endswith("Demo finished.")
