"""An acknowledged write survives kill -9: records, index terms and counters stay consistent.

A child process (this module run as `python -m tests.integration.test_store_durability child`)
writes and rewrites keys with sync=True and prints each acknowledged (fingerprint, version)
only after the write returned. The test kills it with SIGKILL mid-stream, reopens the store
and checks every acknowledged version (or a later one) is there, with exactly its index terms,
and that the "keys" counter equals the number of records.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meshkp.store.executor import AsyncStore
from meshkp.store.leveldb import LevelDBStore
from meshkp.store.protocol import IndexKind, IndexTerm, RecordWrite, Store

REPO = Path(__file__).resolve().parents[2]
KEYS = 64  # rewritten in rounds, so the stream mixes new keys and index moves
WRITERS = 8  # concurrent writer tasks of the child in "async" mode: exercises group commit
ACKS_BEFORE_KILL = 300
CHILD_WRITE_LIMIT = 200_000  # bounds the child even if the test never kills it
CHILD_TIME_LIMIT_S = 60.0


def fingerprint(n: int) -> bytes:
    return hashlib.sha1(b"durability-%d" % n).digest()


def terms_for(n: int, version: int) -> frozenset[IndexTerm]:
    """~10 index terms; several move with every version, so a lost move shows."""
    fpr = fingerprint(n)
    return frozenset({
        (IndexKind.FINGERPRINT, fpr),
        (IndexKind.KEY_ID64, fpr[-8:]),
        (IndexKind.KEY_ID32, fpr[-4:]),
        (IndexKind.EMAIL, b"user%d-v%d@example.org" % (n, version)),
        (IndexKind.KEYWORD, b"user%d-v%d" % (n, version)),
        (IndexKind.KEYWORD, b"example.org"),
        (IndexKind.KEYWORD, b"key%d" % n),
        (IndexKind.KEYWORD, b"group%d" % (n % 5)),
        (IndexKind.KEYWORD, b"round%d" % (version % 4)),
        (IndexKind.KEYWORD, b"v%d" % version),
    })


def record_for(n: int, version: int) -> bytes:
    return (b"%d:%d:" % (n, version)).ljust(2000, b".")


def write_for(n: int, version: int) -> RecordWrite:
    return RecordWrite(
        fingerprint=fingerprint(n),
        record=record_for(n, version),
        old_terms=terms_for(n, version - 1) if version else frozenset(),
        new_terms=terms_for(n, version),
        counters={"keys": 1} if version == 0 else {},
        extra=[(b"test/last/%d" % n, b"%d" % version)],
    )


def _ack(n: int, version: int) -> None:
    print(f"ack {n} {version}", flush=True)


def _child_direct(store: Store) -> None:
    deadline = time.monotonic() + CHILD_TIME_LIMIT_S
    for i in range(CHILD_WRITE_LIMIT):
        if time.monotonic() > deadline:
            return
        n, version = i % KEYS, i // KEYS
        store.write([write_for(n, version)], sync=True)
        _ack(n, version)


async def _child_async(store: Store) -> None:
    astore = AsyncStore(store)
    deadline = time.monotonic() + CHILD_TIME_LIMIT_S

    async def writer(first: int) -> None:
        for i in range(first, CHILD_WRITE_LIMIT, WRITERS):
            if time.monotonic() > deadline:
                return
            n, version = i % KEYS, i // KEYS  # KEYS % WRITERS == 0: one task owns each key
            await astore.write([write_for(n, version)], sync=True)
            _ack(n, version)

    await asyncio.gather(*(writer(first) for first in range(WRITERS)))
    await astore.close()


def _run_child(path: str, mode: str) -> None:
    store = LevelDBStore(path)
    print("ready", flush=True)
    if mode == "direct":
        _child_direct(store)
    else:
        asyncio.run(_child_async(store))


def _record_ack(acked: dict[int, int], line: bytes) -> None:
    _, n, version = line.split()
    acked[int(n)] = max(acked.get(int(n), -1), int(version))


def _parse_version(record: bytes) -> tuple[int, int]:
    n, version, _ = record.split(b":", 2)
    return int(n), int(version)


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["direct", "async"])
def test_acknowledged_writes_survive_kill_9(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "db"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.test_store_durability", "child", str(path), mode],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    acked: dict[int, int] = {}
    lines = 0
    deadline = time.monotonic() + 30
    try:
        assert child.stdout is not None
        while lines < ACKS_BEFORE_KILL and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            if line.startswith(b"ack "):
                lines += 1
                _record_ack(acked, line)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        out, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, err.decode(errors="replace")
    assert lines >= ACKS_BEFORE_KILL, f"child acked only {lines} writes: {err.decode()[-2000:]}"
    for line in out.splitlines():  # acks printed before the kill but not yet read
        if line.startswith(b"ack ") and len(line.split()) == 3:
            _record_ack(acked, line)

    store = LevelDBStore(path)
    try:
        stored = {n: version for n, version in (_parse_version(r) for _, r in store.iter_records())}
        for n, version in acked.items():
            assert n in stored, f"acknowledged key {n} v{version} lost"
            assert stored[n] >= version, f"key {n}: acknowledged v{version}, found v{stored[n]}"
        assert store.counter("keys") == len(stored)
        for n, version in stored.items():
            fpr = fingerprint(n)
            for kind, term in terms_for(n, version):
                assert fpr in store.lookup(kind, term, 1000), f"key {n} v{version} lost {term!r}"
            for old in range(max(0, version - 3), version):
                for kind, term in terms_for(n, old) - terms_for(n, version):
                    assert fpr not in store.lookup(kind, term, 1000), f"stale {term!r} of key {n}"
            assert store.get_extra(b"test/last/%d" % n) == b"%d" % version
    finally:
        store.close()


if __name__ == "__main__" and sys.argv[1:2] == ["child"]:
    _run_child(sys.argv[2], sys.argv[3])
