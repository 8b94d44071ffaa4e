"""Run keytext parsing (framing, normalisation, self-signature checks) off the event loop.

Uploads are parsed in a thread by default: for one key (gpg --send-keys) a process costs
more in pickling and IPC than checking a few signatures, and measurements up to 3 MiB showed
no gain either (see NodeConfig.process_parse_bytes). With `process_threshold` > 0, uploads at
least that big go to the node's worker pool (meshkp/keys/pool.py) instead, to use an idle core.

The limits come from one source, the committer (`LimitsSource`): the policy that decides a
commit also bounds the parse before it, and a limit the control plane changes applies to the
next upload's parse and commit alike.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from meshkp.keys.pool import WorkerPool
from meshkp.limits import Limits
from meshkp.openpgp.keytext import KeytextItem, parse_keytext


class LimitsSource(Protocol):
    """Whatever holds the limits in force (meshkp.keys.commit.Committer)."""

    @property
    def limits(self) -> Limits: ...


class KeyParser:
    """parse(data) -> the items of meshkp.openpgp.keytext, in a thread or in the worker pool."""

    def __init__(self, source: LimitsSource, process_threshold: int, pool: WorkerPool | None = None) -> None:
        self.source = source
        self.process_threshold = process_threshold
        self.pool = pool

    @property
    def limits(self) -> Limits:
        return self.source.limits

    async def parse(self, data: bytes) -> list[KeytextItem]:
        """Every key of `data`; raises OpenPGPError (or LimitExceeded) if it cannot be framed."""
        limits = self.limits
        if (self.pool is None or not self.pool.enabled or self.process_threshold <= 0
                or len(data) < self.process_threshold):
            return await asyncio.get_running_loop().run_in_executor(
                None, parse_keytext, data, limits)
        return await self.pool.run(parse_keytext, data, limits)
