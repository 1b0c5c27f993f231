"""What `enginectl` prints for scripts and for people (issue 17): `--json` and `-o json` on every
leaf command as well as on the group; JSON with every field, zero values included, enums by
name and 64-bit integers as numbers; `--version` on the three programs; a header row above the
rows of a human table. No engine and no process: the client's calls are answered here."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from google.protobuf.message import Message

from engine_service.entrypoints import settings as engine_settings
from engine_service.entrypoints.cli import main
from engine_service.entrypoints.cli.calls import Client
from engine_service.entrypoints.cli.output import as_dict
from engine_service.v1 import engine_service_pb2 as pb
from vdsm_agent.entrypoints import settings as agent_settings

ID = "0b6a3f0e-6a35-4d7e-9d7e-5a1c8f4f2b11"
MiB = 1 << 20
VERSION = version("durable-virt-tasks")  # the distribution of pyproject.toml


def leaves(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every command of `group` that is not a group itself."""
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from leaves(command, (*path, name))
        else:
            yield (*path, name)


def chosen(path: tuple[str, ...], args: list[str], as_json: bool = False) -> bool:
    """Whether the client prints JSON after `enginectl PATH ARGS` is parsed (not run), the
    group having said `as_json`."""
    client = Client("127.0.0.1:1", 1.0, as_json)
    ctx = click.Context(main, info_name="enginectl", obj=client)
    group: click.Command = main
    for name in path[:-1]:
        assert isinstance(group, click.Group)
        group = group.commands[name]
        ctx = group.make_context(name, [], parent=ctx, resilient_parsing=True)
    assert isinstance(group, click.Group)
    leaf = group.commands[path[-1]]
    leaf.make_context(path[-1], args, parent=ctx, resilient_parsing=True)
    return client.as_json


def test_every_leaf_command_accepts_json_and_output_json() -> None:
    found = list(leaves(main))
    assert len(found) >= 20 and ("disk", "list") in found and ("reconcile",) in found
    refused = []
    for path in found:
        for args in (["--json"], ["-o", "json"], ["--output", "json"], ["--output=json"]):
            try:
                if not chosen(path, args):
                    refused.append((path, args, "ignored"))
            except click.UsageError as exc:
                refused.append((path, args, exc.format_message()))
        if chosen(path, ["-o", "text"], as_json=True):
            refused.append((path, ["-o", "text"], "still JSON"))
    assert refused == []


class Answers:
    """Client.call answered from `replies` by method; Client.stub's WatchCommand streams."""

    def __init__(self, replies: dict[str, Message], stream: Iterable[pb.Command] = ()) -> None:
        self.replies = replies
        self.stream = list(stream)

    def call(self, method: str, request: Message) -> Message:
        return self.replies[method]

    def WatchCommand(self, request: pb.WatchCommandRequest) -> Iterator[Any]:
        return iter(pb.WatchCommandResponse(command=c) for c in self.stream)


def invoke(monkeypatch: pytest.MonkeyPatch, answers: Answers, *args: str, code: int = 0) -> str:
    monkeypatch.setattr(Client, "call", lambda _, method, request: answers.call(method, request))
    monkeypatch.setattr(Client, "stub", property(lambda _: answers))
    done = CliRunner().invoke(main, list(args))
    assert done.exit_code == code, done.output
    return done.output


def host(tasks: int = 0) -> pb.Host:
    return pb.Host(
        host_id=ID,
        name="host1",
        address="127.0.0.1:54321",
        status=pb.HOST_STATUS_UP,
        tasks_in_flight=tasks,
    )


def test_json_after_the_subcommand_keeps_zero_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = Answers({"ListHosts": pb.ListHostsResponse(hosts=[host()])})
    for args in (
        ("host", "list", "--json"),
        ("host", "list", "-o", "json"),
        ("--json", "host", "list"),
        ("-o", "json", "host", "list"),
    ):
        [shown] = json.loads(invoke(monkeypatch, answers, *args))["hosts"]
        assert shown["tasks_in_flight"] == 0, args
        assert shown["status"] == "HOST_STATUS_UP"
        assert shown["confirmed_rebooted_by"] == "" and shown["unreachable_since"] is None
    assert not invoke(monkeypatch, answers, "--json", "host", "list", "-o", "text").startswith("{")


def test_json_has_every_field_and_64_bit_integers_as_numbers() -> None:
    cmd = pb.Command(command_id=ID, action_type="AddDisk", status=pb.COMMAND_STATUS_ACTIVE)
    cmd.tasks.add(task_id=ID, verb="CreateVolume")
    shown = as_dict(cmd)
    assert shown["progress_percent"] == 0 and shown["failure_reason"] == ""
    assert shown["child_commands"] == [] and shown["ended_at"] is None
    assert shown["tasks"][0]["progress_percent"] == 0 and shown["tasks"][0]["vdsm_task_id"] == ""
    assert shown["tasks"][0]["state"] == "TASK_STATE_UNSPECIFIED"
    disk = as_dict(pb.ListDisksResponse(disks=[pb.Disk(disk_id=ID, size_bytes=2 * MiB)]))
    assert disk["disks"][0]["size_bytes"] == 2 * MiB and disk["next_page_token"] == ""
    assert as_dict(pb.Disk(size_bytes=0))["size_bytes"] == 0
    assert list(as_dict(pb.Disk())) == [f.name for f in pb.Disk.DESCRIPTOR.fields]
    event = pb.CommandEvent(event_id=7, command_id=ID, kind="accepted")
    event.time.FromSeconds(1_769_860_800)
    events = as_dict(pb.ListCommandEventsResponse(events=[event]))["events"]
    assert events[0]["event_id"] == 7 and events[0]["time"] == "2026-01-31T12:00:00Z"
    # What a double does not hold exactly stays a string, as in protobuf's JSON.
    assert as_dict(pb.Disk(size_bytes=2**60 + 1))["size_bytes"] == str(2**60 + 1)
    assert as_dict(pb.Disk(size_bytes=2**60))["size_bytes"] == 2**60
    assert as_dict(pb.Disk(size_bytes=-(2**53) + 1))["size_bytes"] == -(2**53) + 1


