"""Bounds of aiohttp's HTTP server itself (AppRunner keyword arguments), each with its reason.

Body reads are bounded by meshkp/http/uploads.py; these bound the connection and the request
head. aiohttp's own defaults keep an idle keep-alive connection for an hour.
"""

from __future__ import annotations

from typing import Any

RUNNER_LIMITS: dict[str, Any] = {
    # Seconds an idle keep-alive connection is kept (aiohttp: 3630). gpg and proxies reuse a
    # connection within a second or not at all; idle ones only hold file descriptors.
    "keepalive_timeout": 15.0,
    # Request line and each header line, in bytes: a lookup URL with a 256-character search,
    # percent-encoded, is under 1 KiB.
    "max_line_size": 8190,
    "max_field_size": 8190,
    # Headers per request (aiohttp: 128). HKP clients send about ten.
    "max_headers": 64,
    # Seconds we keep reading a body the handler did not consume before closing (aiohttp: 10),
    # so a 413 or 400 still reaches the client without holding the connection long.
    "lingering_time": 5.0,
}
