"""Admin credentials of mutating /cluster/* endpoints: bearer tokens (DESIGN.md "Security").

Two kinds of token are accepted:
- the bootstrap token, read from config or from DATA_DIR/admin.token, created 0600 with 32
  random bytes (hex) on first start; its actor name is `BOOTSTRAP_ACTOR`;
- a named admin token, whose SHA-256 the cluster policy holds (`PolicyState.admins`, set by
  PUT /cluster/admins/{name}): any node accepts it, and the request then acts as that name
  (audit trail, tombstones).
A request without `Authorization: Bearer <token>`, or with another token, gets 401; every
comparison takes constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from meshkp.control.policy.state import PolicyState
from meshkp.errors import ConfigError
from meshkp.net.secretfile import read_secret_file, write_secret_file

log = logging.getLogger(__name__)

TOKEN_FILE = "admin.token"
# A configured token shorter than this is guessable online.
MIN_TOKEN_CHARS = 16
# The actor name of the bootstrap token (DATA_DIR/admin.token) in audit entries and tombstones.
BOOTSTRAP_ACTOR = "admin"
# The admin a request was authenticated as (set by require_admin).
ACTOR_KEY = web.RequestKey("meshkp.actor", str)


# Around a token in a file or setting, only ASCII whitespace (a trailing newline) is not part of
# it: str.strip() would also drop U+00A0, U+3000..., so the token accepted would differ from
# the one written (red-team finding 9, the header side is in require_admin).
_TOKEN_BLANKS = " \t\r\n"


def load_or_create_token(data_dir: Path, configured: str | None = None) -> str:
    """The admin token: `configured` if given, else DATA_DIR/admin.token (created if missing)."""
    if configured is not None:
        if len(configured.strip(_TOKEN_BLANKS)) < MIN_TOKEN_CHARS:
            raise ConfigError(f"admin token must have at least {MIN_TOKEN_CHARS} characters")
        return configured.strip(_TOKEN_BLANKS)
    path = data_dir / TOKEN_FILE
    if not path.exists():
        try:
            write_secret_file(path, secrets.token_hex(32) + "\n", overwrite=False)
        except ConfigError:
            pass  # another process created it first: read theirs
    token = read_secret_file(path, "admin token").strip(_TOKEN_BLANKS)
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"{path} holds a token shorter than {MIN_TOKEN_CHARS} characters")
    return token


def token_sha256(token: str) -> bytes:
    """What the policy keeps of a named admin's token (only the hash is replicated)."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class AdminAuth:
    """The bootstrap token, and the named admins of the applied policy (`policy`, if any).

    `source` re-reads the bootstrap token (SIGHUP: `reload`), so a token written to
    DATA_DIR/admin.token replaces the old one without a restart.
    """

    def __init__(self, token: str, policy: Callable[[], PolicyState] | None = None,
                 source: Callable[[], str] | None = None) -> None:
        self.token = token
        self.policy = policy
        self.source = source

    def reload(self) -> None:
        """Read the bootstrap token again; on a failure keep the current one (and say why)."""
        if self.source is None:
            return
        try:
            token = self.source()
        except ConfigError as exc:
            log.error("event=admin_token_reload_failed error=%s hint=the_previous_token_stays", exc)
            return
        changed = not hmac.compare_digest(token.encode(), self.token.encode())
        self.token = token
        log.info("event=admin_token_reloaded changed=%s", changed)  # never the token itself

    def actor_of(self, given: bytes) -> str | None:
        """The admin name `given` authenticates, or None."""
        bootstrap = hmac.compare_digest(given, self.token.encode())
        named = None
        if self.policy is not None and given:
            named = self.policy().admin_for(hashlib.sha256(given).digest())
        if bootstrap:
            return BOOTSTRAP_ACTOR
        return named


def bearer_token(request: web.Request) -> bytes | None:
    """The exact bytes of the request's `Authorization: Bearer <token>`, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    # aiohttp decodes header bytes with surrogateescape: undo it exactly, so bytes that are not
    # UTF-8 compare unequal (401) instead of raising UnicodeEncodeError (500).
    # Only HTTP's own optional whitespace (space, tab: RFC 9110 §5.6.3) is not part of the
    # token; str.strip() would also drop U+00A0, U+3000, U+2028..., accepting tokens that
    # differ from the real one.
    return given.strip(" \t").encode("utf-8", "surrogateescape")


def require_admin(request: web.Request, auth: str | AdminAuth) -> str:
    """The admin name the request's `Authorization: Bearer <token>` authenticates (also kept
    as request[ACTOR_KEY]); 401 if none."""
    checker = auth if isinstance(auth, AdminAuth) else AdminAuth(auth)
    given_bytes = bearer_token(request)
    actor = checker.actor_of(given_bytes) if given_bytes is not None else None
    if actor is None:
        raise web.HTTPUnauthorized(
            text="this endpoint needs Authorization: Bearer <token> (DATA_DIR/admin.token, "
                 "or a named admin's token: PUT /cluster/admins/{name})\n",
            headers={"WWW-Authenticate": 'Bearer realm="meshkp"'},
        )
    request[ACTOR_KEY] = actor
    return actor
