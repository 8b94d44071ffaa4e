"""The access log: one line per HTTP request, formatted and written off the event loop.

Logging each request through `logging` on the event loop (format the record, take the
handler's lock, write to stderr) cost ~40% of op=get throughput on 2 cores. Here a request only
appends a tuple of its facts to a bounded deque; a writer thread formats the lines and writes
them to a buffered file (or stderr), at least every `flush_interval_s` and on close, so a clean
stop loses nothing. When the writer cannot keep up and `max_pending` lines wait, new lines are
dropped and counted (`dropped`, exported as meshkp_access_log_dropped_total) rather than
slowing requests. `reopen()`, on SIGHUP, makes the writer reopen the file by name, so that
logrotate can move it away (its `postrotate` sends the signal).

Formats: `kv` (key=value, like every other log line of meshkp), `common` (NCSA Common Log
Format) and `combined` (Common plus referer and user agent). The query string is never logged:
it holds the e-mail addresses people search for.
"""

from __future__ import annotations

import collections
import logging
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from meshkp.errors import ConfigError
from meshkp.http.clientaddr import CLIENT_KEY
from meshkp.http.labels import OP_LABEL

log = logging.getLogger(__name__)

FORMATS = ("kv", "common", "combined")
# Characters of a logged path, user agent or referer: a client controls them.
_FIELD_CHARS = 200
# Lines formatted between two hand-overs of the GIL to the event loop (~0.3 ms of work).
_SLICE = 256

# (time, remote, method, path, op, status, bytes, seconds, referer, user agent)
Entry = tuple[float, str, str, str, str, int, int, float, str, str]


