"""The store gauges of a Node (LevelDB size, pending conflicts), refreshed by a task.

Entered into the Node's AsyncExitStack after replication: the first refresh runs before the
node serves, so the gauges have a value on the first scrape; then one every REFRESH_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from prometheus_client import CollectorRegistry

from meshkp.http.store_metrics import MAX_CONFLICTS_COUNTED, REFRESH_S, StoreGauges
from meshkp.replication.deletes import conflict_fingerprints
from meshkp.store.executor import AsyncStore

log = logging.getLogger(__name__)


async def _refresh(gauges: StoreGauges) -> None:
    while True:
        await asyncio.sleep(REFRESH_S)
        try:
            await gauges.refresh()
        except Exception:  # a bug or a disk error: logged, the old values stay, the loop goes on
            log.exception("event=store_gauges_failed")


@contextlib.asynccontextmanager
async def run_store_gauges(store_dir: Path, store: AsyncStore,
                           registry: CollectorRegistry) -> AsyncIterator[StoreGauges]:
    """meshkp_store_bytes and meshkp_conflicts_pending on `registry`, kept fresh."""

    async def count_conflicts() -> int:
        return await store.read(lambda s: len(conflict_fingerprints(s, MAX_CONFLICTS_COUNTED)))

    gauges = StoreGauges(store_dir, count_conflicts)
    await gauges.refresh()
    registry.register(gauges)
    task = asyncio.get_running_loop().create_task(_refresh(gauges), name="store-gauges")
    try:
        yield gauges
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        registry.unregister(gauges)
