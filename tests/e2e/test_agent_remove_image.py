"""RemoveImage on the real `vdsm-agent` process: an image removal that is a task (docs/design.md
§9), driven over gRPC, through a crash and a restart."""

from __future__ import annotations

import grpc
import pytest

from harness.agent_client import task_status, wait_task
from harness.processes import AgentProcess
from tests.e2e.test_agent_process import (
    MiB,
    T,
    copy_request,
    files_under,
    make_domain,
    make_volume,
    new_id,
    partials,
    remove_request,
)
from vdsm_agent.v1 import agent_service_pb2 as pb


def infos(stub) -> list[tuple[str, str, str, str, str]]:
    tasks = stub.GetAllTasksInfo(pb.GetAllTasksInfoRequest(), timeout=T).tasks
    return [(t.task_id, t.request_id, t.verb, t.storage_domain_id, t.image_id) for t in tasks]


def test_remove_image_through_a_task_that_is_listed_and_clearable(agent: AgentProcess) -> None:
    stub = agent.stub()
    sd = make_domain(agent)
    image = make_volume(agent, sd, MiB)
    stray = agent.image_path(sd, image).with_name(f"{image}.{new_id()}.partial")
    stray.write_bytes(b"left by a task the agent forgot")
    kept = make_volume(agent, sd, 4096)
    req = remove_request(sd, image)
    task_id = stub.RemoveImage(req, timeout=T).task_id

    status = wait_task(stub, task_id)
    assert (status.state, status.result, status.progress_percent, status.code, status.message) == (
        pb.TASK_STATE_FINISHED,
        pb.TASK_RESULT_SUCCESS,
        100,
        0,
        "",
    )
    assert not agent.image_path(sd, image).exists() and not stray.exists()
    assert agent.image_path(sd, kept).exists()
    assert infos(stub) == [(task_id, req.request_id, "RemoveImage", sd, image)]
    statuses = stub.GetAllTasksStatuses(pb.GetAllTasksStatusesRequest(), timeout=T).statuses
    assert [s.task_id for s in statuses] == [task_id]

    # Removing an image that is not there (any more) succeeds: the image is gone.
    again = stub.RemoveImage(remove_request(sd, image), timeout=T).task_id
    assert wait_task(stub, again).result == pb.TASK_RESULT_SUCCESS

    # Durable: the record and the removal both survive kill -9.
    agent.kill()
    agent.start()
    assert task_status(stub, task_id) == status
    assert not agent.image_path(sd, image).exists()
    for cleared in (task_id, again):
        stub.ClearTask(pb.ClearTaskRequest(task_id=cleared), timeout=T)
    assert infos(stub) == []
    with pytest.raises(grpc.RpcError) as err:
        stub.GetTaskStatus(pb.GetTaskStatusRequest(task_id=task_id), timeout=T)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_same_request_id_returns_the_same_removal(agent: AgentProcess) -> None:
    stub = agent.stub()
    sd = make_domain(agent)
    image = make_volume(agent, sd, 4096)
    req = remove_request(sd, image)
    first = stub.RemoveImage(req, timeout=T).task_id
    assert stub.RemoveImage(req, timeout=T).task_id == first
    wait_task(stub, first)
    upper = remove_request(sd.upper(), image.upper(), req.request_id.upper())
    assert stub.RemoveImage(upper, timeout=T).task_id == first  # also once it finished

    other = make_volume(agent, sd, 4096)
    with pytest.raises(grpc.RpcError) as err:
        stub.RemoveImage(remove_request(sd, other, req.request_id), timeout=T)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert req.request_id in str(err.value.details())
    assert agent.image_path(sd, other).exists()  # the refused request removed nothing
    assert [t[0] for t in infos(stub)] == [first]


