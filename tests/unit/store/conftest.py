"""Fixtures of the store tests: every contract test runs on MemoryStore and on a real LevelDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meshkp.store.leveldb import LevelDBStore
from meshkp.store.memory import MemoryStore
from meshkp.store.protocol import Store


@pytest.fixture(params=["memory", "leveldb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store of each kind; closed after the test."""
    opened: Store = MemoryStore() if request.param == "memory" else LevelDBStore(tmp_path / "db")
    yield opened
    opened.close()
