"""`enginectl reconcile` prints how many commands a reconciliation failed and, when the reply
lists only the first of them, the `enginectl command list` line that lists them all; that line
asks ListCommands for exactly those. No engine: the client's calls are answered here."""

from __future__ import annotations

import shlex
from datetime import datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from google.protobuf.message import Message

from engine_service.entrypoints.cli import main
from engine_service.entrypoints.cli.calls import Client
from engine_service.v1 import engine_service_pb2 as pb

FAILED_AT = datetime(2026, 1, 31, 12, 0, 0, 123456)


class Answers:
    """The calls enginectl made, each answered with the reply given for its method."""

    def __init__(self, replies: dict[str, Message]) -> None:
        self.replies = replies
        self.requests: list[tuple[str, Any]] = []

    def __call__(self, method: str, request: Message) -> Message:
        copy = type(request)()
        copy.CopyFrom(request)
        self.requests.append((method, copy))
        return self.replies[method]


def report(failed: int, listed: int) -> pb.ReconcileOrphansResponse:
    reply = pb.ReconcileOrphansResponse(
        failed_command_ids=[f"id-{i}" for i in range(listed)], failed_commands=failed
    )
    if failed:
        reply.failed_at.FromDatetime(FAILED_AT)
    return reply


def run(monkeypatch: pytest.MonkeyPatch, answers: Answers, *args: str) -> str:
    monkeypatch.setattr(Client, "call", lambda _, method, request: answers(method, request))
    done = CliRunner().invoke(main, list(args))
    assert done.exit_code == 0, done.output
    return done.output


def test_a_truncated_report_says_how_to_list_every_failed_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = Answers(
        {
            "ReconcileOrphans": report(120_000, 1000),
            "ListCommands": pb.ListCommandsResponse(),
        }
    )
    out = run(monkeypatch, answers, "reconcile")
    this_run, hint, startup = out.splitlines()
    assert (
        this_run.startswith("this run: failed commands ['id-0', ") and "(120000 in all)" in this_run
    )
    assert startup.startswith("at startup: failed commands [] (0 in all)")
    assert "the first 1000 are listed" in hint
    command = shlex.split(hint.split("all of them: ")[1])
    assert command[:4] == ["enginectl", "command", "list", "--status"]
    run(monkeypatch, answers, *command[1:])
    method, request = answers.requests[-1]
    assert method == "ListCommands" and request.status == pb.COMMAND_STATUS_FAILED
    assert request.ended_after.ToDatetime() == FAILED_AT
    assert request.ended_before.ToDatetime() == FAILED_AT + timedelta(microseconds=1)
    assert request.page_size == 500


def test_a_complete_report_has_no_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    out = run(monkeypatch, Answers({"ReconcileOrphans": report(2, 2)}), "reconcile")
    assert out.splitlines()[0].startswith("this run: failed commands ['id-0', 'id-1'] (2 in all)")
    assert len(out.splitlines()) == 2


def test_command_list_sends_the_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = Answers({"ListCommands": pb.ListCommandsResponse()})
    run(
        monkeypatch,
        answers,
        *("command", "list", "--ended-after", "2026-01-31T13:00:00+01:00"),
        *("--ended-before", "2026-02-01", "--failure-reason-contains", "restarted"),
    )
    [(_, request)] = answers.requests
    assert request.ended_after.ToDatetime() == datetime(2026, 1, 31, 12, 0)
    assert request.ended_before.ToDatetime() == datetime(2026, 2, 1)
    assert request.failure_reason_contains == "restarted"
    assert request.status == pb.COMMAND_STATUS_UNSPECIFIED


def test_command_list_refuses_an_instant_it_cannot_read(monkeypatch: pytest.MonkeyPatch) -> None:
    done = CliRunner().invoke(main, ["command", "list", "--ended-after", "yesterday"])
    assert done.exit_code == 2 and "'yesterday' is not an ISO 8601 instant" in done.output
