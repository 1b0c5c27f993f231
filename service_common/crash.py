"""Named crash points (docs/design.md §6): the process dies there with `os._exit`, no cleanup,
when its environment variable names the point. Nothing happens when the variable is unset."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

CRASH_EXIT_CODE = 86


class CrashPoints:
    """The crash points a service declares, armed by naming one in `env_var`; calling the
    object with a point's name kills the process there when that point is armed."""

    def __init__(self, env_var: str, names: Sequence[str]) -> None:
        self.env_var = env_var
        self.names = tuple(names)

    def check_configured(self) -> str | None:
        """The configured point, or None; a name that is not a crash point is a startup error."""
        name = os.environ.get(self.env_var) or None
        if name is not None and name not in self.names:
            raise SystemExit(f"{self.env_var}={name!r} is not one of {', '.join(self.names)}")
        return name

    def __call__(self, name: str) -> None:
        assert name in self.names, name
        if os.environ.get(self.env_var) == name:
            sys.stderr.write(f"{self.env_var}={name}: crashing here on purpose\n")
            sys.stderr.flush()
            os._exit(CRASH_EXIT_CODE)