def test_watch_json_prints_one_object_per_line(monkeypatch: pytest.MonkeyPatch) -> None:
    active = pb.Command(command_id=ID, action_type="AddDisk", status=pb.COMMAND_STATUS_ACTIVE)
    done = pb.Command(command_id=ID, action_type="AddDisk", status=pb.COMMAND_STATUS_SUCCEEDED)
    done.progress_percent = 100
    out = invoke(monkeypatch, Answers({}, [active, done]), "command", "watch", ID, "--json")
    first, last = (json.loads(line) for line in out.splitlines())
    assert first["progress_percent"] == 0 and first["failure_reason"] == ""
    assert first["status"] == "COMMAND_STATUS_ACTIVE" and last["progress_percent"] == 100


def test_enginectl_has_a_version() -> None:
    done = CliRunner().invoke(main, ["--version"])
    assert done.exit_code == 0 and done.output == f"enginectl {VERSION}\n"
    assert VERSION[0].isdigit()


@pytest.mark.parametrize(
    ("parse", "prog"),
    [(engine_settings.parse_args, "engine-service"), (agent_settings.parse_args, "vdsm-agent")],
)
def test_the_servers_have_a_version(
    parse: Any, prog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"{prog} {VERSION}\n"


def header_and_row(out: str, *columns: str) -> None:
    """The first line names the columns, each above where the row's value starts."""
    header, row = out.splitlines()[:2]
    assert header.split() == list(columns), header
    assert row.startswith(ID) and header.startswith(columns[0])


def test_list_commands_print_a_header_row(monkeypatch: pytest.MonkeyPatch) -> None:
    disk = pb.Disk(
        disk_id=ID, name="boot", storage_domain_id=ID, size_bytes=MiB, status=pb.DISK_STATUS_OK
    )
    cmd = pb.Command(command_id=ID, action_type="AddDisk", status=pb.COMMAND_STATUS_FAILED)
    answers = Answers(
        {
            "ListHosts": pb.ListHostsResponse(hosts=[host(2)]),
            "ListStorageDomains": pb.ListStorageDomainsResponse(
                storage_domains=[pb.StorageDomain(storage_domain_id=ID, name="data1")]
            ),
            "ListDisks": pb.ListDisksResponse(disks=[disk]),
            "ListVmTemplates": pb.ListVmTemplatesResponse(
                templates=[pb.VmTemplate(template_id=ID, name="golden", vm_id=ID)]
            ),
            "ListCommands": pb.ListCommandsResponse(commands=[cmd]),
        }
    )
    out = invoke(monkeypatch, answers, "host", "list")
    header_and_row(out, "HOST_ID", "NAME", "ADDRESS", "STATUS", "TASKS")
    header, row = out.splitlines()
    assert row[header.index("ADDRESS") :].startswith("127.0.0.1:54321")
    assert row[header.index("STATUS") :].startswith("UP")
    header_and_row(invoke(monkeypatch, answers, "domain", "list"), "STORAGE_DOMAIN_ID", "NAME")
    out = invoke(monkeypatch, answers, "disk", "list")
    header_and_row(out, "DISK_ID", "NAME", "SIZE", "STATUS", "DOMAIN")
    header, row = out.splitlines()
    assert row[header.index("STATUS") :].startswith("OK")
    header_and_row(
        invoke(monkeypatch, answers, "template", "list"),
        *("TEMPLATE_ID", "NAME", "STATUS", "VM", "DISKS"),
    )
    out = invoke(monkeypatch, answers, "command", "list")
    header_and_row(out, "COMMAND_ID", "TYPE", "STATUS", "DONE", "TASKS", "FAILURE_REASON")
    header, row = out.splitlines()
    assert row[header.index("STATUS") :].startswith("FAILED")
    # One object keeps its one-line form.
    got = invoke(
        monkeypatch, Answers({"GetDisk": pb.GetDiskResponse(disk=disk)}), "disk", "get", ID
    )
    assert got.startswith(ID) and len(got.splitlines()) == 1


def test_pki_init_prints_json_when_asked(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    made = CliRunner().invoke(main, ["pki", "init", "--out", str(out), "-o", "json"])
    assert made.exit_code == 0, made.output
    shown = json.loads(made.output)
    assert shown["kept_existing"] is False and shown["files"]["ca"] == str(out / "ca.pem")
    kept = CliRunner().invoke(main, ["pki", "init", "--out", str(out), "--keep-existing", "--json"])
    assert json.loads(kept.output) == {"out": str(out), "kept_existing": True, "files": {}}
