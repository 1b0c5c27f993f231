"""Named API tokens with roles: their forms, the role rule, the interceptor's verdict and who a
call's records name. No socket: the interceptor gets fake call details and contexts."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, cast

import grpc
import pytest

from engine_service.entrypoints import settings as engine_settings
from engine_service.entrypoints.auth import (
    SERVICE_NAME,
    Authenticator,
    Caller,
    TokenInterceptor,
    calling_as,
    current_caller,
)
from engine_service.entrypoints.cli.calls import EXIT_CODES
from engine_service.entrypoints.grpc_servicer import caller
from engine_service.entrypoints.token_options import read_token_file, token_warnings
from engine_service.entrypoints.tokens import (
    ApiToken,
    Role,
    TokenError,
    is_read_only,
    parse_token,
    parse_token_lines,
    table_problem,
)
from service_common.config import effective

OPS = ApiToken("ops", "OPS_SECRET_0123456789")
DASH = ApiToken("dash", "DASH_SECRET_0123456789", Role.READ)
PEER = "ipv4:10.1.2.3:5678"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ENGINE_"):
            monkeypatch.delenv(name)


def bearer(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret}"),)


# -- the forms -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s3cret", ApiToken("default", "s3cret", Role.OPERATOR)),
        ("  s3cret  ", ApiToken("default", "s3cret", Role.OPERATOR)),
        ("ops:s3cret", ApiToken("ops", "s3cret", Role.OPERATOR)),
        ("ops:s3cret:operator", ApiToken("ops", "s3cret", Role.OPERATOR)),
        ("dash:s3cret:read", ApiToken("dash", "s3cret", Role.READ)),
        ("ci.bot-2_x:a/b+c=d:read", ApiToken("ci.bot-2_x", "a/b+c=d", Role.READ)),
    ],
)
def test_every_form_of_a_token(text: str, expected: ApiToken) -> None:
    assert parse_token(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty secret"),
        (":s3cret", "name is empty"),
        ("ops:", "empty secret"),
        ("ops::read", "empty secret"),
        ("ops:s3cret:admin", "neither read nor operator"),
        ("ops:s3cret:read:x", "too many ':'"),
        ("o ps:s3cret", "letters, digits"),
        ("ops:s3 cret", "printable ASCII"),
        ("ops:s3cr\u00e9t", "printable ASCII"),
        (f"{'n' * 65}:s3cret", "1 to 64"),
    ],
)
def test_a_malformed_token_is_refused_without_repeating_the_secret(text: str, says: str) -> None:
    with pytest.raises(TokenError) as err:
        parse_token(text)
    assert says in str(err.value)
    assert "s3cr" not in str(err.value)


def test_the_repr_of_a_token_never_shows_its_secret() -> None:
    assert "OPS_SECRET" not in repr(OPS) and "ops" in repr(OPS)
    config = engine_settings.parse_args(["--api-token", "ops:OPS_SECRET_0123456789"])
    assert "OPS_SECRET" not in repr(config)


# -- the role rule -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GetCommand", "ListCommands", "WatchCommand", "ListHosts"])
def test_a_read_only_token_may_call_get_list_and_watch(method: str) -> None:
    assert is_read_only(method) and DASH.may_call(method) and OPS.may_call(method)


@pytest.mark.parametrize(
    "method",
    ["AddDisk", "CancelCommand", "AddStorageDomain", "ConfirmHostRebooted", "ReconcileOrphans"],
)
def test_a_read_only_token_may_not_change_anything(method: str) -> None:
    assert not is_read_only(method) and not DASH.may_call(method) and OPS.may_call(method)


# -- several tokens together ---------------------------------------------------------------------


def test_one_name_may_have_several_secrets_for_rotation() -> None:
    assert table_problem([OPS, ApiToken("ops", "NEW_OPS_SECRET_0123"), OPS]) is None
    assert table_problem([parse_token("old-bare"), parse_token("new-bare")]) is None


def test_one_secret_for_two_names_or_a_name_with_two_roles_is_refused() -> None:
    twin = ApiToken("other", OPS.secret)
    assert table_problem([OPS, twin]) == "tokens 'ops' and 'other' have the same secret"
    demoted = ApiToken("ops", "ANOTHER_SECRET_0123", Role.READ)
    assert "two roles" in str(table_problem([OPS, demoted]))


# -- the verdict on a call -----------------------------------------------------------------------


def test_the_decision_over_fake_metadata() -> None:
    auth = Authenticator([OPS, DASH])
    assert auth.decide("AddDisk", bearer(OPS.secret)).token == OPS
    assert auth.decide("ListHosts", bearer(DASH.secret)).allowed
    denied = auth.decide("AddDisk", bearer(DASH.secret))
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED
    assert "'dash'" in denied.message and "AddDisk" in denied.message
    for metadata, says in (
        ((), "missing bearer token"),
        ((("authorization", OPS.secret),), "missing bearer token"),
        (bearer("wrong"), "invalid bearer token"),
        (bearer(OPS.secret + "x"), "invalid bearer token"),
    ):
        refused = auth.decide("ListHosts", metadata)
        assert refused.code == grpc.StatusCode.UNAUTHENTICATED
        assert refused.message.startswith(says) and refused.token is None


def test_with_no_token_configured_every_call_goes_on_anonymously() -> None:
    decision = Authenticator([]).decide("AddDisk", ())
    assert decision.allowed and decision.token is None


class FakeDetails:
    """What grpc gives a server interceptor: the full method name and the metadata."""

    def __init__(self, method: str, metadata: Any) -> None:
        self.method = f"/{SERVICE_NAME}/{method}"
        self.invocation_metadata = metadata


class FakeContext:
    """The parts of a ServicerContext the interceptor's handlers use."""

    def __init__(self) -> None:
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def peer(self) -> str:
        return PEER

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise RuntimeError("aborted")


