"""Offline commands find the store where the node keeps it, and explain a held lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshkp.bulk import datadir
from meshkp.errors import StoreInUse
from meshkp.node.config import NodeConfig
from meshkp.node.node import Node


async def test_store_directory_is_the_nodes(tmp_path: Path) -> None:
    node = Node(NodeConfig(data_dir=tmp_path, http_port=0, access_log=False))
    await node.start()
    try:  # the node holds the lock of the store the offline commands open
        with pytest.raises(StoreInUse):
            datadir.open_store(tmp_path, "load keys", "use POST /pks/add")
    finally:
        await node.stop()
    assert datadir.store_path(tmp_path).is_dir()


def test_a_held_lock_is_explained(tmp_path: Path) -> None:
    first = datadir.open_store(tmp_path, "load keys", "use POST /pks/add")
    try:
        with pytest.raises(StoreInUse, match="in use by a running meshkp node.*use POST /pks/add"):
            datadir.open_store(tmp_path, "load keys", "use POST /pks/add")
    finally:
        first.close()
    datadir.open_store(tmp_path, "load keys", "use POST /pks/add").close()
