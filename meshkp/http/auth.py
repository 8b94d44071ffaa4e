"""Admin credential of mutating /cluster/* endpoints: a bearer token (DESIGN.md "Security").

The token is read from config or from DATA_DIR/admin.token, created 0600 with 32 random bytes
(hex) on first start. A request without `Authorization: Bearer <token>`, or with another
token, gets 401; the comparison takes constant time.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from aiohttp import web

from meshkp.errors import ConfigError
from meshkp.net.secretfile import read_secret_file, write_secret_file

TOKEN_FILE = "admin.token"
# A configured token shorter than this is guessable online.
MIN_TOKEN_CHARS = 16


def load_or_create_token(data_dir: Path, configured: str | None = None) -> str:
    """The admin token: `configured` if given, else DATA_DIR/admin.token (created if missing)."""
    if configured is not None:
        if len(configured.strip()) < MIN_TOKEN_CHARS:
            raise ConfigError(f"admin token must have at least {MIN_TOKEN_CHARS} characters")
        return configured.strip()
    path = data_dir / TOKEN_FILE
    if not path.exists():
        try:
            write_secret_file(path, secrets.token_hex(32) + "\n", overwrite=False)
        except ConfigError:
            pass  # another process created it first: read theirs
    token = read_secret_file(path, "admin token").strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"{path} holds a token shorter than {MIN_TOKEN_CHARS} characters")
    return token


def require_admin(request: web.Request, token: str) -> None:
    """Raise 401 unless the request carries `Authorization: Bearer <token>`."""
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    # aiohttp decodes header bytes with surrogateescape: undo it exactly, so bytes that are not
    # UTF-8 compare unequal (401) instead of raising UnicodeEncodeError (500).
    given_bytes = given.strip().encode("utf-8", "surrogateescape")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given_bytes, token.encode()):
        raise web.HTTPUnauthorized(
            text="this endpoint needs Authorization: Bearer <token> (DATA_DIR/admin.token)\n",
            headers={"WWW-Authenticate": 'Bearer realm="meshkp"'},
        )