@dataclass(frozen=True, slots=True)
class AccessLogConfig:
    """Where and how the access log is written."""

    # One line per request. Off: nothing is queued or written.
    enabled: bool = True
    # File the lines are appended to; None = the process's stderr (a container's log).
    path: Path | None = None
    # kv | common | combined (see the module docstring).
    format: str = "kv"
    # Lines waiting for the writer thread. ~200 bytes each, so 64k is ~13 MB at most; at
    # 15,000 requests/s the writer drains them 5 times a second, far below the bound.
    max_pending: int = 65_536
    # Seconds between the writer's drains; a line reaches the file at most this late.
    flush_interval_s: float = 0.2

    def validate(self) -> AccessLogConfig:
        if self.format not in FORMATS:
            raise ConfigError(f"access log format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.max_pending < 1:
            raise ConfigError("access log max_pending must be >= 1")
        if not 0 < self.flush_interval_s <= 1.0:
            raise ConfigError("access log flush_interval_s must be in (0, 1] s (flushed each second)")
        return self


_ESCAPES = str.maketrans({"\n": "\\n", "\r": "\\r", '"': "%22", " ": "%20"})
# Cleaned client fields by their raw text: nearly every line has one of a few paths and user
# agents. Bounded: a client can send endless distinct ones, so it is emptied when full.
_CLEANED: dict[str, str] = {}
_CLEANED_MAX = 1024


def _clean(text: str) -> str:
    """A client-supplied field on one line, without the quote and space that delimit fields."""
    cleaned = _CLEANED.get(text)
    if cleaned is None:
        if len(_CLEANED) >= _CLEANED_MAX:
            _CLEANED.clear()
        cleaned = _CLEANED[text] = text[:_FIELD_CHARS].translate(_ESCAPES)
    return cleaned


class _Stamps:
    """The calendar part of a time stamp, computed once per second per pattern.

    The writer formats thousands of lines per second, mostly within the same second, and
    strftime is most of a line's cost. One writer thread uses it, so it needs no lock."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.second = -1
        self.text = ""

    def of(self, second: int) -> str:
        if second != self.second:
            self.text = time.strftime(self.pattern, time.localtime(second))
            self.second = second
        return self.text


_KV_STAMPS = _Stamps("%Y-%m-%d %H:%M:%S")
# Milliseconds of a kv time stamp: a table lookup instead of a "03d" format per line.
_MILLIS = tuple(f"{ms:03d}" for ms in range(1000))
_COMMON_STAMPS = _Stamps("%d/%b/%Y:%H:%M:%S %z")


# The part of a kv line between its time stamp and its duration, by the facts it shows: a
# busy node answers the same few (client, path, op, status, size) over and over, and building
# that text was most of a line's cost. Writer thread only; emptied when full.
_KV_MIDDLES: dict[tuple[str, str, str, str, int, int], str] = {}
_KV_MIDDLES_MAX = 4096
# Durations under 10 ms by hundredths of a millisecond: a table instead of a float format.
_KV_MS = tuple(f"{hundredths / 100:.2f}" for hundredths in range(1000))


def format_kv(entry: Entry) -> str:
    when, remote, method, path, op, status, size, seconds, _referer, _agent = entry
    facts = (remote, method, path, op, status, size)
    middle = _KV_MIDDLES.get(facts)
    if middle is None:
        if len(_KV_MIDDLES) >= _KV_MIDDLES_MAX:
            _KV_MIDDLES.clear()
        # `op` is the handler's metrics label (a fixed set of words), never client text.
        middle = _KV_MIDDLES[facts] = (
            f" level=INFO logger=meshkp.access event=http remote={remote} method={method} "
            f"path={_clean(path)} op={op} status={status} bytes={size} ms=")
    hundredths = round(seconds * 100_000.0)
    ms = _KV_MS[hundredths] if 0 <= hundredths < 1000 else f"{seconds * 1000.0:.2f}"
    second = int(when)
    return f"{_KV_STAMPS.of(second)},{_MILLIS[int((when - second) * 1000)]}{middle}{ms}\n"


def format_common(entry: Entry) -> str:
    when, remote, method, path, _op, status, size, _seconds, _referer, _agent = entry
    stamp = _COMMON_STAMPS.of(int(when))
    return f'{remote} - - [{stamp}] "{method} {_clean(path)} HTTP/1.1" {status} {size}\n'


def format_combined(entry: Entry) -> str:
    referer, agent = entry[8], entry[9]
    return format_common(entry)[:-1] + f' "{_clean(referer) or "-"}" "{_clean(agent) or "-"}"\n'


FORMATTERS = {"kv": format_kv, "common": format_common, "combined": format_combined}


class AccessLogSink:
    """The bounded queue and the writer thread; constructing it does no I/O."""

    def __init__(self, config: AccessLogConfig) -> None:
        self.config = config.validate()
        self.dropped = 0
        self.written = 0
        self._format = FORMATTERS[config.format]
        self._pending: collections.deque[Entry] = collections.deque()
        self._wake = threading.Event()
        self._stopping = False
        self._reopen = False
        self._file: IO[str] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Open the file and start the writer (blocking: call it off the event loop)."""
        if self._thread is not None:
            return
        self._file = self._open()
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()

    def submit(self, entry: Entry) -> None:
        """Queue one line (event loop; never blocks). Over the bound the line is dropped."""
        if len(self._pending) >= self.config.max_pending:
            self.dropped += 1
            return
        self._pending.append(entry)

    def reopen(self) -> None:
        """Reopen the file by name at the next drain (SIGHUP after logrotate moved it)."""
        self._reopen = True
        self._wake.set()

    def close(self) -> None:
        """Write every queued line, flush and close (blocking: call it off the event loop)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping = True
        self._wake.set()
        thread.join()
        if self._file is not None and self.config.path is not None:
            self._file.close()
        self._file = None

    def _open(self) -> IO[str]:
        if self.config.path is None:
            return sys.stderr
        try:
            return open(self.config.path, "a", encoding="utf-8", buffering=256 * 1024)  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(f"cannot open the access log {self.config.path}: {exc}; "
                              "check the directory exists and is writable") from None

    def _run(self) -> None:
        while True:
            self._wake.wait(self.config.flush_interval_s)
            self._wake.clear()
            stopping = self._stopping
            try:
                self._drain()
                if self._reopen:
                    self._reopen = False
                    self._swap_file()
            except Exception:  # a full disk must not kill the writer: keep counting, retry
                log.exception("event=access_log_write_failed path=%s", self.config.path)
            if stopping:
                return

    def _drain(self) -> None:
        pending, out, format_line = self._pending, self._file, self._format
        if out is None or not pending:
            return
        # The lines queued now, not those that arrive meanwhile: under sustained overload the
        # writer still reaches its flush every interval.
        left = len(pending)
        while left > 0:
            lines = [format_line(pending.popleft()) for _ in range(min(left, _SLICE))]
            left -= len(lines)
            out.write("".join(lines))
            self.written += len(lines)
            # Formatting holds the GIL: without a pause the event loop, back from epoll,
            # waits up to the interpreter's 5 ms switch interval for it, once per drain.
            time.sleep(0)
        out.flush()

    def _swap_file(self) -> None:
        if self.config.path is None:
            return
        old, self._file = self._file, self._open()
        if old is not None:
            old.close()
        log.info("event=access_log_reopened path=%s", self.config.path)


class QueuedAccessLogger(AbstractAccessLogger):
    """aiohttp's access logger for one sink: it only queues the request's facts."""

    sink: AccessLogSink  # set on the per-sink subclass that `logger_class_for` makes
    with_agent: bool  # the format logs the referer and the user agent (combined)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_taken: float) -> None:
        # The client is the one the request edge resolved (behind a trusted proxy, the one it
        # forwarded, not the proxy); the op is the label the HKP handler set (request.query
        # would parse the query string once more per request); referer and user agent are
        # read only for a format that logs them.
        client = request.get(CLIENT_KEY)
        remote = client.address if client is not None else request.remote or "-"
        if self.with_agent:
            headers = request.headers
            referer, agent = headers.get("Referer", ""), headers.get("User-Agent", "")
        else:
            referer = agent = ""
        self.sink.submit((
            time.time(), remote, request.method, request.path, request.get(OP_LABEL, ""),
            response.status, response.body_length, time_taken, referer, agent,
        ))

    @property
    def enabled(self) -> bool:
        return True


def logger_class_for(sink: AccessLogSink) -> type[QueuedAccessLogger]:
    """The access_log_class for aiohttp's AppRunner that writes to `sink` (aiohttp builds it)."""
    attributes: dict[str, Any] = {"sink": sink, "with_agent": sink.config.format == "combined"}
    return type("NodeAccessLogger", (QueuedAccessLogger,), attributes)


class AccessLogCollector(Collector):
    """meshkp_access_log_{written,dropped}_total of one sink, read at scrape time."""

    def __init__(self, sink: AccessLogSink) -> None:
        self.sink = sink

    def collect(self) -> Any:
        written = CounterMetricFamily("meshkp_access_log_written", "Access log lines written")
        written.add_metric([], self.sink.written)
        dropped = CounterMetricFamily(
            "meshkp_access_log_dropped", "Access log lines dropped because the writer fell behind")
        dropped.add_metric([], self.sink.dropped)
        return [written, dropped]
