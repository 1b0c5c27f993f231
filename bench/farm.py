"""A farm of simulated agents for the scale benchmark (bench/scale.py): one process serving
many agent endpoints, each its own gRPC server on its own port, answering GetAllTasksStatuses
with the same `tasks` tasks every time (RUNNING, 10 %); every other call is UNIMPLEMENTED.

    python -m bench.farm --endpoints 1000 --tasks 100 --address-file FILE

The servers are grpc.aio servers on one event loop (one thread, whatever their number); each
reply is built once, so answering costs the farm its serialization only. When every server
listens, FILE gets their HOST:PORT, one a line, in endpoint order. The agent task ids are
`task_id(endpoint, i)`, which the bench computes as well. It runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from pathlib import Path
from typing import Any

import grpc

from vdsm_agent.v1 import agent_service_pb2 as pb
from vdsm_agent.v1 import agent_service_pb2_grpc as pb_grpc

NAMESPACE = uuid.UUID("6f1c2a52-7d1e-4a4e-9b1a-2f0c5d3e8a11")


def task_id(endpoint: int, i: int) -> str:
    """The agent task id of task `i` on simulated endpoint `endpoint`."""
    return str(uuid.uuid5(NAMESPACE, f"{endpoint}/{i}"))


class SimulatedAgent(pb_grpc.AgentServiceServicer):
    """One endpoint: a fixed reply to GetAllTasksStatuses."""

    def __init__(self, endpoint: int, tasks: int) -> None:
        self.reply = pb.GetAllTasksStatusesResponse(
            statuses=[
                pb.TaskStatus(
                    task_id=task_id(endpoint, i),
                    state=pb.TASK_STATE_RUNNING,
                    progress_percent=10,
                )
                for i in range(tasks)
            ]
        )

    async def GetAllTasksStatuses(
        self, request: pb.GetAllTasksStatusesRequest, context: Any
    ) -> pb.GetAllTasksStatusesResponse:
        return self.reply


async def serve(endpoints: int, tasks: int, address_file: Path) -> None:
    servers, addresses = [], []
    for endpoint in range(endpoints):
        server = grpc.aio.server()
        pb_grpc.add_AgentServiceServicer_to_server(SimulatedAgent(endpoint, tasks), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        addresses.append(f"127.0.0.1:{port}")
    tmp = address_file.with_suffix(".tmp")
    tmp.write_text("\n".join(addresses) + "\n")
    tmp.replace(address_file)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.farm", description=__doc__)
    parser.add_argument("--endpoints", type=int, required=True)
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--address-file", type=Path, required=True)
    ns = parser.parse_args()
    asyncio.run(serve(ns.endpoints, ns.tasks, ns.address_file))


if __name__ == "__main__":
    main()
