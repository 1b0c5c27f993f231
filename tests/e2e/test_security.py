"""Trust: only the engine drives an agent (mutual TLS), only token holders drive the engine,
and no id reaches outside the storage root."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import grpc
import pytest

from engine_service.v1 import engine_service_pb2 as pb
from engine_service.v1 import engine_service_pb2_grpc as pb_grpc
from harness.enginectl import run as ctl
from harness.scenario import DataCenter
from service_common.grpc_client import client_channel
from service_common.tls import ClientTls, init_pki
from vdsm_agent.v1 import agent_service_pb2 as apb
from vdsm_agent.v1 import agent_service_pb2_grpc as apb_grpc

T = 10


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    return init_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory) -> dict[str, Path]:
    return init_pki(tmp_path_factory.mktemp("other-pki"), ca_name="someone else's CA")


def mtls_agent(agent_factory, pki: dict[str, Path], name: str = "host1"):
    agent = agent_factory(
        name,
        start=False,
        extra_args=[
            "--tls-cert",
            str(pki["agent"]),
            "--tls-key",
            str(pki["agent_key"]),
            "--tls-client-ca",
            str(pki["ca"]),
        ],
    )
    agent.client_tls = ClientTls(pki["ca"], pki["engine"], pki["engine_key"])
    agent.start()
    return agent


def create_domain(channel: grpc.Channel) -> None:
    apb_grpc.AgentServiceStub(channel).CreateStorageDomain(
        apb.CreateStorageDomainRequest(storage_domain_id=str(uuid.uuid4())), timeout=T
    )


def test_an_agent_with_mutual_tls_admits_only_clients_signed_by_its_ca(
    agent_factory, pki, other_pki
) -> None:
    agent = mtls_agent(agent_factory, pki)
    create_domain(agent.channel())  # the engine's certificate gets in
    refused = {
        "no client certificate": grpc.secure_channel(
            agent.address, ClientTls(pki["ca"]).credentials()
        ),
        "a certificate from another CA": grpc.secure_channel(
            agent.address,
            ClientTls(pki["ca"], other_pki["engine"], other_pki["engine_key"]).credentials(),
        ),
        "plaintext": grpc.insecure_channel(agent.address),
    }
    for what, channel in refused.items():
        with pytest.raises(grpc.RpcError) as err:
            create_domain(channel)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, what
        channel.close()
    assert "mutual TLS" in agent.log_path.read_text()


def test_the_engine_drives_mtls_agents_and_checks_their_host_name(
    agent_factory, engine_factory, pki, tmp_path
) -> None:
    agent = mtls_agent(agent_factory, pki)
    engine_tls = [
        "--agent-tls-ca",
        str(pki["ca"]),
        "--agent-tls-cert",
        str(pki["engine"]),
        "--agent-tls-key",
        str(pki["engine_key"]),
    ]
    dc = DataCenter(engine_factory(extra_args=engine_tls), [agent])
    dc.register_hosts()
    sd = dc.add_domain("data1")
    dc.add_disk(sd, 4096)  # a whole command over mutual TLS
    # An agent whose certificate names another host is refused by the engine.
    elsewhere = init_pki(tmp_path / "elsewhere", names=["agent9.example"], include_local=False)
    impostor = agent_factory(
        "impostor",
        start=False,
        extra_args=[
            "--tls-cert",
            str(elsewhere["agent"]),
            "--tls-key",
            str(elsewhere["agent_key"]),
        ],
    )
    impostor.client_tls = ClientTls(elsewhere["ca"], server_name="agent9.example")
    impostor.start()
    with pytest.raises(grpc.RpcError) as err:
        dc.stub.AddHost(pb.AddHostRequest(name="impostor", address=impostor.address), timeout=T)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_engine_api_needs_a_token_when_tokens_are_configured(engine_factory, pki) -> None:
    engine = engine_factory(
        start=False,
        extra_args=["--tls-cert", str(pki["engine"]), "--tls-key", str(pki["engine_key"])],
        env={"ENGINE_API_TOKENS": "first-token,second-token"},
    )
    engine.client_tls = ClientTls(pki["ca"])
    engine.start()  # health stays open: the harness sees readiness SERVING without a token
    request = pb.ListHostsRequest()
    for token, code in (
        (None, grpc.StatusCode.UNAUTHENTICATED),
        ("wrong-token", grpc.StatusCode.UNAUTHENTICATED),
        ("first-token", None),
        ("second-token", None),
    ):
        stub = pb_grpc.EngineServiceStub(client_channel(engine.address, engine.client_tls, token))
        if code is None:
            stub.ListHosts(request, timeout=T)
            continue
        with pytest.raises(grpc.RpcError) as err:
            stub.ListHosts(request, timeout=T)
        assert err.value.code() == code and "bearer token" in str(err.value.details())
    plaintext = pb_grpc.EngineServiceStub(grpc.insecure_channel(engine.address))
    with pytest.raises(grpc.RpcError) as err:
        plaintext.ListHosts(request, timeout=T)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    args = ("--tls-ca", str(pki["ca"]), "host", "list")
    assert ctl(engine.address, *args, env={"ENGINECTL_TOKEN": "second-token"}).returncode == 0
    denied = ctl(engine.address, *args)
    assert denied.returncode == 6 and "UNAUTHENTICATED" in denied.stderr
    assert "second-token" not in engine.log_path.read_text()  # secrets are masked


OPS = "OPS_SECRET_0123456789"
DASH = "DASH_SECRET_0123456789"
LEGACY = "LEGACY_BARE_SECRET_0123"


def with_token(engine, secret: str) -> pb_grpc.EngineServiceStub:
    return pb_grpc.EngineServiceStub(client_channel(engine.address, engine.client_tls, secret))


@pytest.fixture
def named_tokens_engine(engine_factory, tmp_path):
    """An engine with an operator `ops` and a read-only `dash` given as flags, and a bare
    secret (`default`) in an --api-token-file; the harness itself calls as `ops`."""
    token_file = tmp_path / "tokens"
    token_file.write_text(f"# the token of before names\n\n{LEGACY}\n")
    token_file.chmod(0o600)
    engine = engine_factory(
        start=False,
        extra_args=[
            "--api-token",
            f"ops:{OPS}",
            "--api-token",
            f"dash:{DASH}:read",
            "--api-token-file",
            str(token_file),
        ],
    )
    engine.token = OPS
    engine.start()
    return engine


def test_a_read_only_token_reads_and_is_denied_every_change(
    named_tokens_engine, agent_factory
) -> None:
    engine = named_tokens_engine
    dc = DataCenter(engine, [agent_factory("host1")])
    dc.register_hosts()
    disk = engine.stub().AddDisk(
        pb.AddDiskRequest(name="d1", storage_domain_id=dc.add_domain("sd1"), size_bytes=4096),
        timeout=T,
    )
    dash = with_token(engine, DASH)
    assert [h.name for h in dash.ListHosts(pb.ListHostsRequest(), timeout=T).hosts] == ["host1"]
    assert dash.ListCommands(pb.ListCommandsRequest(), timeout=T).commands
    command_id = disk.command.command_id
    dash.GetCommand(pb.GetCommandRequest(command_id=command_id), timeout=T)
    for method, request in (
        ("AddStorageDomain", pb.AddStorageDomainRequest(name="sd2")),
        ("AddDisk", pb.AddDiskRequest(name="d2", storage_domain_id=disk.disk.storage_domain_id)),
        ("CancelCommand", pb.CancelCommandRequest(command_id=command_id)),
    ):
        with pytest.raises(grpc.RpcError) as err:
            getattr(dash, method)(request, timeout=T)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, method
        assert "'dash'" in str(err.value.details()) and method in str(err.value.details())
    legacy = with_token(engine, LEGACY)  # a bare secret, from the file: the operator `default`
    legacy.AddStorageDomain(pb.AddStorageDomainRequest(name="sd3"), timeout=T)
    # The harness writes the command line it ran at the top; the rest is the engine's own.
    log = "\n".join(
        line for line in engine.log_path.read_text().splitlines() if not line.startswith("===")
    )
    assert "AddDisk by token ops from ipv4:127.0.0.1:" in log
    assert "AddStorageDomain by token default from ipv4:127.0.0.1:" in log
    assert "PERMISSION_DENIED: CancelCommand by read-only token dash" in log
    assert "ListHosts by" not in log  # reads are not logged
    assert not any(secret in log for secret in (OPS, DASH, LEGACY))
    # The command's history says who asked for it (issue 21: who did what).
    [accepted] = [
        e
        for e in dash.ListCommandEvents(
            pb.ListCommandEventsRequest(command_id=command_id), timeout=T
        ).events
        if e.kind == "accepted"
    ]
    assert "asked by token ops from ipv4:127.0.0.1:" in accepted.message


def test_enginectl_with_a_read_only_token_lists_and_is_denied_with_exit_code_7(
    named_tokens_engine,
) -> None:
    engine = named_tokens_engine
    env = {"ENGINECTL_TOKEN": DASH}
    assert ctl(engine.address, "host", "list", env=env).returncode == 0
    denied = ctl(engine.address, "domain", "add", "sd1", env=env)
    assert denied.returncode == 7, denied.stderr
    assert "PERMISSION_DENIED: token 'dash' is read-only" in denied.stderr
    operator = ctl(engine.address, "domain", "add", "sd1", env={"ENGINECTL_TOKEN": OPS})
    assert operator.returncode == 4 and "no host is UP" in operator.stderr  # let through


def test_confirm_host_rebooted_records_the_tokens_name(named_tokens_engine, agent_factory) -> None:
    engine = named_tokens_engine
    dc = DataCenter(engine, [agent_factory("host1")])
    dc.register_hosts()
    dc.agents[0].kill()
    host_id = dc.hosts["host1"].host_id
    deadline = time.monotonic() + 20
    while not any(
        h.HasField("unreachable_since")
        for h in dc.stub.ListHosts(pb.ListHostsRequest(), timeout=T).hosts
    ):
        assert time.monotonic() < deadline, "host1 still answers its polls"
        time.sleep(0.1)
    request = pb.ConfirmHostRebootedRequest(host_id=host_id, reason="off at the PDU")
    with pytest.raises(grpc.RpcError) as err:
        with_token(engine, DASH).ConfirmHostRebooted(request, timeout=T)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    host = dc.stub.ConfirmHostRebooted(request, timeout=T).host
    assert host.confirmed_rebooted_by.startswith("token ops from ipv4:127.0.0.1:")
    assert "ConfirmHostRebooted by token ops from ipv4:127.0.0.1:" in engine.log_path.read_text()


ID_FIELDS = [
    ("GetDisk", "disk_id"),
    ("GetVm", "vm_id"),
    ("GetVmTemplate", "template_id"),
    ("GetCommand", "command_id"),
    ("CancelCommand", "command_id"),
    ("RemoveHost", "host_id"),
    ("SetHostMaintenance", "host_id"),
    ("AddDisk", "storage_domain_id"),
    ("AddDisk", "request_id"),
    ("AddVmTemplate", "vm_id"),
    ("AddVmTemplate", "destination_storage_domain_id"),
    ("AddVm", "disk_ids"),
]


def test_path_escapes_through_every_engine_id_field_are_invalid_argument(make_dc) -> None:
    dc, vm, src, dst = make_dc(disks=1)
    before = dc.image_files()
    valid = {
        "name": "n",
        "storage_domain_id": src,
        "size_bytes": 4096,
        "vm_id": vm,
        "destination_storage_domain_id": dst,
    }
    for rpc, field in ID_FIELDS:
        request_type = getattr(pb, f"{rpc}Request")
        names = {f.name for f in request_type.DESCRIPTOR.fields}
        for evil in ("../../etc/passwd", "/etc", "..", f"{src}/../x"):
            args = {k: v for k, v in valid.items() if k in names}
            args[field] = [evil] if field == "disk_ids" else evil
            with pytest.raises(grpc.RpcError) as err:
                getattr(dc.stub, rpc)(request_type(**args), timeout=T)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (rpc, field, evil)
            assert field in str(err.value.details()), (rpc, err.value.details())
    assert dc.image_files() == before


def test_watch_streams_are_limited(make_dc) -> None:
    import threading

    dc, vm, src, dst = make_dc(throttle=1 << 20, engine_args=["--max-watchers", "2"])
    reply = dc.start_template(vm, "watched", dst)
    streams = [
        dc.stub.WatchCommand(
            pb.WatchCommandRequest(command_id=reply.command.command_id), timeout=60
        )
        for _ in range(2)
    ]
    firsts = [next(s) for s in streams]  # two watchers hold their slots
    assert all(f.command.status == pb.COMMAND_STATUS_ACTIVE for f in firsts)
    with pytest.raises(grpc.RpcError) as err:
        next(
            dc.stub.WatchCommand(
                pb.WatchCommandRequest(command_id=reply.command.command_id), timeout=10
            )
        )
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    for stream in streams:
        stream.cancel()
    threading.Event().wait(0.5)  # the server notices the cancellations
    again = dc.stub.WatchCommand(
        pb.WatchCommandRequest(command_id=reply.command.command_id), timeout=60
    )
    assert next(again).command.command_id == reply.command.command_id
    again.cancel()


def test_open_watch_streams_never_take_the_unary_calls_threads(make_dc) -> None:
    """A WatchCommand stream holds a server thread while it is open. With the default limit of
    64 streams, more streams than the 16 threads of the unary calls are open at once (each has
    sent its first reply), and a unary call is still answered at once."""
    dc, vm, src, dst = make_dc(throttle=1 << 20)
    reply = dc.start_template(vm, "watched", dst)
    request = pb.WatchCommandRequest(command_id=reply.command.command_id)
    streams = [dc.stub.WatchCommand(request, timeout=60) for _ in range(24)]
    try:
        for stream in streams:  # every one is being served, on a thread of its own
            assert next(stream).command.status == pb.COMMAND_STATUS_ACTIVE
        command = dc.stub.GetCommand(
            pb.GetCommandRequest(command_id=reply.command.command_id), timeout=5
        )
        assert command.command.status == pb.COMMAND_STATUS_ACTIVE
        assert dc.stub.ListHosts(pb.ListHostsRequest(), timeout=5).hosts
    finally:
        for stream in streams:
            stream.cancel()
