"""`grpc-health-probe ADDRESS`: exit 0 when the server at ADDRESS reports SERVING.

What a container health check or a script needs, with the standard gRPC health protocol.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(address: str, service: str = "", timeout: float = 3.0) -> str:
    """The server's status name for `service` ("" = the whole server), or raise grpc.RpcError."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="grpc-health-probe", description=__doc__)
    p.add_argument("address", help="HOST:PORT of the gRPC server")
    p.add_argument("--service", default="", help="service name to check (default: the server)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds (default %(default)s)")
    ns = p.parse_args(argv)
    try:
        status = check(ns.address, ns.service, ns.timeout)
    except grpc.RpcError as exc:
        print(f"{ns.address}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        sys.exit(2)
    print(f"{ns.address}: {status}")
    sys.exit(0 if status == "SERVING" else 1)


if __name__ == "__main__":
    main()
