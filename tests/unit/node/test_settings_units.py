"""Durations and sizes as operators write them: the forms accepted, refused, and shown back."""

from __future__ import annotations

import pytest

from meshkp.node.settings.units import format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(("text", "seconds"), [
    ("1s", 1.0), ("50ms", 0.05), ("2m", 120.0), ("1m30s", 90.0), ("1.5s", 1.5), ("24h", 86400.0),
    ("250us", 0.00025), ("0", 0.0), (" 10s ", 10.0), ("1_000ms", 1.0),
])
def test_durations_read_as_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["1", "10", "1 s", "s", "-1s", "1sec", "1d", "", "1s2", "ms1"])
def test_durations_without_a_known_unit_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration with a unit"):
        parse_duration(text)


@pytest.mark.parametrize(("text", "size"), [
    ("4096", 4096), ("64MiB", 64 * 1024**2), ("64 MiB", 64 * 1024**2), ("1.5KiB", 1536),
    ("1GB", 10**9), ("100kB", 100_000), ("8mib", 8 * 1024**2), ("10B", 10), ("1_024", 1024),
])
def test_sizes_read_as_bytes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["64 MeB", "MiB", "-1MiB", "1.5", "0.1KiB", "ten"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize(("seconds", "text"), [
    (1.0, "1s"), (0.5, "500ms"), (86400.0, "24h"), (30.0, "30s"), (90.0, "90s"), (0.0, "0s"),
    (120.0, "2m"), (0.0001, "100us"),
])
def test_durations_shown_in_the_largest_exact_unit(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("size", "text"), [
    (64 * 1024**2, "64MiB"), (1400, "1400"), (2048, "2KiB"), (4 * 1024**3, "4GiB"), (0, "0"),
])
def test_sizes_shown_in_the_largest_binary_unit(size: int, text: str) -> None:
    assert format_size(size) == text
    assert parse_size(text) == size
