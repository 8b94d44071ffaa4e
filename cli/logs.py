"""Log setup shared by the commands: key=value lines on stderr, one per event."""

from __future__ import annotations

import functools
import logging
import sys
import time

LOG_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


def setup_logging(level: str) -> None:
    """Send the root logger's records to stderr as key=value lines at `level`."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr, force=True)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(LineFormatter(LOG_FORMAT))
    # LOG_FORMAT names no thread, process or source line: do not look them up for every record
    # (the logging HOWTO's "Optimization"). A node logs a line per upload on its event loop
    # (event=upload), and the lookups were a third of that line's cost (issue 14).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # type: ignore[attr-defined]


class LineFormatter(logging.Formatter):
    """logging.Formatter whose %(asctime)s computes the calendar part once per second."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return self.default_msec_format % (_calendar(int(record.created)), record.msecs)


@functools.lru_cache(maxsize=4)
def _calendar(second: int) -> str:
    return time.strftime(logging.Formatter.default_time_format, time.localtime(second))
