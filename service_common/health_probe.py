"""`grpc-health-probe ADDRESS [--service NAME]`: exit 0 when the server at ADDRESS reports
SERVING for NAME.

What a container health check or a script needs, with the standard gRPC health protocol. For
the engine, `""` (the default) is liveness: SERVING while the process works, a standby
included; `--service engine_service.v1.EngineService` is readiness: SERVING only on the active
engine once its startup reconciliation committed. The agent reports both together.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service_common.tls import ClientTls, channel


def check(
    address: str, service: str = "", timeout: float = 3.0, tls: ClientTls | None = None
) -> str:
    """The server's status name for `service` ("" = liveness, a service name = its readiness),
    or raise grpc.RpcError."""
    with channel(address, tls) as channel_:
        stub = health_pb2_grpc.HealthStub(channel_)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="grpc-health-probe", description=__doc__)
    p.add_argument("address", help="HOST:PORT of the gRPC server")
    p.add_argument(
        "--service",
        default="",
        help='what to check: "" (the default) is liveness, the process works; a service name '
        "is its readiness, e.g. engine_service.v1.EngineService: the active engine, reconciled",
    )
    p.add_argument("--timeout", type=float, default=3.0, help="seconds (default %(default)s)")
    p.add_argument("--tls-ca", type=Path, help="the server speaks TLS: trust this CA")
    p.add_argument("--tls-cert", type=Path, help="client certificate (mutual TLS)")
    p.add_argument("--tls-key", type=Path, help="its private key")
    ns = p.parse_args(argv)
    tls = ClientTls(ns.tls_ca, ns.tls_cert, ns.tls_key) if ns.tls_ca else None
    try:
        status = check(ns.address, ns.service, ns.timeout, tls)
    except OSError as exc:
        print(f"{ns.address}: cannot read a TLS file: {exc}", file=sys.stderr)
        sys.exit(2)
    except grpc.RpcError as exc:
        print(f"{ns.address}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        sys.exit(2)
    print(f"{ns.address}: {status}")
    sys.exit(0 if status == "SERVING" else 1)


if __name__ == "__main__":
    main()
