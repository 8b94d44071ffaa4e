"""The log line format of the commands: the per-second time stamp cache changes nothing."""

from __future__ import annotations

import logging

from cli.logs import LOG_FORMAT, LineFormatter


def test_line_formatter_writes_what_logging_formatter_writes() -> None:
    plain, cached = logging.Formatter(LOG_FORMAT), LineFormatter(LOG_FORMAT)
    for created in (1_764_806_400.0, 1_764_806_400.999, 1_764_806_401.0005, 1_764_892_799.5):
        record = logging.LogRecord("meshkp.http.hkp", logging.INFO, "", 0,
                                   "event=upload added=%d", (1,), None)
        record.created, record.msecs = created, int((created - int(created)) * 1000)
        assert cached.format(record) == plain.format(record)
        assert cached.format(record) == plain.format(record)  # the second time from the cache
    record.exc_info, record.exc_text = None, None
    assert cached.formatTime(record, "%H") == plain.formatTime(record, "%H")
