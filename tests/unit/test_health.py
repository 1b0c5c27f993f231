"""Health has two meanings: `""` is liveness, a service name is readiness. They are set apart,
so that a liveness probe never restarts a healthy standby engine (live, not ready). No process,
no socket: the health servicer is asked directly."""

from __future__ import annotations

import pytest
from grpc_health.v1 import health_pb2

from service_common.grpc_server import Health

SERVICE = "engine_service.v1.EngineService"


class NoContext:
    """A servicer context for checks that must not touch it (a known name never does)."""

    def set_code(self, code: object) -> None:
        raise AssertionError(f"the health servicer set {code}: the name is unknown")


def statuses(health: Health) -> tuple[str, str]:
    """(liveness, readiness) as a health client reads them."""

    def check(name: str) -> str:
        reply = health.servicer.Check(health_pb2.HealthCheckRequest(service=name), NoContext())
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    return check(""), check(SERVICE)


def test_everything_starts_not_serving() -> None:
    assert statuses(Health([SERVICE])) == ("NOT_SERVING", "NOT_SERVING")


def test_a_standby_is_live_but_not_ready_then_ready_once_active() -> None:
    health = Health([SERVICE])
    health.set_live(True)
    assert statuses(health) == ("SERVING", "NOT_SERVING")
    health.set_ready(True)
    assert statuses(health) == ("SERVING", "SERVING")


@pytest.mark.parametrize("first", ["live", "ready"])
def test_liveness_and_readiness_change_independently(first: str) -> None:
    health = Health([SERVICE])
    health.set_live(True)
    health.set_ready(True)
    if first == "live":
        health.set_live(False)
        assert statuses(health) == ("NOT_SERVING", "SERVING")
    else:
        health.set_ready(False)
        assert statuses(health) == ("SERVING", "NOT_SERVING")


def test_readiness_covers_every_service_name_and_only_them() -> None:
    health = Health([SERVICE, "other.v1.Other"])
    health.set_ready(True)
    reply = health.servicer.Check(
        health_pb2.HealthCheckRequest(service="other.v1.Other"), NoContext()
    )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert statuses(health) == ("NOT_SERVING", "SERVING")
