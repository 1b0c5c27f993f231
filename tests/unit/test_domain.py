"""Id validation, which keeps every path the agent builds inside its storage root.

The agent's task rules are in test_agent_tasks.py, its TaskManager in test_agent_task_manager.py.
"""

from __future__ import annotations

import uuid

import pytest

from service_common.errors import InvalidArgument
from service_common.ids import require_uuid

# Fixed, so that every test process collects the same parameters (pytest-xdist).
SOME_UUID = "0f2b6c7e-3d4a-4e5f-8a9b-1c2d3e4f5a6b"


def test_require_uuid_accepts_canonical_ids_and_lowers_them() -> None:
    value = str(uuid.uuid4())
    assert require_uuid("image_id", value) == value
    assert require_uuid("image_id", value.upper()) == value


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "..",
        "../etc/passwd",
        "/etc/passwd",
        "x" * 36,
        SOME_UUID + "/..",
        SOME_UUID.replace("-", ""),
        "{" + SOME_UUID + "}",
        SOME_UUID[:-1] + "\n",
        "a" * 10_000,
    ],
)
def test_require_uuid_refuses_anything_else_naming_the_field(bad: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        require_uuid("dst_image_id", bad)
    assert err.value.field == "dst_image_id"
    assert str(err.value).startswith("dst_image_id: ")
    assert len(str(err.value)) < 200  # a huge value is not echoed back whole
