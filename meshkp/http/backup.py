"""GET /cluster/backup [admin]: a consistent copy of the running node's store, streamed.

One LevelDB snapshot is taken and its rows are sent as they are read (meshkp/bulk/backup_format.py
says the format), a page at a time on the store's reader threads, so the node keeps serving and
writing meanwhile and the copy holds every write committed before the snapshot and none after.
Each commit is one atomic WriteBatch, so a snapshot never holds half of one: its records,
indexes, counters and Merkle tree agree. The header carries the snapshot's Merkle root (read
from the snapshot itself) and the applied policy version; the reply headers repeat them, so
a client knows what it is getting before the first row.

A node still copying a peer's store (bootstrapping) answers 503: its store is not a whole
copy yet.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from itertools import islice
from typing import Any

from aiohttp import web

from crdt.merkle import MerkleTree
from meshkp.bulk.backup_format import BackupHeader, BackupWriter
from meshkp.control.policy.state import PolicyState
from meshkp.http.auth import AdminAuth, require_admin
from meshkp.keys.ingest import KEYS_COUNTER
from meshkp.keys.merkle_index import MERKLE_PREFIX, TOMBSTONES_COUNTER, MerkleIndex
from meshkp.store import layout
from meshkp.store.executor import AsyncStore
from meshkp.store.leveldb import FrozenView, LevelDBStore

log = logging.getLogger(__name__)

# Rows read per hop to a reader thread: ~2 KB each, so ~1 MB per hop.
PAGE_ROWS = 512
# Seconds one write to the client may wait for it to read. The snapshot stays open while the
# copy runs, and LevelDB keeps every table it needs on disk meanwhile: a client that stops
# reading must not pin them (and grow the disk) for ever.
WRITE_TIMEOUT_S = 60.0
BACKUP_CONTENT_TYPE = "application/x-meshkp-backup"


class _SnapshotMerkle:
    """crdt.merkle.MerkleStorage over a frozen view: the tree exactly as the snapshot holds it."""

    def __init__(self, view: FrozenView) -> None:
        self._view = view

    def get(self, key: bytes) -> bytes | None:
        return self._view.get(layout.extra_key(MERKLE_PREFIX + key))


def _counter(view: FrozenView, name: str) -> int:
    raw = view.get(layout.counter_key(name))
    return 0 if raw is None else layout.decode_counter(raw)


def _sender(response: web.StreamResponse) -> Callable[[bytes], Awaitable[None]]:
    async def send(data: bytes) -> None:
        async with asyncio.timeout(WRITE_TIMEOUT_S):
            await response.write(data)
    return send


def policy_summary(state: PolicyState) -> dict[str, Any]:
    """The applied policy as a backup header keeps it (to re-apply it after a restore)."""
    return {"version": state.version, "limits": dataclasses.asdict(state.limits),
            "blacklist": {fp.hex(): entry.reason for fp, entry in sorted(state.blacklist.items())}}


class BackupHandler:
    """The /cluster/backup route of one node."""

    def __init__(self, node_id: str, store: AsyncStore, auth: AdminAuth,
                 policy: Callable[[], PolicyState], merkle: MerkleIndex,
                 bootstrapping: Callable[[], object | None]) -> None:
        self.node_id = node_id
        self.store = store
        self.auth = auth
        self.policy = policy
        self.merkle = merkle
        self.bootstrapping = bootstrapping

    def register(self, app: web.Application) -> None:
        app.router.add_get("/cluster/backup", self.backup)

    async def backup(self, request: web.Request) -> web.StreamResponse:
        actor = require_admin(request, self.auth)
        if self.bootstrapping() is not None:
            raise web.HTTPServiceUnavailable(
                text="this node is still copying a peer's store (bootstrapping): its store is not "
                     "a whole copy yet; back up another node, or retry once it has finished\n")
        raw = self.store.store
        if not isinstance(raw, LevelDBStore):
            raise web.HTTPNotImplemented(text="backup needs a LevelDB store\n")
        state = self.policy()
        view = await self.store.read(lambda _: raw.frozen())
        try:
            header = await self.store.read(lambda _: self._header(view, state))
            writer = BackupWriter(header)
            response = web.StreamResponse(headers={
                "Content-Type": BACKUP_CONTENT_TYPE,
                "X-Meshkp-Merkle-Root": header.merkle_root,
                "X-Meshkp-Policy-Version": str(header.policy_version),
                "X-Meshkp-Records": str(header.records),
                "Content-Disposition": f'attachment; filename="meshkp-{self.node_id}.backup"',
            })
            await response.prepare(request)
            send = _sender(response)
            started = time.monotonic()
            log.info("event=backup_started node_id=%s actor=%s records=%d root=%s policy_version=%d",
                     self.node_id, actor, header.records, header.merkle_root[:16],
                     header.policy_version)
            try:
                await self._stream(view, writer, send)
                await response.write_eof()
            except (TimeoutError, ConnectionError) as exc:
                # The client stopped reading or went away: drop the connection (its file has
                # no trailer, so `meshkp backup` and `meshkp restore` refuse it).
                log.warning("event=backup_aborted node_id=%s rows=%d reason=%r", self.node_id,
                            writer.rows, exc)
                if request.transport is not None:
                    request.transport.close()
                return response
        finally:
            view.close()
        log.info("event=backup_sent node_id=%s rows=%d seconds=%.2f", self.node_id, writer.rows,
                 time.monotonic() - started)
        return response

    async def _stream(self, view: FrozenView, writer: BackupWriter,
                      send: Callable[[bytes], Awaitable[None]]) -> None:
        await send(writer.start())
        rows = view.rows()

        def next_frames(_: object) -> tuple[bytes, bool]:
            # Reading, framing and hashing a page all run on a reader thread: only the
            # socket writes are the event loop's.
            page = list(islice(rows, PAGE_ROWS))
            return writer.add(page), len(page) < PAGE_ROWS

        while True:
            data, last = await self.store.read(next_frames)
            if data:
                await send(data)
            if last:
                break
        await send(writer.finish())

    def _header(self, view: FrozenView, state: PolicyState) -> BackupHeader:
        root = MerkleTree(_SnapshotMerkle(view), self.merkle.config).root().hex()
        records = _counter(view, KEYS_COUNTER) + _counter(view, TOMBSTONES_COUNTER)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return BackupHeader(node=self.node_id, created=created, policy_version=state.version,
                            merkle_root=root, records=records, policy=policy_summary(state))
