"""Run keytext parsing (framing, normalisation, self-signature checks) off the event loop.

Uploads are parsed in a thread by default: for one key (gpg --send-keys) a process costs
more in pickling and IPC than checking a few signatures, and measurements up to 3 MiB showed
no gain either (see NodeConfig.process_parse_bytes). With `process_threshold` > 0, uploads at
least that big go to a process pool instead, to use an idle core.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from meshkp.limits import Limits
from meshkp.openpgp.keytext import KeytextItem, parse_keytext

log = logging.getLogger(__name__)


class KeyParser:
    """parse(data) -> the items of meshkp.openpgp.keytext; owns its process pool."""

    def __init__(self, limits: Limits, process_threshold: int, workers: int = 0) -> None:
        self.limits = limits
        self.process_threshold = process_threshold
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    async def parse(self, data: bytes) -> list[KeytextItem]:
        """Every key of `data`; raises OpenPGPError (or LimitExceeded) if it cannot be framed."""
        loop = asyncio.get_running_loop()
        if self.process_threshold <= 0 or len(data) < self.process_threshold:
            return await loop.run_in_executor(None, parse_keytext, data, self.limits)
        pool = self._process_pool()
        try:
            return await loop.run_in_executor(pool, parse_keytext, data, self.limits)
        except BrokenProcessPool:
            # A worker died (OOM killer, signal). Fall back to a thread for this upload and
            # start a fresh pool next time rather than failing every later big upload.
            log.warning("event=parse_pool_broken action=restart")
            self._pool = None
            return await loop.run_in_executor(None, parse_keytext, data, self.limits)

    def _process_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # forkserver: never fork the serving process itself, whose threads (LevelDB, the
            # store executor) may hold locks at fork time.
            context = multiprocessing.get_context("forkserver")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
