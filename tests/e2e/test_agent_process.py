"""The real `vdsm-agent` process, driven over gRPC on a free port."""

from __future__ import annotations

import hashlib
import os
import signal
import uuid
from pathlib import Path

import grpc
import pytest

from harness.agent_client import RPC_TIMEOUT, task_status, wait_task
from harness.ports import free_port
from harness.processes import AgentProcess
from vdsm_agent.v1 import agent_service_pb2 as pb

T = RPC_TIMEOUT
MiB = 1 << 20


def new_id() -> str:
    return str(uuid.uuid4())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def make_domain(agent: AgentProcess) -> str:
    sd = new_id()
    agent.stub().CreateStorageDomain(pb.CreateStorageDomainRequest(storage_domain_id=sd), timeout=T)
    return sd


def make_volume(agent: AgentProcess, sd: str, size: int, pattern: bytes = b"") -> str:
    image = new_id()
    stub = agent.stub()
    task_id = stub.CreateVolume(
        pb.CreateVolumeRequest(
            request_id=new_id(),
            storage_domain_id=sd,
            image_id=image,
            size_bytes=size,
            fill_pattern=pattern,
        ),
        timeout=T,
    ).task_id
    status = wait_task(stub, task_id)
    assert status.result == pb.TASK_RESULT_SUCCESS, status
    stub.ClearTask(pb.ClearTaskRequest(task_id=task_id), timeout=T)
    return image


def copy_request(
    src_sd: str,
    src_img: str,
    dst_sd: str,
    request_id: str | None = None,
    dst_img: str | None = None,
) -> pb.CopyImageRequest:
    return pb.CopyImageRequest(
        request_id=request_id or new_id(),
        src_storage_domain_id=src_sd,
        src_image_id=src_img,
        dst_storage_domain_id=dst_sd,
        dst_image_id=dst_img or new_id(),
    )


def remove_request(sd: str, image: str, request_id: str | None = None) -> pb.RemoveImageRequest:
    return pb.RemoveImageRequest(
        request_id=request_id or new_id(), storage_domain_id=sd, image_id=image
    )


def partials(root: Path) -> list[Path]:
    return sorted(root.rglob("*.partial"))


def test_create_two_domains_create_volume_and_copy_it_byte_for_byte(agent: AgentProcess) -> None:
    stub = agent.stub()
    src_sd, dst_sd = make_domain(agent), make_domain(agent)
    assert (agent.storage_root / src_sd / "images").is_dir()
    assert (agent.storage_root / dst_sd / "images").is_dir()
    pattern = bytes(range(256)) * 3 + b"tail"
    image = make_volume(agent, src_sd, 3 * MiB + 17, pattern)
    src_path = agent.image_path(src_sd, image)
    data = src_path.read_bytes()
    assert len(data) == 3 * MiB + 17
    assert data[: len(pattern) * 2] == pattern * 2

    req = copy_request(src_sd, image, dst_sd)
    task_id = stub.CopyImage(req, timeout=T).task_id
    status = wait_task(stub, task_id)
    assert status.result == pb.TASK_RESULT_SUCCESS
    assert status.progress_percent == 100
    assert status.code == 0 and status.message == ""
    assert sha256(agent.image_path(dst_sd, req.dst_image_id)) == sha256(src_path)
    assert partials(agent.storage_root) == []

    info = stub.GetAllTasksInfo(pb.GetAllTasksInfoRequest(), timeout=T).tasks
    assert [(t.task_id, t.request_id, t.verb, t.storage_domain_id, t.image_id) for t in info] == [
        (task_id, req.request_id, "CopyImage", dst_sd, req.dst_image_id)
    ]
    stub.ClearTask(pb.ClearTaskRequest(task_id=task_id), timeout=T)
    assert stub.GetAllTasksStatuses(pb.GetAllTasksStatusesRequest(), timeout=T).statuses == []


