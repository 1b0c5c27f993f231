"""The Python client (clients/python, durable-virt-tasks-client) against a real engine and agent:
a template made and followed, the request-id discipline, rich errors, a call that rides out an
engine restart, and the package working with nothing of the server importable."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import grpc
import pytest

from durable_virt_tasks_client import CallError, EngineClient, RetryPolicy, pb

ROOT = Path(__file__).resolve().parents[2]


def test_a_template_is_made_and_followed_through_the_client(make_dc) -> None:
    dc, vm, src, dst = make_dc(disks=2)
    with EngineClient.connect(dc.engine.address) as engine:
        template, command = engine.add_vm_template(vm, "golden", dst)
        states = list(engine.watch(command.command_id))

        assert states[-1].status == pb.COMMAND_STATUS_SUCCEEDED and not states[-1].tasks
        assert len({s.SerializeToString() for s in states}) == len(states), "a state repeated"
        assert engine.get_vm_template(template.template_id).status == pb.TEMPLATE_STATUS_OK
        assert [c.command_id for c in engine.commands(action_type="AddVmTemplate")] == [
            command.command_id
        ]
        kinds = [e.kind for e in engine.command_events(command.command_id)]
        assert kinds[0] == "accepted" and "ended" in kinds
    dc.check_invariants()


def test_one_request_id_makes_one_disk_and_bad_input_names_its_field(make_dc) -> None:
    dc, _, src, _ = make_dc(disks=1)
    with EngineClient.connect(dc.engine.address) as engine:
        first, command = engine.add_disk(
            "same", src, 1 << 20, request_id="a" * 8 + "-1111-4111-8111-" + "b" * 12
        )
        again, command_again = engine.add_disk(
            "same", src, 1 << 20, request_id="a" * 8 + "-1111-4111-8111-" + "b" * 12
        )
        assert (again.disk_id, command_again.command_id) == (first.disk_id, command.command_id)
        assert engine.wait(command.command_id, timeout=60).status == pb.COMMAND_STATUS_SUCCEEDED

        with pytest.raises(CallError) as bad:
            engine.add_disk("x", src, -5)
        assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in bad.value.field_violations] == ["size_bytes"]
        assert bad.value.attempts == 1
        assert [d.name for d in engine.disks()].count("same") == 1
    dc.check_invariants()


def test_a_call_made_while_the_engine_is_down_succeeds_once_it_is_back(make_dc) -> None:
    """The engine stops; a client's AddDisk meets UNAVAILABLE and waits; the engine starts again
    on the same port; the call lands, once."""
    dc, _, src, _ = make_dc(disks=1)
    dc.engine.terminate()
    policy = RetryPolicy(attempts=60, initial_backoff=0.05, max_backoff=0.5)
    outcome: dict[str, object] = {}

    def add() -> None:
        with EngineClient.connect(dc.engine.address, retry=policy, timeout=10) as engine:
            try:
                outcome["disk"], outcome["command"] = engine.add_disk("late", src, 1 << 20)
            except CallError as error:  # pragma: no cover - reported below
                outcome["error"] = error

    caller = threading.Thread(target=add)
    caller.start()
    time.sleep(1.0)  # the call has met UNAVAILABLE at least once by now
    assert caller.is_alive(), f"the call ended while the engine was down: {outcome}"
    dc.engine.start()
    caller.join(timeout=60)

    assert "error" not in outcome, outcome
    with EngineClient.connect(dc.engine.address) as engine:
        command = outcome["command"]
        assert isinstance(command, pb.Command)
        assert engine.wait(command.command_id, timeout=60).status == pb.COMMAND_STATUS_SUCCEEDED
        assert [d.name for d in engine.disks()].count("late") == 1
    dc.check_invariants()


def test_the_client_needs_nothing_of_the_server(make_dc) -> None:
    """In a fresh interpreter where importing any of the server's packages fails, the client
    still lists the hosts of a real engine."""
    dc, *_ = make_dc(disks=0)
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys

        class NoServer(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {{"engine_service", "vdsm_agent", "service_common",
                                           "harness"}}:
                    raise ImportError(f"{{name}} is the server's, not the client's")
                return None

        sys.meta_path.insert(0, NoServer())
        from durable_virt_tasks_client import EngineClient
        with EngineClient.connect({dc.engine.address!r}) as engine:
            print(sorted(h.name for h in engine.hosts()))
        print(sorted(m for m in sys.modules if m.split(".")[0] in {{"engine_service", "harness"}}))
        """
    )
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd="/"
    )

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == ["['host1']", "[]"]
