"""x-consistency on POST /pks/add: the level a client asked for, and the reply once acked.

The level comes from the `X-Consistency` header, an `x-consistency` query variable or form
field, in that order; `one` (the default unless the node says otherwise) replies once the
write is durable here. For `quorum` and `all` the add handler (hkp.py) waits, after the key
service stored the upload, for that many nodes to acknowledge every key the upload changed or
already held, through the `Acks` replication provides (`Replicator.wait_for`, which counts the
acks of the write's own push). Short of it after the timeout, the reply is 503 and says how
many did; the write stays stored and keeps spreading. The node passes its `Consistency` to
make_app (meshkp/http/app.py); an app without one ignores the variable.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from multidict import MultiMapping

from meshkp.keys.service import AddReport

log = logging.getLogger(__name__)

CONSISTENCY_HEADER = "X-Consistency"
ACKS_HEADER = "X-Consistency-Acks"


class Acks(Protocol):
    """What waiting for acks needs of replication (meshkp.replication.replicator.Replicator)."""

    @property
    def consistency_timeout_s(self) -> float: ...

    async def wait_for(self, fingerprints: Sequence[bytes], level: str) -> tuple[int, int]: ...


@dataclass(frozen=True, slots=True)
class Consistency:
    """The acks of this node's replication and the level of uploads that ask for none."""

    acks: Acks
    default: str = "one"


CONSISTENCY_KEY = web.AppKey("meshkp.consistency", Consistency)


def level_asked(request: web.Request, form: MultiMapping[Any] | None = None) -> str | None:
    """The x-consistency of the header or query, else of the form (None: not asked).

    The add handler asks before reading the body, so a bad header is a 400 whatever the body.
    """
    asked = request.headers.get(CONSISTENCY_HEADER) or request.query.get("x-consistency")
    if asked or form is None:
        return asked or None
    value = form.get("x-consistency")
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else None


async def confirmed(
    consistency: Consistency, level: str, report: AddReport, response: web.Response, as_json: bool
) -> web.Response:
    """`response` once `level` acknowledged the upload's keys, or the 503 saying how many did."""
    keys = list(dict.fromkeys(report.changed + report.held))
    if level == "one" or response.status != 200 or not keys:
        return response
    acked, needed = await consistency.acks.wait_for(keys, level)
    response.headers[ACKS_HEADER] = f"{acked}/{needed}"
    if acked >= needed:
        return response
    message = (
        f"x-consistency={level} not reached: {acked} of {needed} nodes acknowledged within "
        f"{consistency.acks.consistency_timeout_s:g} s; the write is stored on this node "
        "and keeps spreading"
    )
    log.warning("event=consistency_timeout level=%s acked=%d needed=%d", level, acked, needed)
    headers = {ACKS_HEADER: f"{acked}/{needed}"}
    if as_json:
        return web.json_response(
            {"status": 503, "error": message, "acked": acked, "needed": needed,
             "result": report.to_json()},
            status=503, headers=headers,
        )
    return web.Response(status=503, text=f"{message}\n{report.to_text()}",
                        content_type="text/plain", headers=headers)
