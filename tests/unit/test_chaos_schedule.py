"""Random nemesis schedules replay from their seed (chaos/schedule.py)."""

from __future__ import annotations

from dataclasses import asdict

from chaos.schedule import schedule


def test_one_seed_gives_one_schedule_and_another_seed_another() -> None:
    def shape(seed: int) -> list[tuple[str, str]]:
        return [(type(x).__name__, str(asdict(x))) for x in schedule(seed, 5, 12)]

    assert shape(7) == shape(7)
    assert shape(7) != shape(8)
    assert len(schedule(7, 12, 30)) == 30
