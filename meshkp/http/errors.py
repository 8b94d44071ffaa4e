"""The one place where meshkp errors become HTTP status codes (STYLE.md §11).

Bad input is always a 4xx with the reason in the body. An exception that is not a
MeshkpError is a bug: the middleware in app.py answers 500, logs the traceback and counts it
(meshkp_http_unexpected_errors), and the tests assert that it never happens.
"""

from __future__ import annotations

import json

from aiohttp import web

from meshkp.errors import (
    ControlUnavailable,
    InvalidCommand,
    InvalidRequest,
    LimitExceeded,
    MeshkpError,
    NotFound,
    OpenPGPError,
    Overloaded,
    RequestTimedOut,
    StoreError,
    StoreFull,
    Unsupported,
)


def status_of(error: MeshkpError) -> int:
    """The HTTP status for an error raised on purpose."""
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, Unsupported):
        return 501
    if isinstance(error, LimitExceeded):
        # Only the body size is "too large" in the HTTP sense; other limits (search length,
        # key size) make the request malformed for this server.
        return 413 if error.limit == "upload_bytes" else 400
    if isinstance(error, (InvalidRequest, OpenPGPError)):
        return 400
    if isinstance(error, RequestTimedOut):
        return 408
    if isinstance(error, Overloaded):
        return 503  # a node-wide bound is full: retry later
    if isinstance(error, InvalidCommand):
        return 400  # a control-plane change that is malformed or breaks a policy rule
    if isinstance(error, ControlUnavailable):
        return 503  # no leader or no majority: retry later (Retry-After)
    if isinstance(error, StoreFull):
        return 507  # RFC 4918 §11.5 Insufficient Storage: nothing was stored, retry elsewhere
    if isinstance(error, StoreError):
        return 503  # the store is closed or failing: retry later, it is not the client's fault
    return 500


def error_response(error: MeshkpError, as_json: bool = False) -> web.Response:
    return text_error(status_of(error), str(error), as_json)


def text_error(status: int, message: str, as_json: bool = False) -> web.Response:
    """A short error reply: the reason as text (or JSON), never a stack trace."""
    if as_json:
        body = json.dumps({"status": status, "error": message}) + "\n"
        return web.Response(status=status, text=body, content_type="application/json")
    return web.Response(status=status, text=message.rstrip("\n") + "\n", content_type="text/plain")
