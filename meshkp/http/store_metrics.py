"""Gauges of the store that cost I/O to read, refreshed off the event loop and cached.

    meshkp_store_bytes          bytes of the LevelDB directory on disk (files summed)
    meshkp_conflicts_pending    records in conflict waiting for a resolution (GET /cluster/conflicts)

`StoreGauges.refresh()` walks the directory on a thread and counts the conflict markers on a
store reader thread; a scrape only reads the last values, so /metrics never waits on the disk.
The node refreshes them every REFRESH_S (meshkp/node/metrics_parts.py): a value is at most that
old, which is far below the alerts' `for:` durations.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Seconds between two refreshes. Each walks ~100 LevelDB files and the conflict markers.
REFRESH_S = 15.0
# Conflicts counted at most (the conflict queue's own bound is far lower in practice; past
# this the gauge says "at least this many").
MAX_CONFLICTS_COUNTED = 100_000


def directory_bytes(path: Path) -> int:
    """Bytes of the regular files under `path` (0 if it does not exist); blocking."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name), follow_symlinks=False).st_size
            except OSError:  # compacted away while we walked
                continue
    return total


class StoreGauges(Collector):
    """The cached store gauges; `refresh()` is awaited by the node's refresher task."""

    def __init__(self, store_dir: Path, count_conflicts: Callable[[], Awaitable[int]]) -> None:
        self.store_dir = store_dir
        self.count_conflicts = count_conflicts
        self.store_bytes: int | None = None
        self.conflicts: int | None = None

    async def refresh(self) -> None:
        loop = asyncio.get_running_loop()
        self.store_bytes = await loop.run_in_executor(None, directory_bytes, self.store_dir)
        self.conflicts = await self.count_conflicts()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        size = GaugeMetricFamily("meshkp_store_bytes", "Bytes of the LevelDB directory on disk")
        if self.store_bytes is not None:
            size.add_metric([], self.store_bytes)
        yield size
        conflicts = GaugeMetricFamily("meshkp_conflicts_pending",
                                      "Records in conflict waiting for a resolution")
        if self.conflicts is not None:
            conflicts.add_metric([], self.conflicts)
        yield conflicts
