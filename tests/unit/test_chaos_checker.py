"""The set-full checker of chaos runs (chaos/checker.py) on hand-made histories: each anomaly
it must report, and none on a clean history."""

from __future__ import annotations

from chaos.checker import ABSENT, PRESENT, WRONG, check, percentile, summary_table
from chaos.history import FAIL, INFO, OK, History


def add(h: History, key: str, node: int, result: str = OK, level: str = "one", process: str = "w0") -> None:
    h.complete(h.invoke(process, node, "add", key, level), result, 200 if result == OK else None)


def read(h: History, key: str, node: int, value: str) -> None:
    h.complete(h.invoke("r", node, "read", key), OK, 200 if value == PRESENT else 404, value)


def test_a_clean_history_is_valid() -> None:
    h = History()
    add(h, "A", 0)
    add(h, "B", 1, level="all")
    h.complete(h.invoke("w0", 0, "delete", "B"), OK, 200)
    add(h, "C", 1, result=INFO)  # no answer: neither lost nor unexpected whatever happens
    final = {0: {"A": PRESENT, "B": ABSENT, "C": ABSENT}, 1: {"A": PRESENT, "B": ABSENT, "C": PRESENT}}
    result = check(h, final, visible_at={"A": h.now() + 0.1})
    assert result.valid, result.problems()
    assert result.acked == 2 and result.deletes_acked == 1 and result.uncertain == 1
    assert result.visible_samples == 1
    assert "VALID" in summary_table("t", result)


def test_lost_never_read_unexpected_and_wrong_bodies_are_reported() -> None:
    h = History()
    add(h, "A", 0)
    add(h, "B", 0)
    add(h, "X", 0, result=FAIL)
    read(h, "Z", 1, PRESENT)  # nobody ever sent Z
    read(h, "A", 1, WRONG)  # a 200 whose body is another key
    final = {0: {"A": PRESENT, "B": ABSENT}, 1: {"A": ABSENT}}
    result = check(h, final, {})
    assert result.lost == {"A": [1], "B": [0]}
    assert result.never_read == ["B"]
    assert len(result.unexpected) == 2
    assert not result.valid


def test_a_delete_served_again_is_resurrected_on_the_final_read_and_on_its_own_node() -> None:
    h = History()
    add(h, "A", 0)
    add(h, "B", 0)
    h.complete(h.invoke("w0", 0, "delete", "A"), OK, 200)
    h.complete(h.invoke("w0", 1, "delete", "B"), OK, 200)
    read(h, "B", 1, PRESENT)  # after its delete, on the node that deleted it
    read(h, "B", 0, PRESENT)  # another node may not have the tombstone yet: allowed
    result = check(h, {0: {"A": PRESENT, "B": ABSENT}, 1: {"A": ABSENT, "B": ABSENT}}, {})
    assert result.resurrected == {"A": [0], "B": [1]}


def test_a_read_that_misses_an_all_write_is_stale_and_a_short_quorum_too() -> None:
    h = History()
    add(h, "A", 0, level="all")
    read(h, "A", 2, ABSENT)
    add(h, "Q", 0, level="quorum")
    h.complete(h.invoke("w0", 0, "quorum-check", "Q"), OK, 1, "short")
    result = check(h, {0: {"A": PRESENT, "Q": PRESENT}}, {})
    assert len(result.stale) == 2


def test_availability_is_counted_per_side_of_a_partition() -> None:
    h = History()
    h.event("partition", "start", [[0, 1, 2], [3, 4]])
    add(h, "A", 0)
    add(h, "B", 3, result=FAIL)
    add(h, "C", 4)
    h.event("partition", "stop")
    add(h, "D", 3)  # after the heal: not counted
    sides = {tuple(a.side): (a.ok, a.attempted) for a in check(h, {}, {}).availability}
    assert sides == {(0, 1, 2): (1, 1), (3, 4): (1, 2)}


def test_a_run_that_did_not_converge_is_invalid() -> None:
    result = check(History(), {}, {}, convergence=[{"after": "partition", "converged": False}])
    assert result.unconverged == ["partition"] and not result.valid


def test_percentiles_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0 and percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) is None


def test_a_delete_racing_the_quorum_check_is_not_a_stale_read() -> None:
    h = History()
    add(h, "Q", 0, level="quorum")
    check_op = h.invoke("w0", -1, "quorum-check", "Q")
    h.complete(h.invoke("w1", 4, "delete", "Q"), OK, 200)  # during the check
    h.complete(check_op, OK, 2, "short")
    assert check(h, {0: {"Q": ABSENT}}, {}).stale == []



class _AuditOnly:
    """A cluster of one node that answers GET /cluster/audit from a fixed trail (paged)."""

    n = 1

    def __init__(self, trail: list[dict[str, object]]) -> None:
        self.trail = trail

    def node_id(self, i: int) -> str:
        return f"n{i}"

    def get_json(self, i: int, path: str) -> dict[str, object]:
        query = dict(part.split("=") for part in path.split("?", 1)[1].split("&"))
        after, limit = int(query["after"]), int(query["limit"])
        page = [e for e in self.trail if int(str(e["seq"])) > after][:limit]
        return {"entries": page, "next_after": page[-1]["seq"] if page else after}


def _set_limits(seq: int, value: int) -> dict[str, object]:
    return {"seq": seq, "token": f"1.{seq}", "op": "set-limits", "detail": f"search_results={value}",
            "outcome": "applied"}


def test_a_full_audit_trail_excuses_only_the_changes_it_dropped() -> None:
    from chaos.control_checker import check_control
    from meshkp.control.policy.bounds import MAX_AUDIT

    h = History()
    for value in range(1, MAX_AUDIT + 501):  # one writer, one change after another
        h.complete(h.invoke("policy", 0, "policy", str(value)), OK, 200)
    # The node keeps the latest MAX_AUDIT entries: values 1..500 were dropped from its state.
    trail = [_set_limits(seq, seq) for seq in range(501, MAX_AUDIT + 501)]
    result = check_control(_AuditOnly(trail), h, [])  # type: ignore[arg-type]
    assert result.lost == [], result.lost[:3]  # it read the full trail as the whole history
    trail[700] = {**trail[700], "detail": "search_results=999999"}  # value 1201 never applied
    result = check_control(_AuditOnly(trail), h, [])  # type: ignore[arg-type]
    assert result.lost == ["1201 (acked by n0) missing on n0"]
