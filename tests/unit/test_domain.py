from __future__ import annotations

import uuid

import pytest

from service_common.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from service_common.ids import require_uuid
from vdsm_agent.domain.tasks import (
    Code,
    CopyImageSpec,
    CreateVolumeSpec,
    ImageRef,
    Task,
    TaskResult,
    TaskState,
)

# Fixed, so that every test process collects the same parameters (pytest-xdist).
SOME_UUID = "0f2b6c7e-3d4a-4e5f-8a9b-1c2d3e4f5a6b"


def ref() -> ImageRef:
    return ImageRef(str(uuid.uuid4()), str(uuid.uuid4()))


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


@pytest.mark.parametrize(
    "spec",
    [CreateVolumeSpec(ref(), 123, b"\x00\xffab"), CopyImageSpec(ref(), ref())],
)
def test_task_records_round_trip(spec: CreateVolumeSpec | CopyImageSpec) -> None:
    task = Task(str(uuid.uuid4()), str(uuid.uuid4()), spec)
    task.start()
    task.finish(TaskResult.FAILURE, Code.DATA_LOSS, "did not verify")
    assert Task.from_record(task.to_record()) == task


def test_a_request_id_matches_only_the_same_request() -> None:
    spec = CopyImageSpec(ref(), ref())
    task = Task(str(uuid.uuid4()), str(uuid.uuid4()), spec)
    task.check_same_request(CopyImageSpec(spec.source, spec.target))
    with pytest.raises(AlreadyExists, match=task.request_id):
        task.check_same_request(CopyImageSpec(spec.source, ref()))
    with pytest.raises(AlreadyExists):
        task.check_same_request(CreateVolumeSpec(spec.target, 10))


def test_only_finished_tasks_can_be_cleared_and_success_is_complete() -> None:
    task = Task(str(uuid.uuid4()), str(uuid.uuid4()), CreateVolumeSpec(ref(), 10))
    for state in (TaskState.INIT, TaskState.RUNNING, TaskState.ABORTING, TaskState.CLEANING):
        task.state = state
        with pytest.raises(FailedPrecondition, match=state.value):
            task.check_clearable()
    task.progress_percent = 99
    task.finish(TaskResult.SUCCESS)
    task.check_clearable()
    assert (task.state, task.progress_percent, task.code) == (TaskState.FINISHED, 100, Code.OK)
