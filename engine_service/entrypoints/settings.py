"""Every setting of `engine-service`, each declared once: its flag, variable (ENGINE_ + the
flag), config-file key (the flag without its leading dashes), default, type and help."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from engine_service.entrypoints.token_options import (
    ApiTokenType,
    TokenFile,
    TokenFileType,
    TokenTable,
    all_tokens,
)
from engine_service.entrypoints.tokens import ApiToken
from engine_service.service_layer.polling import DEFAULT_COMMAND_TIMEOUT, DEFAULT_SWEEP_AFTER
from service_common.config import (
    DURATION,
    NON_NEGATIVE_FLOAT,
    PATH,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    CommandLine,
    ServerSettings,
    needs,
    setting,
    settings,
    together,
)
from service_common.secure_default import no_plaintext_off_loopback
from service_common.tls import ClientTls

ENV_PREFIX = "ENGINE_"


def default_database_url(values: Mapping[str, Any]) -> str:
    return f"sqlite:///{Path(values['state_dir']) / 'engine.db'}"


@settings
class Config(ServerSettings):
    """The engine's settings, from defaults, the --config file, ENGINE_* variables and flags."""

    listen: str = setting(
        "HOST:PORT to serve gRPC on; port 0 picks a free one", default="127.0.0.1:50051"
    )
    state_dir: Path = setting(
        "where the default SQLite database lives",
        type=PATH,
        default=Path("/var/lib/engine-service"),
    )
    database_url: str = setting(
        "an SQLAlchemy URL: sqlite:///FILE or postgresql://USER@HOST/DB",
        default_from=default_database_url,
        default_help="sqlite:///STATE_DIR/engine.db",
    )
    no_migrate: bool = setting(
        "do not migrate the database at start: refuse to start unless its schema is at the "
        "newest revision (`engine-service migrate` brings it there)",
        type=bool,
        default=False,
    )
    poll_interval: float = setting(
        "seconds between two polls of every host", type=POSITIVE_FLOAT, default=1.0
    )
    host_failure_polls: int = setting(
        "failed polls in a row that make a host NON_RESPONSIVE", type=POSITIVE_INT, default=3
    )
    task_timeout: float = setting(
        "seconds after a host stopped answering (NON_RESPONSIVE, or in maintenance) that its "
        "commands fail",
        type=POSITIVE_FLOAT,
        default=300.0,
    )
    command_timeout: float = setting(
        "seconds an ACTIVE command may run before it is ended FAILED, its tasks stopped and its "
        "work compensated; 0 disables. The default fits a 1 TiB copy at 50 MB/s twice over",
        type=NON_NEGATIVE_FLOAT,
        default=DEFAULT_COMMAND_TIMEOUT,
    )
    sweep_after: float = setting(
        "seconds a placeholder may stay unsent, by a command this process is not submitting, "
        "before it is reconciled (adopted or failed) without a restart",
        type=POSITIVE_FLOAT,
        default=DEFAULT_SWEEP_AFTER,
    )
    zombie_grace: float = setting(
        "seconds an agent task unknown to the engine may live before it is stopped and cleared",
        type=POSITIVE_FLOAT,
        default=60.0,
    )
    agent_deadline: float = setting(
        "seconds a host's agent gets to answer a poll or a lookup; a slower host misses that "
        "cycle and never delays the others",
        type=POSITIVE_FLOAT,
        default=3.0,
    )
    orphans: str = setting(
        "commands whose placeholders never reached an agent at a restart: fail them, or "
        "submit those children again",
        type=click.Choice(["fail", "resubmit"]),
        default="fail",
    )
    retention: float = setting(
        "how long ended commands, their children, history and request ids are kept before "
        "they are pruned in the background: 30d, 12h, 90m, 45s or seconds; 0 keeps everything",
        type=DURATION,
        default=30 * 86400.0,
        default_help="30d",
    )
    bound_address_file: Path | None = setting(
        "write the HOST:PORT actually bound here once listening", type=PATH
    )
    ui_listen: str | None = setting(
        "HOST:PORT to serve the read-only web console on, once this engine is active (HTTPS "
        "with --tls-cert/--tls-key, and the API's tokens when there are any); port 0 picks a "
        "free one (default: off)"
    )
    ui_bound_address_file: Path | None = setting(
        "write the console's HOST:PORT actually bound here once it listens", type=PATH
    )
    agent_tls_ca: Path | None = setting(
        "reach agents over TLS, trusting this CA (their host names are checked)", type=PATH
    )
    agent_tls_cert: Path | None = setting(
        "the engine's client certificate for agents that require one", type=PATH
    )
    agent_tls_key: Path | None = setting("its private key", type=PATH, secret=True)
    tls_cert: Path | None = setting(
        "serve the engine API over TLS with this certificate", type=PATH
    )
    tls_key: Path | None = setting("its private key", type=PATH, secret=True)
    max_watchers: int = setting(
        "WatchCommand streams open at once; more get RESOURCE_EXHAUSTED",
        type=POSITIVE_INT,
        default=64,
    )
    api_tokens: tuple[ApiToken, ...] = setting(
        "a bearer token the API accepts: SECRET (an operator named default), NAME:SECRET "
        "(an operator) or NAME:SECRET:read (read-only: Get*, List*, Watch*); with no token "
        "(and no --api-token-file) the API is open",
        flag="api-token",
        env="ENGINE_API_TOKENS",
        type=ApiTokenType(),
        multiple=True,
        secret=True,
    )
    api_token_file: TokenFile | None = setting(
        "a file of tokens, one per line in the forms of --api-token ('#' comments), added to "
        "them; it keeps secrets out of process listings",
        type=TokenFileType(),
    )

    @property
    def tokens(self) -> tuple[ApiToken, ...]:
        """Every token the API accepts: --api-token's, then the --api-token-file's."""
        return all_tokens(self.api_tokens, self.api_token_file)

    @property
    def agent_tls(self) -> ClientTls | None:
        """How to reach agents: None for plaintext."""
        if self.agent_tls_ca is None:
            return None
        return ClientTls(self.agent_tls_ca, self.agent_tls_cert, self.agent_tls_key)


COMMAND_LINE = CommandLine(
    Config,
    prog="engine-service",
    prefix=ENV_PREFIX,
    description="The engine: commands, placeholders, polling and reconciliation over the "
    "hosts' vdsm-agents. Settings come from the defaults, then the --config file, then "
    "ENGINE_<FLAG> variables, then flags.",
    rules=(
        together("tls_cert", "tls_key"),
        together("agent_tls_cert", "agent_tls_key"),
        needs("agent_tls_cert", "agent_tls_ca"),
        TokenTable(),
        no_plaintext_off_loopback("engine"),
        no_plaintext_off_loopback("engine", listen="ui_listen"),
    ),
)


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """The engine's settings from `argv` (default: the process's), the environment and file."""
    return COMMAND_LINE.parse(argv)
