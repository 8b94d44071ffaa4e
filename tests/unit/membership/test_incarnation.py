"""The incarnation file: each start is one above the last, and a bad file starts over at 1."""

from pathlib import Path

from meshkp.membership.incarnation import INCARNATION_FILE, next_incarnation, save_incarnation
from meshkp.swim.fields import MAX_COUNTER


def test_without_a_data_dir_every_start_is_incarnation_1() -> None:
    assert next_incarnation(None) == next_incarnation(None) == 1


def test_each_start_is_one_above_the_last_saved(tmp_path: Path) -> None:
    assert [next_incarnation(tmp_path) for _ in range(3)] == [1, 2, 3]
    save_incarnation(tmp_path, 41)  # what stop() saves: the incarnation reached by refutations
    assert next_incarnation(tmp_path) == 42
    assert (tmp_path / INCARNATION_FILE).read_text() == "42\n"
    assert not (tmp_path / (INCARNATION_FILE + ".tmp")).exists()


def test_an_unreadable_file_starts_over(tmp_path: Path) -> None:
    (tmp_path / INCARNATION_FILE).write_text("not a number\n")
    assert next_incarnation(tmp_path) == 1


def test_a_saved_value_at_the_wire_maximum_starts_over(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    # Red-team finding 1: a forged accusation had made the node refute (and save) 2**63.
    for poisoned in (MAX_COUNTER, MAX_COUNTER + 1):
        (tmp_path / INCARNATION_FILE).write_text(f"{poisoned}\n")
        with caplog.at_level("WARNING"):
            assert next_incarnation(tmp_path) == 1
        assert "event=incarnation_reset" in caplog.text
    save_incarnation(tmp_path, MAX_COUNTER - 1)
    assert next_incarnation(tmp_path) == MAX_COUNTER
