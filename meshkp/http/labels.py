"""Facts a handler leaves on its request for the layers that observe every answer.

The request metrics (meshkp/http/app.py) and the access log (meshkp/http/access_log.py) read
them after the handler ran, instead of parsing the request again.
"""

from __future__ import annotations

from aiohttp import web

# The HKP op of a /pks/lookup request as a bounded label: one of LOOKUP_OPS or "other".
OP_LABEL = web.RequestKey("meshkp.op", str)
LOOKUP_OPS = frozenset({"get", "index", "vindex", "stats", "hget"})
