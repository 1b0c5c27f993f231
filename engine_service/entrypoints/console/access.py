"""Who may read the console: the engine API's tokens, any role (the console only reads).

With no token configured the console is open, like the API. Otherwise a request needs either
`Authorization: Bearer <secret>` (scripts, `curl`) or the session cookie that the login form
sets (browsers). The secret is checked by the API's own `Authenticator` (every token compared,
in constant time). The cookie never holds the secret: it is `NAME.EXPIRES.MAC`, where MAC is an
HMAC of the name and expiry under a key derived from the token's secret, so it outlives an
engine restart, lapses after `SESSION_SECONDS`, and dies with its token (a rotation).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence

from engine_service.entrypoints.auth import ANONYMOUS, Authenticator
from engine_service.entrypoints.tokens import ApiToken

COOKIE = "console_session"
SESSION_SECONDS = 12 * 3600
_KEY_LABEL = b"engine-service console session\0"


def _mac(token: ApiToken, name: str, expires: int) -> str:
    key = hashlib.sha256(_KEY_LABEL + token.secret.encode()).digest()
    return hmac.new(key, f"{name}.{expires}".encode(), hashlib.sha256).hexdigest()


class ConsoleAccess:
    """The console's gate over the API's tokens: `identify` a request, `login` with a secret."""

    def __init__(self, tokens: Sequence[ApiToken], clock: Callable[[], float] = time.time):
        self.tokens = tuple(tokens)
        self.authenticator = Authenticator(self.tokens)
        self.clock = clock

    @property
    def open(self) -> bool:
        """No token configured: everyone may read, as the API lets everyone call."""
        return not self.tokens

    def login(self, secret: str) -> tuple[str, str] | None:
        """The token's name and a session cookie value for a valid secret, else None."""
        token = self.authenticator.identify([("authorization", f"Bearer {secret}")])
        if isinstance(token, str):
            return None
        expires = int(self.clock()) + SESSION_SECONDS
        return token.name, f"{token.name}.{expires}.{_mac(token, token.name, expires)}"

    def identify(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> str | None:
        """The name of the token a request presents (`anonymous` when the console is open),
        or None: its `Authorization` header first, else its session cookie."""
        if self.open:
            return ANONYMOUS
        header = headers.get("authorization")
        if header is not None:
            token = self.authenticator.identify([("authorization", header)])
            return None if isinstance(token, str) else token.name
        cookie = cookies.get(COOKIE)
        return self.session(cookie) if cookie else None

    def session(self, value: str) -> str | None:
        """The token name a session cookie stands for, if it is genuine and not expired. Every
        token's MAC is compared, in constant time."""
        rest, _, mac = value.rpartition(".")
        name, _, expires = rest.rpartition(".")
        if not name or not expires.isdigit() or int(expires) < self.clock():
            return None
        found: str | None = None
        for token in self.tokens:
            expected = _mac(token, name, int(expires)).encode()
            genuine = hmac.compare_digest(expected, mac.encode(errors="replace"))
            if genuine and token.name == name and found is None:
                found = name
        return found
