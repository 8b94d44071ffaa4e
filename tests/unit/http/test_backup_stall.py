"""GET /cluster/backup drops a client that stops reading (meshkp/http/backup.py WRITE_TIMEOUT_S):
the snapshot it holds keeps LevelDB's old tables on disk, so it must not stay open for ever."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from pathlib import Path

import pytest
from aiohttp import web

from meshkp.control.policy.state import PolicyState
from meshkp.http import backup
from meshkp.http.auth import AdminAuth
from meshkp.keys.merkle_index import MerkleIndex
from meshkp.store import layout
from meshkp.store.executor import AsyncStore
from meshkp.store.leveldb import LevelDBStore

TOKEN = "t" * 32


async def test_a_client_that_stops_reading_is_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(backup, "WRITE_TIMEOUT_S", 0.3)
    def fill() -> LevelDBStore:
        store = LevelDBStore(tmp_path / "keys")
        # 16 MB of rows: far more than the socket buffers between the two ends hold.
        store.write_raw([(layout.extra_key(b"zz%04d" % i), os.urandom(64 * 1024))
                         for i in range(256)], sync=True)
        return store

    raw = await asyncio.to_thread(fill)
    store = AsyncStore(raw)
    app = web.Application()
    backup.BackupHandler("n0", store, AdminAuth(TOKEN), PolicyState, MerkleIndex(),
                         lambda: None).register(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        request = f"GET /cluster/backup HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        await asyncio.get_running_loop().sock_sendall(sock, request.encode())
        with caplog.at_level(logging.WARNING, logger=backup.log.name):
            async with asyncio.timeout(20):
                while "event=backup_aborted" not in caplog.text:
                    await asyncio.sleep(0.05)  # never reading: the node's writes stall
    finally:
        sock.close()
        await runner.cleanup()
        await store.close()
    assert "event=backup_sent" not in caplog.text
