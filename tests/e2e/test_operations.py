"""What an operator relies on: metrics, structured logs, health and reflection, SIGTERM."""

from __future__ import annotations

import json
import re
import urllib.request

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from engine_service.v1 import engine_service_pb2 as pb
from harness.engine_client import wait_command
from harness.ports import free_port
from service_common.health_probe import check

MiB = 1 << 20


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_metrics_move_during_a_template_and_logs_are_json_with_context(make_dc) -> None:
    port = free_port()
    dc, vm, src, dst = make_dc(
        throttle=4 * MiB,
        engine_args=["--metrics-listen", f"127.0.0.1:{port}", "--log-format", "json"],
    )
    ended = 'engine_commands_ended_total{action_type="AddVmTemplate",status="SUCCEEDED"}'
    copies = 'engine_agent_rpc_seconds_count{method="CopyImage"}'
    batches = 'engine_agent_rpc_seconds_count{method="StartTasks"}'
    before = scrape(port)
    assert before.get(ended, 0) == 0
    reply = dc.start_template(vm, "observed", dst)
    during = scrape(port)
    # the first copy alone, the two others in one StartTasks call
    assert during[copies] == before.get(copies, 0) + 1
    assert during[batches] == before.get(batches, 0) + 1
    wait_command(dc.stub, reply.command.command_id)
    after = scrape(port)
    assert after[ended] == 1
    assert after["engine_poll_seconds_count"] > during["engine_poll_seconds_count"]
    assert after['engine_commands_ended_total{action_type="AddDisk",status="SUCCEEDED"}'] == 3
    assert "engine_tasks_in_flight" in after and "engine_commands_active" in after
    assert any(k.startswith("engine_rpc_seconds_count{") for k in after)

    events = [
        json.loads(line)
        for line in dc.engine.log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    assert events and all({"ts", "level", "logger", "msg"} <= e.keys() for e in events)
    cleared = [e for e in events if "cleared on its host" in e["msg"]]
    assert len(cleared) >= 3
    assert all({"task_id", "command_id", "host"} <= e.keys() for e in cleared)
    assert any(
        e.get("command_id") == reply.command.command_id and "ended" in e["msg"] for e in events
    )
    shown = [e for e in events if e["msg"].startswith("effective configuration")]
    assert len(shown) == 1


def test_engine_health_and_reflection_for_a_client_that_knows_only_the_address(make_dc) -> None:
    dc, *_ = make_dc(disks=1)
    address = dc.engine.address
    assert check(address) == "SERVING"  # liveness
    assert check(address, "engine_service.v1.EngineService") == "SERVING"  # readiness: active
    with grpc.insecure_channel(address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert "engine_service.v1.EngineService" in set(database.get_services())
        service = DescriptorPool(database).FindServiceByName("engine_service.v1.EngineService")
        assert {"AddVmTemplate", "WatchCommand", "ReconcileOrphans"} <= {
            m.name for m in service.methods
        }


def test_sigterm_during_a_template_then_a_restart_completes_it(make_dc) -> None:
    dc, vm, src, dst = make_dc(throttle=MiB)
    reply = dc.start_template(vm, "interrupted", dst)
    wait_command(
        dc.stub, reply.command.command_id, lambda c: any(t.progress_percent > 0 for t in c.tasks)
    )
    assert dc.engine.terminate() == 0
    log = dc.engine.log_tail(20)
    assert re.search(r"stopping: health NOT_SERVING", log) and "stopped" in log
    dc.engine.start()
    command = wait_command(dc.stub, reply.command.command_id)
    assert command.status == pb.COMMAND_STATUS_SUCCEEDED, command.failure_reason
    dc.check_invariants()