def test_an_image_a_copy_reads_is_not_removed_and_the_refusal_names_the_copy(
    agent_factory,
) -> None:
    fast = agent_factory("host1")
    slow = agent_factory("host2", throttle=MiB)  # shares fast's storage root
    sd = make_domain(fast)
    image = make_volume(fast, sd, 4 * MiB)
    stub = slow.stub()
    copy = stub.CopyImage(copy_request(sd, image, sd), timeout=T).task_id
    before = files_under(slow.storage_root)
    with pytest.raises(grpc.RpcError) as err:
        stub.RemoveImage(remove_request(sd, image), timeout=T)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert copy in str(err.value.details())
    assert [t[0] for t in infos(stub)] == [copy]  # nothing was started
    stub.StopTask(pb.StopTaskRequest(task_id=copy), timeout=T)
    wait_task(stub, copy)
    assert slow.image_path(sd, image).exists() and before >= files_under(slow.storage_root)
    removal = stub.RemoveImage(remove_request(sd, image), timeout=T).task_id
    assert wait_task(stub, removal).result == pb.TASK_RESULT_SUCCESS
    assert not slow.image_path(sd, image).exists() and partials(slow.storage_root) == []


def test_bad_requests_are_refused_and_write_nothing(agent: AgentProcess) -> None:
    stub = agent.stub()
    sd = make_domain(agent)
    image = make_volume(agent, sd, 4096)
    before = files_under(agent.storage_root)
    cases = [
        (
            pb.RemoveImageRequest(storage_domain_id=sd, image_id=image),  # no request id
            grpc.StatusCode.INVALID_ARGUMENT,
            "request_id",
        ),
        (
            remove_request("not-a-uuid", image),
            grpc.StatusCode.INVALID_ARGUMENT,
            "storage_domain_id",
        ),
        (remove_request(sd, "../" + image), grpc.StatusCode.INVALID_ARGUMENT, "image_id"),
        (remove_request(new_id(), image), grpc.StatusCode.NOT_FOUND, "storage domain"),
    ]
    for request, code, words in cases:
        with pytest.raises(grpc.RpcError) as err:
            stub.RemoveImage(request, timeout=T)
        assert err.value.code() == code, (request, err.value.details())
        assert words in str(err.value.details())
    assert files_under(agent.storage_root) == before
    assert infos(stub) == []


def test_crash_after_task_persist_the_retry_finds_the_removal_and_the_image_stays(
    agent_factory,
) -> None:
    fast = agent_factory("host1")
    crashing = agent_factory("host2", crash_at="after_task_persist")
    sd = make_domain(fast)
    image = make_volume(fast, sd, MiB)
    stub = crashing.stub()
    req = remove_request(sd, image)
    with pytest.raises(grpc.RpcError) as err:
        stub.RemoveImage(req, timeout=T)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # the reply never came
    crashing.wait_crashed()
    crashing.start()

    [(task_id, request_id, verb, task_sd, task_image)] = infos(stub)
    assert (request_id, verb, task_sd, task_image) == (req.request_id, "RemoveImage", sd, image)
    assert stub.RemoveImage(req, timeout=T).task_id == task_id  # the retry: the same task
    status = task_status(stub, task_id)
    # Accepted but never begun: a restart removes nothing, and says so.
    assert (status.state, status.result, status.code) == (
        pb.TASK_STATE_FINISHED,
        pb.TASK_RESULT_CLEAN_FAILURE,
        grpc.StatusCode.UNAVAILABLE.value[0],
    )
    assert "the image was not removed" in status.message
    assert crashing.image_path(sd, image).exists()

    # A new request removes it; both tasks clear.
    again = stub.RemoveImage(remove_request(sd, image), timeout=T).task_id
    assert wait_task(stub, again).result == pb.TASK_RESULT_SUCCESS
    assert not crashing.image_path(sd, image).exists()
    for cleared in (task_id, again):
        stub.ClearTask(pb.ClearTaskRequest(task_id=cleared), timeout=T)
    assert infos(stub) == []