def test_create_storage_domain_is_idempotent(agent: AgentProcess) -> None:
    sd = make_domain(agent)
    image = make_volume(agent, sd, 4096)
    agent.stub().CreateStorageDomain(pb.CreateStorageDomainRequest(storage_domain_id=sd), timeout=T)
    assert agent.image_path(sd, image).exists()


def test_same_request_id_returns_the_same_task_and_starts_no_second_job(
    agent: AgentProcess,
) -> None:
    stub = agent.stub()
    sd = make_domain(agent)
    image = make_volume(agent, sd, MiB)
    req = copy_request(sd, image, sd)
    first = stub.CopyImage(req, timeout=T).task_id
    again = stub.CopyImage(req, timeout=T).task_id
    wait_task(stub, first)
    after_finish = stub.CopyImage(req, timeout=T).task_id
    assert first == again == after_finish
    statuses = stub.GetAllTasksStatuses(pb.GetAllTasksStatusesRequest(), timeout=T).statuses
    assert [s.task_id for s in statuses] == [first]

    # The same request id with other arguments is refused, and starts nothing.
    other = copy_request(sd, image, sd, request_id=req.request_id)
    with pytest.raises(grpc.RpcError) as err:
        stub.CopyImage(other, timeout=T)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert req.request_id in str(err.value.details())
    with pytest.raises(grpc.RpcError) as err:
        stub.CreateVolume(
            pb.CreateVolumeRequest(
                request_id=req.request_id, storage_domain_id=sd, image_id=new_id(), size_bytes=10
            ),
            timeout=T,
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert not agent.image_path(sd, other.dst_image_id).exists()
    assert len(stub.GetAllTasksInfo(pb.GetAllTasksInfoRequest(), timeout=T).tasks) == 1


def test_stop_a_throttled_copy_removes_its_partial_file(agent_factory) -> None:
    fast = agent_factory("host1")
    slow = agent_factory("host2", throttle=2 * MiB)  # shares fast's storage root
    sd = make_domain(fast)
    image = make_volume(fast, sd, 8 * MiB)
    stub = slow.stub()
    req = copy_request(sd, image, sd)
    task_id = stub.CopyImage(req, timeout=T).task_id
    running = wait_task(stub, task_id, lambda s: s.progress_percent >= 5, timeout=20)
    assert running.state == pb.TASK_STATE_RUNNING
    assert len(partials(slow.storage_root)) == 1  # the copy really is in progress

    stub.StopTask(pb.StopTaskRequest(task_id=task_id), timeout=T)
    status = wait_task(stub, task_id, timeout=10)
    assert status.result == pb.TASK_RESULT_CLEAN_SUCCESS
    assert status.code == grpc.StatusCode.CANCELLED.value[0]
    assert "StopTask" in status.message
    assert partials(slow.storage_root) == []
    assert not slow.image_path(sd, req.dst_image_id).exists()
    # Stopping a finished task changes nothing.
    stub.StopTask(pb.StopTaskRequest(task_id=task_id), timeout=T)
    assert task_status(stub, task_id) == status


def test_clear_refuses_unfinished_tasks_and_forgets_finished_ones_for_good(agent_factory) -> None:
    fast = agent_factory("host1")
    slow = agent_factory("host2", throttle=MiB)
    sd = make_domain(fast)
    image = make_volume(fast, sd, 4 * MiB)
    stub = slow.stub()
    task_id = stub.CopyImage(copy_request(sd, image, sd), timeout=T).task_id
    with pytest.raises(grpc.RpcError) as err:
        stub.ClearTask(pb.ClearTaskRequest(task_id=task_id), timeout=T)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert task_id in str(err.value.details())

    stub.StopTask(pb.StopTaskRequest(task_id=task_id), timeout=T)
    wait_task(stub, task_id)
    stub.ClearTask(pb.ClearTaskRequest(task_id=task_id), timeout=T)
    for _ in range(2):  # before and after a restart
        with pytest.raises(grpc.RpcError) as err:
            stub.GetTaskStatus(pb.GetTaskStatusRequest(task_id=task_id), timeout=T)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        slow.kill()
        slow.start()
    with pytest.raises(grpc.RpcError) as err:
        stub.ClearTask(pb.ClearTaskRequest(task_id=task_id), timeout=T)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_clear_tasks_clears_many_at_once_each_with_its_own_outcome_for_good(
    agent_factory,
) -> None:
    agent = agent_factory("host1")
    sd = make_domain(agent)
    stub = agent.stub()
    done = []
    for _ in range(3):
        request = pb.CreateVolumeRequest(
            request_id=new_id(), storage_domain_id=sd, image_id=new_id(), size_bytes=4096
        )
        done.append(stub.CreateVolume(request, timeout=T).task_id)
    for task_id in done:
        wait_task(stub, task_id)
    unknown = new_id()
    reply = stub.ClearTasks(pb.ClearTasksRequest(task_ids=[*done, unknown]), timeout=T)
    assert [(r.task_id, r.outcome) for r in reply.results] == [
        *((t, pb.CLEAR_OUTCOME_CLEARED) for t in done),
        (unknown, pb.CLEAR_OUTCOME_NOT_FOUND),
    ]
    agent.kill()
    agent.start()
    listed = stub.GetAllTasksStatuses(pb.GetAllTasksStatusesRequest(), timeout=T)
    assert not {s.task_id for s in listed.statuses} & set(done)  # gone after a restart too
    with pytest.raises(grpc.RpcError) as err:
        stub.ClearTasks(pb.ClearTasksRequest(task_ids=[done[0], "x"]), timeout=T)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "task_ids[1]" in str(err.value.details())


def test_delete_image(agent: AgentProcess) -> None:
    stub = agent.stub()
    sd = make_domain(agent)
    image = make_volume(agent, sd, 4096)
    # Work in progress of the image that no recorded task owns is deleted with it.
    stray = agent.image_path(sd, image).with_name(f"{image}.{new_id()}.partial")
    stray.write_bytes(b"left by a task the agent forgot")
    other = agent.image_path(sd, new_id()).with_name(f"{new_id()}.{new_id()}.partial")
    other.write_bytes(b"not this image's")
    stub.DeleteImage(pb.DeleteImageRequest(storage_domain_id=sd, image_id=image), timeout=T)
    assert not agent.image_path(sd, image).exists() and not stray.exists()
    assert other.exists()
    with pytest.raises(grpc.RpcError) as err:
        stub.DeleteImage(pb.DeleteImageRequest(storage_domain_id=sd, image_id=image), timeout=T)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("verb", "field"),
    [
        ("CreateStorageDomain", "storage_domain_id"),
        ("CreateVolume", "request_id"),
        ("CreateVolume", "storage_domain_id"),
        ("CreateVolume", "image_id"),
        ("CopyImage", "request_id"),
        ("CopyImage", "src_storage_domain_id"),
        ("CopyImage", "src_image_id"),
        ("CopyImage", "dst_storage_domain_id"),
        ("CopyImage", "dst_image_id"),
        ("DeleteImage", "storage_domain_id"),
        ("DeleteImage", "image_id"),
        ("RemoveImage", "request_id"),
        ("RemoveImage", "storage_domain_id"),
        ("RemoveImage", "image_id"),
        ("GetTaskStatus", "task_id"),
        ("StopTask", "task_id"),
        ("ClearTask", "task_id"),
    ],
)
def test_path_escapes_through_every_id_field_are_invalid_argument(
    agent: AgentProcess, tmp_path: Path, verb: str, field: str
) -> None:
    stub = agent.stub()
    sd = make_domain(agent)
    image = make_volume(agent, sd, 4096)
    valid = {
        "request_id": new_id(),
        "storage_domain_id": sd,
        "image_id": new_id(),
        "size_bytes": 4096,
        "src_storage_domain_id": sd,
        "src_image_id": image,
        "dst_storage_domain_id": sd,
        "dst_image_id": new_id(),
        "task_id": new_id(),
    }
    if verb in ("DeleteImage", "RemoveImage"):
        valid["image_id"] = image
    request_type = getattr(pb, f"{verb}Request")
    names = {f.name for f in request_type.DESCRIPTOR.fields}
    outside = tmp_path / "outside"
    outside.mkdir()
    before = files_under(tmp_path)
    for evil in [
        "../outside",
        "..",
        "/etc/passwd",
        f"{sd}/../..",
        f"../{sd}",
        str(outside),
        "a" * 36,
        "",
        f"{sd}\0",
    ]:
        request = request_type(**{k: v for k, v in valid.items() if k in names} | {field: evil})
        with pytest.raises(grpc.RpcError) as err:
            getattr(stub, verb)(request, timeout=T)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (evil, err.value.details())
        assert field in str(err.value.details())
    assert files_under(tmp_path) == before


