"""The version of the three programs: the installed distribution's, from its metadata."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as distribution_version

DISTRIBUTION = "durable-virt-tasks"  # [project] name in pyproject.toml


def version() -> str:
    """The distribution's version; `0+unknown` when it runs from a tree that is not installed."""
    try:
        return distribution_version(DISTRIBUTION)
    except PackageNotFoundError:
        return "0+unknown"
