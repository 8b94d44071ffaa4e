"""Run keytext parsing (framing, normalisation, self-signature checks) off the event loop.

Uploads are parsed in a thread by default: for one key (gpg --send-keys) a process costs
more in pickling and IPC than checking a few signatures, and measurements up to 3 MiB showed
no gain either (see NodeConfig.process_parse_bytes). With `process_threshold` > 0, uploads at
least that big go to the node's worker pool (meshkp/keys/pool.py) instead, to use an idle core.

A small upload that arrives while nothing else is being uploaded or written is not parsed
here at all: the key service parses it in its commit job, on the writer thread (`in_commit`),
so it crosses threads twice (loop -> writer -> loop) instead of four times. Under concurrent
uploads parses run here, overlapping the writer's fsyncs, and commits share them.

The limits come from one source, the committer (`LimitsSource`): the policy that decides a
commit also bounds the parse before it, and a limit the control plane changes applies to the
next upload's parse and commit alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from meshkp.errors import InvalidRequest
from meshkp.keys.ingest import IngestResult, Refuse, ingest
from meshkp.keys.pool import WorkerPool
from meshkp.limits import Limits
from meshkp.openpgp.keytext import KeytextItem, parse_keytext
from meshkp.store.protocol import Store

# Uploads up to this many bytes may be parsed in their commit job on the writer thread. A
# small key (one user ID, one subkey: ~1 KB armored, two signatures) parses and verifies in
# ~0.2-0.4 ms, about one fsync; an 8 KiB one has a few dozen signatures (a few ms), which is
# as long as a lone commit should hold the writer.
IN_COMMIT_BYTES = 8 * 1024


class LimitsSource(Protocol):
    """Whatever holds the limits in force (meshkp.keys.commit.Committer)."""

    @property
    def limits(self) -> Limits: ...


class KeyParser:
    """parse(data) -> the items of meshkp.openpgp.keytext, in a thread or in the worker pool."""

    def __init__(self, source: LimitsSource, process_threshold: int, pool: WorkerPool | None = None,
                 in_commit_bytes: int = IN_COMMIT_BYTES) -> None:
        self.source = source
        self.process_threshold = process_threshold
        self.pool = pool
        self.in_commit_bytes = in_commit_bytes

    def in_commit(self, data: bytes) -> bool:
        """Whether `data` is small enough to be parsed in its commit job (see the module doc);
        never one that `process_threshold` sends to the worker pool."""
        return len(data) <= self.in_commit_bytes and not self._to_pool(data)

    def _to_pool(self, data: bytes) -> bool:
        return (self.pool is not None and self.pool.enabled and self.process_threshold > 0
                and len(data) >= self.process_threshold)

    @property
    def limits(self) -> Limits:
        return self.source.limits

    async def parse(self, data: bytes) -> list[KeytextItem]:
        """Every key of `data`; raises OpenPGPError (or LimitExceeded) if it cannot be framed."""
        limits = self.limits
        if self._to_pool(data):
            assert self.pool is not None
            return await self.pool.run(parse_keytext, data, limits)
        return await asyncio.get_running_loop().run_in_executor(None, parse_keytext, data, limits)


def require_keys(items: list[KeytextItem]) -> list[KeytextItem]:
    """`items`, or InvalidRequest if the upload held none."""
    if not items:
        raise InvalidRequest("keytext holds no OpenPGP public key")
    return items


def parsing_upload(
    keytext: bytes, node_id: str, refuse: Refuse | None = None, readd: bool = False,
) -> Callable[[Store, Limits], IngestResult]:
    """The decision (for Committer.run) that parses `keytext` and merges it as an upload
    (meshkp.keys.ingest.uploading): parse, verify and merge in one job, under one policy."""
    def decide(store: Store, limits: Limits) -> IngestResult:
        items = require_keys(parse_keytext(keytext, limits))
        return ingest(items, store.get, store.lookup, node_id, limits, refuse, readd)
    return decide
