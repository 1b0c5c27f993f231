"""Property-based fuzzing of every RPC of both services, running as real processes.

Requests are generated from the services' descriptors, field by field: live ids, random UUIDs,
path escapes, junk text, extreme numbers, unknown enum values, long lists. Each call must end
with a documented status code (never UNKNOWN or INTERNAL), the processes must stay up, no file
may appear outside the storage root, and the invariants of docs/design.md §5 must hold after.
Host addresses are only ever loopback or unparsable, so nothing is dialled off this machine.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message as ProtoMessage
from google.protobuf.message_factory import GetMessageClass
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_service.v1 import engine_service_pb2 as epb
from harness.engine_client import wait_command
from vdsm_agent.v1 import agent_service_pb2 as apb

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))  # per RPC
DOCUMENTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE,
}
EVIL = [
    "",
    " ",
    "..",
    "../",
    "../../etc/passwd",
    "/etc/passwd",
    "/",
    ".",
    "\x00",
    "a" * 5000,
    "%s%n%x",
    "' OR 1=1 --",
    "\u202e\u0000\ud7ff",
    "😀" * 20,
    "NaN",
    "-1",
]
ADDRESSES = [
    "127.0.0.1:1",
    "localhost:0",
    "no-port",
    "",
    "[::1]:99999",
    "127.0.0.1:abc",
    ":54321",
    "127.0.0.1:",
]


def strings(live: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(live),
        st.uuids().map(str),
        st.sampled_from(EVIL),
        st.text(max_size=300),
        st.builds(
            lambda a, b: a + b,
            st.sampled_from(live),
            st.sampled_from(["/..", "/../..", "\x00", " "]),
        ),
        st.uuids().map(lambda u: str(u).upper()),
    )


def value(field: FieldDescriptor, live: list[str], live_addresses: list[str]) -> Any:
    if field.name == "address":
        return st.sampled_from(ADDRESSES + live_addresses)
    kinds: dict[int, st.SearchStrategy[Any]] = {
        FieldDescriptor.TYPE_STRING: strings(live),
        FieldDescriptor.TYPE_BYTES: st.binary(max_size=5000),
        FieldDescriptor.TYPE_BOOL: st.booleans(),
        FieldDescriptor.TYPE_INT32: st.one_of(
            st.integers(-(2**31), 2**31 - 1), st.integers(-2, 600)
        ),
        FieldDescriptor.TYPE_INT64: st.one_of(
            st.integers(-(2**63), 2**63 - 1), st.integers(-2, 1 << 22)
        ),
        FieldDescriptor.TYPE_ENUM: st.integers(-3, 9),
    }
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        single = message(field.message_type, live, live_addresses)
    else:
        single = kinds[field.type]
    if field.is_repeated:
        return st.lists(single, max_size=70)
    return single


def message(descriptor: Any, live: list[str], live_addresses: list[str]) -> Any:
    """A message field's values: instants (ListCommands' filters) valid, at the edges of the
    calendar and out of range; any other message (StartTasks' starts) built from its own
    fields the same way, any of them set or not (a oneof keeps the last one set)."""
    if descriptor.full_name == Timestamp.DESCRIPTOR.full_name:
        return st.builds(
            Timestamp,
            seconds=st.one_of(
                st.integers(0, 2**32), st.integers(-(2**63), 2**63 - 1), st.just(253402300800)
            ),
            nanos=st.one_of(st.integers(0, 999_999_999), st.integers(-2, 2**31 - 1)),
        )
    fields = {
        f.name: st.one_of(st.none(), value(f, live, live_addresses)) for f in descriptor.fields
    }
    made = GetMessageClass(descriptor)
    return st.fixed_dictionaries(fields).map(
        lambda chosen: fill(made(), {k: v for k, v in chosen.items() if v is not None})
    )


def fill(request: Any, fields: dict[str, Any]) -> Any:
    """`request` with each of `fields` set (a list extended, a message copied)."""
    for name, v in fields.items():
        if isinstance(v, list):
            getattr(request, name).extend(v)
        elif isinstance(v, ProtoMessage):
            getattr(request, name).CopyFrom(v)
        else:
            setattr(request, name, v)
    return request


def requests_for(method: Any, live: list[str], live_addresses: list[str]) -> Any:
    fields = {
        f.name: st.one_of(st.none(), value(f, live, live_addresses))
        for f in method.input_type.fields
    }
    return st.fixed_dictionaries(fields).map(
        lambda chosen: {k: v for k, v in chosen.items() if v is not None}
    )


def call(stub: Any, method: Any, module: Any, fields: dict[str, Any]) -> grpc.StatusCode:
    request = fill(getattr(module, method.input_type.name)(), fields)
    rpc = getattr(stub, method.name)
    try:
        if method.server_streaming:
            stream = rpc(request, timeout=3)
            next(stream, None)  # the first message is enough
            stream.cancel()
        else:
            rpc(request, timeout=10)
    except grpc.RpcError as exc:
        code = exc.code()
        if code == grpc.StatusCode.CANCELLED and method.server_streaming:
            return grpc.StatusCode.OK
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and method.server_streaming:
            return grpc.StatusCode.OK  # a stream of an active command, still open
        return code
    return grpc.StatusCode.OK


def fuzzer(
    service: str,
    stub: Any,
    module: Any,
    method: Any,
    live: list[str],
    addresses: list[str],
    sent: Counter[str],
    codes: Counter[str],
) -> Any:
    """A hypothesis test of one RPC, counting what it sent and what came back."""

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(requests_for(method, live, addresses))
    def fuzz(fields: dict[str, Any]) -> None:
        code = call(stub, method, module, fields)
        sent[service] += 1
        codes[code.name] += 1
        assert code in DOCUMENTED, (service, method.name, fields, code)

    return fuzz


def files_outside(root: Path, inside: list[Path]) -> set[str]:
    return {
        str(p)
        for p in root.rglob("*")
        if p.is_file() and not any(p.is_relative_to(i) for i in inside)
    }


def test_fuzz_every_rpc_of_both_services(make_dc, tmp_path, request) -> None:
    dc, vm, src, dst = make_dc(
        throttle=4 << 20, disks=2, disk_bytes=1 << 20, engine_args=["--zombie-grace", "1"]
    )
    agent = dc.agents[0]
    made = dc.start_template(vm, "fuzz-base", dst)
    wait_command(dc.stub, made.command.command_id)
    disks = list(dc.stub.ListDisks(epb.ListDisksRequest(), timeout=10).disks)
    live = sorted(
        {
            vm,
            src,
            dst,
            made.command.command_id,
            made.template.template_id,
            *(h.host_id for h in dc.hosts.values()),
            *(d.disk_id for d in disks),
            *(d.image_id for d in disks),
        }
    )
    bookkeeping = [agent.storage_root, *(a.workdir for a in dc.agents), dc.engine.workdir]
    outside_before = files_outside(tmp_path, bookkeeping)
    sent: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    targets = [
        ("engine", dc.stub, epb, epb.DESCRIPTOR.services_by_name["EngineService"]),
        ("agent", agent.stub(), apb, apb.DESCRIPTOR.services_by_name["AgentService"]),
    ]
    for service, stub, module, descriptor in targets:
        for method in descriptor.methods:
            fuzz = fuzzer(
                service, stub, module, method, live, [a.address for a in dc.agents], sent, codes
            )
            fuzz()
            assert dc.engine.running and agent.running, f"a process died after {method.name}"

    assert dc.engine.health() == "SERVING" and agent.health() == "SERVING"
    assert files_outside(tmp_path, bookkeeping) == outside_before
    # The fuzz may have removed a host whose agent it then gave tasks directly: only the agents
    # of registered hosts are polled (and their zombies cleared), so register those again.
    registered = {
        h.address for h in dc.stub.ListHosts(epb.ListHostsRequest(page_size=500), timeout=10).hosts
    }
    for missing in (a for a in dc.agents if a.address not in registered):
        dc.stub.AddHost(
            epb.AddHostRequest(name=f"{missing.workdir.name}-again", address=missing.address),
            timeout=10,
        )
    for command in dc.commands():  # let what the fuzz started end, then check everything
        if command.status == epb.COMMAND_STATUS_ACTIVE:
            try:
                dc.stub.CancelCommand(
                    epb.CancelCommandRequest(command_id=command.command_id), timeout=10
                )
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
    dc.check_invariants(timeout=120)
    line = (
        f"fuzz: sent {sent['engine']} requests to the engine and {sent['agent']} to the "
        f"agent ({dict(codes)}); none broke an invariant"
    )
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
    print(line)
    assert sent["engine"] >= EXAMPLES and sent["agent"] >= EXAMPLES