def intercepted(method: str, secret: str | None, tokens: list[ApiToken]) -> Any:
    """Run `method` through the interceptor; the servicer answers with who it sees."""

    def servicer(request: Any, context: Any) -> str:
        return caller(context)

    handler: Any = grpc.unary_unary_rpc_method_handler(servicer)
    details = FakeDetails(method, bearer(secret) if secret else ())
    return TokenInterceptor(tokens).intercept_service(lambda d: handler, details)


def test_the_servicer_sees_the_tokens_name_and_the_call_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="engine_service.audit")
    handler = intercepted("ConfirmHostRebooted", OPS.secret, [OPS, DASH])
    assert handler.unary_unary(None, FakeContext()) == f"token ops from {PEER}"
    [record] = caplog.records
    assert record.getMessage() == f"ConfirmHostRebooted by token ops from {PEER}"
    assert (record.rpc, record.token, record.peer) == ("ConfirmHostRebooted", "ops", PEER)  # type: ignore[attr-defined]
    assert OPS.secret not in caplog.text


def test_an_open_api_records_the_peer_alone_and_logs_anonymous(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="engine_service.audit")
    handler = intercepted("AddDisk", None, [])
    assert handler.unary_unary(None, FakeContext()) == PEER
    assert caplog.records[0].getMessage() == f"AddDisk by anonymous from {PEER}"
    assert caplog.records[0].token == "anonymous"  # type: ignore[attr-defined]


def test_reads_are_not_logged_and_a_denied_change_never_reaches_the_servicer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="engine_service.audit")
    assert intercepted("ListHosts", DASH.secret, [OPS, DASH]).unary_unary(None, FakeContext())
    assert not caplog.records
    context = FakeContext()
    with pytest.raises(RuntimeError, match="aborted"):
        intercepted("CancelCommand", DASH.secret, [OPS, DASH]).unary_unary(None, context)
    assert context.aborted is not None
    assert context.aborted[0] == grpc.StatusCode.PERMISSION_DENIED
    assert "'dash'" in context.aborted[1] and "CancelCommand" in context.aborted[1]
    assert "PERMISSION_DENIED: CancelCommand by read-only token dash" in caplog.text