def test_symbolic_links_are_never_followed_out_of_the_storage_root(
    agent: AgentProcess, tmp_path: Path
) -> None:
    stub = agent.stub()
    outside = tmp_path / "outside"
    (outside / "images").mkdir(parents=True)
    secret = outside / "secret"
    secret.write_bytes(b"not yours")
    before = files_under(outside)

    # A domain directory that is a link to a directory outside the root.
    evil_sd = new_id()
    (agent.storage_root / evil_sd).symlink_to(outside, target_is_directory=True)
    with pytest.raises(grpc.RpcError) as err:
        stub.CreateVolume(
            pb.CreateVolumeRequest(
                request_id=new_id(), storage_domain_id=evil_sd, image_id=new_id(), size_bytes=10
            ),
            timeout=T,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "storage_domain_id" in str(err.value.details())
    with pytest.raises(grpc.RpcError) as err:
        stub.CreateStorageDomain(
            pb.CreateStorageDomainRequest(storage_domain_id=evil_sd), timeout=T
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # An image that is a link to a file outside the root: neither copied nor deleted.
    sd = make_domain(agent)
    evil_image = new_id()
    agent.image_path(sd, evil_image).symlink_to(secret)
    with pytest.raises(grpc.RpcError) as err:
        stub.CopyImage(copy_request(sd, evil_image, sd), timeout=T)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "src_image_id" in str(err.value.details())
    with pytest.raises(grpc.RpcError) as err:
        stub.DeleteImage(
            pb.DeleteImageRequest(storage_domain_id=sd, image_id=evil_image), timeout=T
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        stub.RemoveImage(remove_request(sd, evil_image), timeout=T)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "image_id" in str(err.value.details())
    assert files_under(outside) == before
    assert secret.read_bytes() == b"not yours"
    assert stub.GetAllTasksInfo(pb.GetAllTasksInfoRequest(), timeout=T).tasks == []


def test_validation_errors_name_the_field_and_write_nothing(agent: AgentProcess) -> None:
    stub = agent.stub()
    sd = make_domain(agent)
    image = make_volume(agent, sd, 4096)
    before = files_under(agent.storage_root)
    cases = [
        (
            stub.CreateVolume,
            pb.CreateVolumeRequest(
                request_id=new_id(), storage_domain_id=sd, image_id=new_id(), size_bytes=0
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "size_bytes",
        ),
        (
            stub.CreateVolume,
            pb.CreateVolumeRequest(
                request_id=new_id(), storage_domain_id=sd, image_id=new_id(), size_bytes=-5
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "size_bytes",
        ),
        (
            stub.CreateVolume,
            pb.CreateVolumeRequest(
                request_id=new_id(),
                storage_domain_id=sd,
                image_id=new_id(),
                size_bytes=1,
                fill_pattern=b"x" * 5000,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "fill_pattern",
        ),
        (
            stub.CreateVolume,
            pb.CreateVolumeRequest(
                request_id=new_id(), storage_domain_id=new_id(), image_id=new_id(), size_bytes=1
            ),
            grpc.StatusCode.NOT_FOUND,
            "storage domain",
        ),
        (
            stub.CreateVolume,
            pb.CreateVolumeRequest(
                request_id=new_id(), storage_domain_id=sd, image_id=image, size_bytes=1
            ),
            grpc.StatusCode.ALREADY_EXISTS,
            image,
        ),
        (
            stub.CreateVolume,
            pb.CreateVolumeRequest(
                request_id=new_id(), storage_domain_id=sd, image_id=new_id(), size_bytes=1 << 40
            ),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "free",
        ),
        (stub.CopyImage, copy_request(sd, new_id(), sd), grpc.StatusCode.NOT_FOUND, "source image"),
        (
            stub.CopyImage,
            copy_request(sd, image, new_id()),
            grpc.StatusCode.NOT_FOUND,
            "storage domain",
        ),
        (
            stub.CopyImage,
            copy_request(sd, image, sd, dst_img=image),
            grpc.StatusCode.ALREADY_EXISTS,
            image,
        ),
        (
            stub.GetTaskStatus,
            pb.GetTaskStatusRequest(task_id=new_id()),
            grpc.StatusCode.NOT_FOUND,
            "not known",
        ),
        (
            stub.StopTask,
            pb.StopTaskRequest(task_id=new_id()),
            grpc.StatusCode.NOT_FOUND,
            "not known",
        ),
    ]
    for call, request, code, words in cases:
        with pytest.raises(grpc.RpcError) as err:
            call(request, timeout=T)
        assert err.value.code() == code, (request, err.value.details())
        assert words in str(err.value.details())
    assert files_under(agent.storage_root) == before
    assert stub.GetAllTasksInfo(pb.GetAllTasksInfoRequest(), timeout=T).tasks == []


def test_kill_9_mid_copy_reports_clean_failure_and_removes_the_partial_file(agent_factory) -> None:
    fast = agent_factory("host1")
    slow = agent_factory("host2", throttle=2 * MiB)
    sd = make_domain(fast)
    image = make_volume(fast, sd, 8 * MiB)
    done_image = make_volume(fast, sd, 4096)
    stub = slow.stub()
    # A finished task, a running copy, and a queued-or-running creation when the agent dies.
    finished_req = copy_request(sd, done_image, sd)
    finished_id = stub.CopyImage(finished_req, timeout=T).task_id
    wait_task(stub, finished_id)
    req = copy_request(sd, image, sd)
    task_id = stub.CopyImage(req, timeout=T).task_id
    wait_task(stub, task_id, lambda s: s.progress_percent >= 10, timeout=20)
    assert len(partials(slow.storage_root)) == 1

    slow.kill()
    assert len(partials(slow.storage_root)) == 1  # nobody cleaned up: it really died mid-copy
    slow.start()

    status = task_status(stub, task_id)
    assert status.state == pb.TASK_STATE_FINISHED
    assert status.result == pb.TASK_RESULT_CLEAN_FAILURE
    assert "restart" in status.message
    assert partials(slow.storage_root) == []
    assert not slow.image_path(sd, req.dst_image_id).exists()
    finished = task_status(stub, finished_id)
    assert finished.result == pb.TASK_RESULT_SUCCESS
    assert sha256(slow.image_path(sd, finished_req.dst_image_id)) == sha256(
        slow.image_path(sd, done_image)
    )
    # The engine's retry with the same request id finds the same, finished task.
    assert stub.CopyImage(req, timeout=T).task_id == task_id
    info = {
        t.request_id: t.task_id
        for t in stub.GetAllTasksInfo(pb.GetAllTasksInfoRequest(), timeout=T).tasks
    }
    assert info == {req.request_id: task_id, finished_req.request_id: finished_id}


def test_crash_point_mid_copy(agent_factory) -> None:
    fast = agent_factory("host1")
    crashing = agent_factory("host2", throttle=4 * MiB, crash_at="mid_copy")
    sd = make_domain(fast)
    image = make_volume(fast, sd, 4 * MiB)
    stub = crashing.stub()
    req = copy_request(sd, image, sd)
    task_id = stub.CopyImage(req, timeout=T).task_id
    crashing.wait_crashed(timeout=30)
    assert len(partials(crashing.storage_root)) == 1
    crashing.start()
    status = task_status(stub, task_id)
    assert (status.state, status.result) == (pb.TASK_STATE_FINISHED, pb.TASK_RESULT_CLEAN_FAILURE)
    assert partials(crashing.storage_root) == []
    assert not crashing.image_path(sd, req.dst_image_id).exists()


def test_start_tasks_takes_each_start_as_its_own_rpc_would_and_keeps_them_across_kill_9(
    agent_factory,
) -> None:
    agent = agent_factory("host1")
    sd = make_domain(agent)
    image = make_volume(agent, sd, 4096)
    stub = agent.stub()
    copy = copy_request(sd, image, sd)
    volume = pb.CreateVolumeRequest(
        request_id=new_id(), storage_domain_id=sd, image_id=new_id(), size_bytes=4096
    )
    missing = copy_request(sd, new_id(), sd)  # no such source: refused, the others taken
    starts = [
        pb.TaskStart(copy_image=copy),
        pb.TaskStart(copy_image=missing),
        pb.TaskStart(create_volume=volume),
    ]
    reply = stub.StartTasks(pb.StartTasksRequest(starts=starts), timeout=T)
    taken, refused, made = reply.results
    assert taken.code == 0 and made.code == 0 and taken.task_id and made.task_id
    assert refused.code == grpc.StatusCode.NOT_FOUND.value[0] and not refused.task_id
    assert "does not exist" in refused.message
    again = stub.StartTasks(pb.StartTasksRequest(starts=[starts[0], starts[2]]), timeout=T)
    assert [r.task_id for r in again.results] == [taken.task_id, made.task_id]  # idempotent
    agent.kill()
    agent.start()
    info = stub.GetAllTasksInfo(pb.GetAllTasksInfoRequest(), timeout=T).tasks
    assert {(t.task_id, t.request_id) for t in info} == {
        (taken.task_id, copy.request_id),
        (made.task_id, volume.request_id),
    }
    with pytest.raises(grpc.RpcError) as err:
        bad = pb.TaskStart(copy_image=copy_request(sd, image, sd, dst_img="../x"))
        stub.StartTasks(pb.StartTasksRequest(starts=[starts[2], bad]), timeout=T)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "starts[1].copy_image.dst_image_id" in str(err.value.details())


def test_crash_point_after_task_persist_the_retry_returns_the_same_task(agent_factory) -> None:
    fast = agent_factory("host1")
    crashing = agent_factory("host2", crash_at="after_task_persist")
    sd = make_domain(fast)
    image = make_volume(fast, sd, MiB)
    stub = crashing.stub()
    req = copy_request(sd, image, sd)
    with pytest.raises(grpc.RpcError) as err:
        stub.CopyImage(req, timeout=T)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # the reply never came
    crashing.wait_crashed()
    crashing.start()
    info = stub.GetAllTasksInfo(pb.GetAllTasksInfoRequest(), timeout=T).tasks
    assert [(t.request_id, t.verb) for t in info] == [(req.request_id, "CopyImage")]
    assert stub.CopyImage(req, timeout=T).task_id == info[0].task_id
    status = task_status(stub, info[0].task_id)
    assert (status.state, status.result) == (pb.TASK_STATE_FINISHED, pb.TASK_RESULT_CLEAN_FAILURE)
    assert partials(crashing.storage_root) == []


def test_sigterm_stops_gracefully_and_interrupted_tasks_end_clean(agent_factory) -> None:
    fast = agent_factory("host1")
    slow = agent_factory("host2", throttle=MiB)
    sd = make_domain(fast)
    image = make_volume(fast, sd, 8 * MiB)
    stub = slow.stub()
    task_id = stub.CopyImage(copy_request(sd, image, sd), timeout=T).task_id
    wait_task(stub, task_id, lambda s: s.state == pb.TASK_STATE_RUNNING)
    assert slow.terminate() == 0
    assert partials(slow.storage_root) == []
    slow.start()
    status = task_status(stub, task_id)
    assert status.result == pb.TASK_RESULT_CLEAN_FAILURE
    assert "shutting down" in status.message


def test_unknown_crash_point_refuses_to_start(tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path / "a")
    with pytest.raises(Exception, match="not one of"):
        agent.start(crash_at="no_such_point", timeout=20)


def test_throttle_limits_creations_too(agent_factory) -> None:
    slow = agent_factory("host1", throttle=MiB)
    sd = make_domain(slow)
    stub = slow.stub()
    task_id = stub.CreateVolume(
        pb.CreateVolumeRequest(
            request_id=new_id(), storage_domain_id=sd, image_id=new_id(), size_bytes=3 * MiB
        ),
        timeout=T,
    ).task_id
    seen = wait_task(stub, task_id, lambda s: 20 <= s.progress_percent < 100, timeout=10)
    assert seen.state == pb.TASK_STATE_RUNNING
    assert wait_task(stub, task_id, timeout=20).result == pb.TASK_RESULT_SUCCESS


def test_metrics_endpoint(tmp_path: Path) -> None:
    import urllib.request

    port = free_port()
    agent = AgentProcess(tmp_path / "a", extra_args=["--metrics-listen", f"127.0.0.1:{port}"])
    try:
        agent.start()
        sd = make_domain(agent)
        make_volume(agent, sd, MiB)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        assert b'vdsm_agent_tasks_finished_total{result="success",verb="CreateVolume"} 1.0' in text
        assert b"vdsm_agent_bytes_written_total 1.048576e+06" in text
    finally:
        agent.close()


def test_state_directory_records_are_the_only_state(agent: AgentProcess) -> None:
    sd = make_domain(agent)
    stub = agent.stub()
    task_id = stub.CreateVolume(
        pb.CreateVolumeRequest(
            request_id=new_id(), storage_domain_id=sd, image_id=new_id(), size_bytes=10
        ),
        timeout=T,
    ).task_id
    wait_task(stub, task_id)
    records = sorted(os.listdir(agent.state_dir / "tasks"))
    assert records == ["journal"]  # its lines: the task accepted, started, finished
    journal = (agent.state_dir / "tasks" / "journal").read_bytes().splitlines()
    assert [line.split(b" ", 1)[0].decode() for line in journal] == [task_id] * 3
    agent.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    agent.proc.wait()  # type: ignore[union-attr]
    agent.start()
    assert task_status(stub, task_id).result == pb.TASK_RESULT_SUCCESS


def test_a_client_knowing_only_the_address_lists_services_and_checks_health(
    agent: AgentProcess,
) -> None:
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    from service_common.health_probe import check

    with grpc.insecure_channel(agent.address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {"vdsm_agent.v1.AgentService", "grpc.health.v1.Health"} <= services
        pool = DescriptorPool(database)
        service = pool.FindServiceByName("vdsm_agent.v1.AgentService")
        assert {m.name for m in service.methods} == {
            "CreateStorageDomain",
            "CreateVolume",
            "CopyImage",
            "DeleteImage",
            "RemoveImage",
            "GetAllTasksStatuses",
            "GetAllTasksInfo",
            "GetTaskStatus",
            "StopTask",
            "ClearTask",
            "ClearTasks",
            "StartTasks",
        }
        status = pool.FindEnumTypeByName("vdsm_agent.v1.TaskResult")
        assert "TASK_RESULT_CLEAN_FAILURE" in status.values_by_name
    assert check(agent.address) == "SERVING"
    assert check(agent.address, "vdsm_agent.v1.AgentService") == "SERVING"
