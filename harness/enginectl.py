"""Running the real `enginectl` against an engine, as a script or a person would."""

from __future__ import annotations

import os
import subprocess
import sys


def run(
    address: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`enginectl ARGS` with ENGINECTL_ADDRESS=address; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "engine_service.entrypoints.cli", *args],
        env={**os.environ, **(env or {}), "ENGINECTL_ADDRESS": address},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