def test_caller_outside_an_intercepted_call_is_the_peer() -> None:
    assert caller(cast(grpc.ServicerContext, FakeContext())) == PEER
    with calling_as("ops"):
        assert current_caller(PEER) == Caller("ops", PEER)
    assert current_caller(None) == Caller(None, "unknown")


def test_enginectl_has_an_exit_code_of_its_own_for_permission_denied() -> None:
    assert EXIT_CODES[grpc.StatusCode.PERMISSION_DENIED] == 7
    assert sorted(EXIT_CODES.values()).count(7) == 1


# -- settings: flags, variable, file -------------------------------------------------------------


def test_parse_token_lines_skips_comments_and_blank_lines_and_names_a_bad_line() -> None:
    text = "# the operators\n\nops:OPS_SECRET_0123456789\n  dash:DASH_SECRET_0123456789:read\n"
    assert parse_token_lines(text, "tokens.txt") == [OPS, DASH]
    with pytest.raises(TokenError) as err:
        parse_token_lines("ops:OK_SECRET\nops:BAD_SECRET:admin\n", "tokens.txt")
    assert str(err.value).startswith("tokens.txt, line 2: ") and "BAD" not in str(err.value)


def test_tokens_from_flags_the_variable_and_the_file_are_combined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tokens"
    path.write_text("dash:DASH_SECRET_0123456789:read\nops:NEW_OPS_SECRET_0123\n")
    path.chmod(0o600)
    config = engine_settings.parse_args(
        ["--api-token", "ops:OPS_SECRET_0123456789", "--api-token-file", str(path)]
    )
    assert config.tokens == (OPS, DASH, ApiToken("ops", "NEW_OPS_SECRET_0123"))
    assert token_warnings(config.api_tokens, config.api_token_file) == []
    assert effective(config)["api_token_file"] == str(path)
    monkeypatch.setenv("ENGINE_API_TOKENS", "ops:OPS_SECRET_0123456789,legacy-secret")
    monkeypatch.setenv("ENGINE_API_TOKEN_FILE", str(path))
    from_env = engine_settings.parse_args([])
    assert [t.name for t in from_env.tokens] == ["ops", "default", "dash", "ops"]


def test_weak_secrets_and_a_file_others_may_read_are_warned_about(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("dash:short:read\n")
    path.chmod(0o644)
    file = read_token_file(path)
    warnings = token_warnings((OPS,), file)
    assert "'dash'" in warnings[0] and "shorter than 16" in warnings[0]
    assert "every user" in warnings[1] and "short" not in warnings[1]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--api-token", "ops:x:admin"], "Invalid value for '--api-token': token 'ops'"),
        (["--api-token", ":x"], "name is empty"),
        (
            ["--api-token", "ops:SAME_SECRET", "--api-token", "dash:SAME_SECRET:read"],
            "--api-token and --api-token-file: tokens 'ops' and 'dash' have the same secret",
        ),
    ],
)
def test_a_bad_token_is_a_usage_error_naming_the_option(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        engine_settings.parse_args(argv)
    assert stopped.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert says in err and "SAME_SECRET" not in err


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("# nothing but a comment\n\n", "holds no token"),
        ("ops:GOOD_SECRET_0123456789\nops:SECRET:root\n", "line 2: token 'ops'"),
    ],
)
def test_a_bad_token_file_is_a_usage_error_naming_the_file_and_line(
    tmp_path: Path, content: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tokens"
    path.write_text(content)
    with pytest.raises(SystemExit) as stopped:
        engine_settings.parse_args(["--api-token-file", str(path)])
    assert stopped.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "Invalid value for '--api-token-file'" in err and says in err
    assert "GOOD_SECRET" not in err


def test_a_missing_token_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        engine_settings.parse_args(["--api-token-file", str(tmp_path / "absent")])
    assert stopped.value.code == 2
    assert "cannot be read" in capsys.readouterr().err
