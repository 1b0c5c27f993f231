"""Client-side helpers for the engine's API, for tests, demos and scripts."""

from __future__ import annotations

from collections.abc import Callable

from engine_service.v1 import engine_service_pb2 as pb
from engine_service.v1 import engine_service_pb2_grpc as pb_grpc
from harness.waiting import poll_until

RPC_TIMEOUT = 30.0


def get_command(stub: pb_grpc.EngineServiceStub, command_id: str) -> pb.Command:
    return stub.GetCommand(pb.GetCommandRequest(command_id=command_id), timeout=RPC_TIMEOUT).command


def settled(command: pb.Command) -> bool:
    """Terminal, with every task cleared."""
    return command.status != pb.COMMAND_STATUS_ACTIVE and not command.tasks


def wait_command(
    stub: pb_grpc.EngineServiceStub,
    command_id: str,
    until: Callable[[pb.Command], bool] = settled,
    timeout: float = 60.0,
    interval: float = 0.05,
) -> pb.Command:
    """Poll GetCommand until `until(command)` holds (default: settled); return that command."""
    return poll_until(
        lambda: get_command(stub, command_id),
        until,
        timeout,
        interval,
        lambda c: (
            f"command {command_id} still {pb.CommandStatus.Name(c.status)} with "
            f"{len(c.tasks)} task(s): {c}"
        ),
    )
