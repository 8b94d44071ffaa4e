"""Generate the test keys once, outside any event loop (the blocking guard times the loop)."""

from __future__ import annotations

import pytest

from .helpers import certificate


@pytest.fixture(scope="session", autouse=True)
def _warm_keys() -> None:
    for index in range(64):
        certificate(index)
