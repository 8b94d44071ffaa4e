"""The records of the latest commits, so that a push reads no record the commit just wrote.

A write accepted here is pushed to every live peer, and each peer's sender used to read the
record back from the store: on a 10-node mesh that is nine reader-thread hops (and nine loop
wake-ups) per write for the same bytes the commit had in hand, and the last sender started its
push several milliseconds after the first (measured: docs/benchmarks.md, "Replicated-write
latency"). The pusher keeps the encoded record of each key it queued from a commit here, and a
sender takes it from here; the store is read only for what is not here.

What a sender gets is never older than the state it must push: every commit updates or forgets
the keys it wrote (a commit that is not pushed, an anti-entropy pull say, forgets them, so the
store is read for them), a bulk copy forgets everything, and observers see commits in the order
they were written. So a key read here is in the state of the newest commit observed, which
includes every write an x-consistency wait was registered after (push.py `Pusher.watch`).
Bounded in entries and bytes (oldest forgotten first): a forgotten key is read from the store.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from meshkp.keys.commit import Commit

# Keys remembered: a few push batches' worth (push_batch_records is 256), enough for the keys
# queued and not yet sent in the common case of a short queue.
MAX_ENTRIES = 2048
# Bytes of records remembered: a burst of large keys is read from the store instead of
# pinning memory (a key may be up to 4 MiB).
MAX_BYTES = 16 * 1024 * 1024


class RecentRecords:
    """fingerprint -> encoded record of the newest observed commit of it (bounded, LRU)."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._records: OrderedDict[bytes, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def observe(self, commit: Commit, pushed: bool) -> None:
        """Remember the records of a commit whose keys are pushed; forget those of any other
        (their newest state is then only in the store). A bulk copy forgets everything."""
        if commit.bulk:
            self._records.clear()
            self.bytes = 0
            return
        for write in commit.writes:
            self._forget(write.fingerprint)
            if pushed and write.record is not None:
                self._records[write.fingerprint] = write.record
                self.bytes += len(write.record)
        while self._records and (len(self._records) > self.max_entries
                                 or self.bytes > self.max_bytes):
            _, record = self._records.popitem(last=False)
            self.bytes -= len(record)

    def split(self, fingerprints: Sequence[bytes]) -> tuple[dict[bytes, bytes], list[bytes]]:
        """(the records held here by fingerprint, the fingerprints to read from the store)."""
        found: dict[bytes, bytes] = {}
        missing: list[bytes] = []
        for fingerprint in fingerprints:
            record = self._records.get(fingerprint)
            if record is None:
                missing.append(fingerprint)
            else:
                found[fingerprint] = record
        self.hits += len(found)
        self.misses += len(missing)
        return found, missing

    def _forget(self, fingerprint: bytes) -> None:
        record = self._records.pop(fingerprint, None)
        if record is not None:
            self.bytes -= len(record)
