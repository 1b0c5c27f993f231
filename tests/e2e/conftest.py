from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness.scenario import DataCenter, build_datacenter


@pytest.fixture
def make_dc(agent_factory, engine_factory) -> Callable[..., tuple[DataCenter, str, str, str]]:
    """`make_dc(hosts=1, throttle=None, engine_args=None, disks=3, disk_bytes=2 MiB)`: a data
    center with a VM; returns (dc, vm, source domain, destination domain)."""

    def make(**kwargs: Any) -> tuple[DataCenter, str, str, str]:
        return build_datacenter(agent_factory, engine_factory, **kwargs)

    return make
