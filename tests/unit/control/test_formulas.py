"""Quorum formulas, the log's matching rules and ControlConfig relations, as tables."""

from __future__ import annotations

import dataclasses

import pytest

from meshkp.control.config import ControlConfig
from meshkp.control.raft.log import RaftLog
from meshkp.control.raft.quorum import has_majority, majority, quorum_value
from meshkp.control.raft.types import Entry, EntryKind
from meshkp.errors import ConfigError


@pytest.mark.parametrize(("voters", "needed"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (9, 5)])
def test_majority(voters: int, needed: int) -> None:
    assert majority(voters) == needed


@pytest.mark.parametrize(("values", "quorum"), [
    ([7], 7), ([7, 3], 3), ([7, 3, 5], 5), ([1, 9, 9, 2], 2), ([4, 4, 1, 1, 9], 4),
    ([float("-inf"), 2.0, 3.0], 2.0), ([float("-inf"), float("-inf"), 3.0], float("-inf")),
])
def test_quorum_value_is_what_a_majority_reaches(values: list[float], quorum: float) -> None:
    assert quorum_value(values) == quorum


def test_has_majority_counts_only_voters() -> None:
    voters = frozenset({"a", "b", "c"})
    assert has_majority(["a", "b"], voters)
    assert not has_majority(["a", "x", "y"], voters)


def _log(terms: list[int], base: int = 0, base_term: int = 0) -> RaftLog:
    return RaftLog(base, base_term, [Entry(base + 1 + i, t, EntryKind.NOOP) for i, t in enumerate(terms)])


def test_term_at_knows_the_base_and_nothing_before_it() -> None:
    log = _log([3, 3, 4], base=10, base_term=2)
    assert [log.term_at(i) for i in (9, 10, 11, 13, 14)] == [None, 2, 3, 4, None]
    assert (log.last_index, log.last_term) == (13, 4)


@pytest.mark.parametrize(("terms", "index", "term", "found"), [
    ([1, 1, 2, 2, 3], 5, 2, 4),   # skips the whole term 3
    ([1, 1, 2, 2, 3], 5, 3, 5),
    ([1, 1, 2, 2, 3], 5, 1, 2),
    ([1, 1, 2, 2, 3], 5, 0, 0),   # nothing matches: the base
    ([1, 1, 2, 2, 3], 9, 2, 4),   # beyond the end: from the last entry
])
def test_find_conflict_by_term(terms: list[int], index: int, term: int, found: int) -> None:
    assert _log(terms).find_conflict_by_term(index, term) == found


def test_find_conflict_and_replace() -> None:
    log = _log([1, 1, 2, 2])
    same = [Entry(2, 1, EntryKind.NOOP), Entry(3, 2, EntryKind.NOOP)]
    assert log.find_conflict(1, same) is None
    other = [Entry(3, 3, EntryKind.NOOP), Entry(4, 3, EntryKind.NOOP), Entry(5, 3, EntryKind.NOOP)]
    assert log.find_conflict(2, other) == 3
    log.replace_from(3, other)
    assert [log.term_at(i) for i in range(1, 6)] == [1, 1, 3, 3, 3]


def test_up_to_date_compares_last_term_then_length() -> None:
    log = _log([1, 2, 2])
    assert log.is_up_to_date(3, 2) and log.is_up_to_date(2, 3) and log.is_up_to_date(4, 2)
    assert not log.is_up_to_date(2, 2) and not log.is_up_to_date(9, 1)


def test_compaction_keeps_the_base_term() -> None:
    log = _log([1, 2, 2, 3])
    log.compact(3, 2)
    assert (log.base_index, log.term_at(3), log.term_at(2)) == (3, 2, None)
    assert [e.index for e in log.entries(4)] == [4]


def test_batches_respect_both_bounds() -> None:
    log = RaftLog(0, 0, [Entry(i, 1, EntryKind.COMMAND, bytes(100)) for i in range(1, 11)])
    assert len(log.batch(1, 3, 10_000)) == 3
    assert len(log.batch(1, 100, 300)) == 2
    assert len(log.batch(1, 100, 10)) == 1  # always at least one entry


def test_profiles_validate() -> None:
    ControlConfig.lan().validate()
    ControlConfig.local().validate()


@pytest.mark.parametrize(("changes", "message"), [
    ({"heartbeat_interval": 0}, "heartbeat_interval"),
    ({"election_timeout_max": 1.0}, "election_timeout_max must be above"),
    ({"max_clock_drift": -0.1}, "max_clock_drift"),
    ({"max_clock_drift": 1.0}, "max_clock_drift must be below"),
    ({"lease_duration": 0.9}, "lease_duration"),
    ({"heartbeat_interval": 0.5}, "heartbeat_interval must be at most half"),
    ({"max_voters": 0}, "max_voters"),
    ({"max_voters": 11}, "max_voters must be at most"),
    ({"max_entry_bytes": 2 * 1024 * 1024}, "max_entry_bytes must not exceed"),
    ({"max_append_bytes": 64 * 1024 * 1024}, "max_append_bytes must be at most"),
    ({"snapshot_trailing_entries": -1}, "snapshot_trailing_entries"),
    ({"max_append_entries": True}, "max_append_entries"),
])
def test_bad_values_and_relations_raise_config_error(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(ControlConfig(), **changes).validate()  # type: ignore[arg-type]
