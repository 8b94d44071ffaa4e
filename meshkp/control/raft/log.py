"""RaftLog: the in-memory log after the last compaction point, with Raft's log-matching rules.

The log is short (a snapshot every `snapshot_threshold` entries), so the core keeps all of it in
memory; the driver persists what each Ready says and rebuilds it from storage on restart.
`base_index`/`base_term` name the entry just before the first one held (the compaction point);
term_at(base_index) is known, earlier terms are not.
"""

from __future__ import annotations

from collections.abc import Sequence

from meshkp.control.raft.types import Entry

# Bytes an entry costs on the wire beyond its data (index, term, kind, msgpack headers).
ENTRY_OVERHEAD = 24


class RaftLog:
    """Entries base_index+1 .. last_index, contiguous."""

    def __init__(self, base_index: int = 0, base_term: int = 0, entries: Sequence[Entry] = ()) -> None:
        self.base_index = base_index
        self.base_term = base_term
        self._entries: list[Entry] = []
        for offset, entry in enumerate(entries):
            if entry.index != base_index + 1 + offset:
                raise ValueError(f"log entries must follow {base_index} without gaps; entry "
                                 f"#{offset} has index {entry.index}")
            self._entries.append(entry)

    @property
    def last_index(self) -> int:
        return self.base_index + len(self._entries)

    @property
    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else self.base_term

    def term_at(self, index: int) -> int | None:
        """The term of the entry at `index`; None if compacted away or beyond the end."""
        if index == self.base_index:
            return self.base_term
        if self.base_index < index <= self.last_index:
            return self._entries[index - self.base_index - 1].term
        return None

    def entry(self, index: int) -> Entry:
        return self._entries[index - self.base_index - 1]

    def entries(self, first: int, last: int | None = None) -> list[Entry]:
        """Entries first..last (inclusive; last defaults to the end); first > base_index."""
        if first <= self.base_index:
            raise ValueError(f"entry {first} is compacted (log starts after {self.base_index})")
        stop = self.last_index if last is None else min(last, self.last_index)
        return self._entries[first - self.base_index - 1: stop - self.base_index]

    def batch(self, first: int, max_entries: int, max_bytes: int) -> list[Entry]:
        """Entries from `first` within both bounds; at least one if any (an entry fits max_bytes)."""
        out: list[Entry] = []
        size = 0
        for entry in self._entries[first - self.base_index - 1:]:
            cost = len(entry.data) + ENTRY_OVERHEAD
            if out and (len(out) >= max_entries or size + cost > max_bytes):
                break
            out.append(entry)
            size += cost
        return out

    def append(self, entry: Entry) -> None:
        """The leader's own new entry, right after the last one."""
        if entry.index != self.last_index + 1:
            raise ValueError(f"append at {entry.index} but the log ends at {self.last_index}")
        self._entries.append(entry)

    def find_conflict(self, prev_index: int, entries: Sequence[Entry]) -> int | None:
        """The first index of `entries` (which follow prev_index) whose term differs from ours.

        Entries at or below base_index are skipped (covered by a snapshot, so committed and
        equal). None when every entry is held already (Raft Fig. 2, receiver step 3).
        """
        for offset, entry in enumerate(entries):
            index = prev_index + 1 + offset
            if index > self.base_index and self.term_at(index) != entry.term:
                return index
        return None

    def replace_from(self, index: int, entries: Sequence[Entry]) -> None:
        """Cut the log before `index` and append `entries` (which start at `index`)."""
        if not self.base_index < index <= self.last_index + 1:
            raise ValueError(f"cannot write at {index}: the log holds "
                             f"{self.base_index + 1}..{self.last_index}")
        del self._entries[index - self.base_index - 1:]
        for offset, entry in enumerate(entries):
            if entry.index != index + offset:
                raise ValueError(f"entry #{offset} has index {entry.index}, expected {index + offset}")
        self._entries.extend(entries)

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The last index <= `index` whose term is <= `term` (etcd's findConflictByTerm).

        After a rejected AppendEntries the leader skips a whole term of mismatching entries per
        round trip instead of one entry; the follower uses it to pick its hint.
        """
        index = min(index, self.last_index)
        while index > self.base_index:
            held = self.term_at(index)
            if held is not None and held <= term:
                return index
            index -= 1
        return self.base_index

    def compact(self, through: int, through_term: int) -> None:
        """Forget entries up to `through` (covered by a snapshot); they stay known by term only."""
        if through <= self.base_index:
            return
        if through > self.last_index:
            self._entries.clear()
        else:
            del self._entries[: through - self.base_index]
        self.base_index, self.base_term = through, through_term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Whether a log ending at (last_index, last_term) is at least as up to date (Raft §5.4.1)."""
        return (last_term, last_index) >= (self.last_term, self.last_index)
