"""Rate limits inside the server, per client: token buckets, temporary bans, 429 with Retry-After.

Reverse proxies get keyserver limits wrong (Hockeypuck HIP-10, #387; bans in #286), so the node
applies its own, from `Limits` (the cluster policy: every node applies the same ones, and a
`PUT /cluster/policy` changes them everywhere without a restart). Per request, in order:
1. a banned client gets 429 at once (reason "banned"), before any other work;
2. every request counts against the flood rule (ban_requests in ban_requests_seconds);
   overflowing it bans the client;
3. op=get, op=index/vindex and POST /pks/add take tokens from their bucket; an empty bucket
   answers 429 with the seconds until the tokens are back (reasons "get", "search", "upload");
4. the answer's status: a client error (4xx but 404) counts against the error rule
   (ban_errors in ban_errors_seconds), and overflowing it bans the client.
Clients whose every hop is a trusted proxy are exempt (meshkp/http/clientaddr.py). Metrics:
meshkp_http_rate_limited_total{reason}, meshkp_http_bans_total{reason}, and the clients
tracked and banned now.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from meshkp.http.buckets import BucketTable, ClientState, Rate, TokenBucket
from meshkp.http.clientaddr import Client
from meshkp.http.errors import text_error
from meshkp.limits import Limits

log = logging.getLogger(__name__)

REASONS = ("get", "search", "upload", "banned")
BAN_REASONS = ("requests", "errors")
# Characters that make a search wildcard-like: HKP has no wildcards, but SKS-era clients send
# them, and the words left around them are short and match the most keys.
WILDCARDS = frozenset("*?%")
# A search whose longest word is shorter than this matches the most keys (one-letter searches
# were the red team's cheap flood): it costs `rate_search_costly` tokens.
SHORT_SEARCH_CHARS = 3
# Tokens of the upload bucket one upload's verification CPU costs beyond its own token: one per
# this fraction of `upload_cpu_ms`, so an upload that used its whole CPU budget costs 6.
CPU_TOKENS_PER_BUDGET = 5
# GET targets whose bucket and cost are memoised (a pool node's hot lookups are fewer); a client
# sending endless distinct ones only empties the memo, each of its requests costing a decode.
KIND_MEMO_ENTRIES = 4096
# "Not memoised yet" (None is a memoised "no bucket").
_UNKNOWN = ("?", 0, Rate(1.0, 1.0))
# The CPU (ms) a handler spent for the request beyond the event loop's own (set by /pks/add).
CPU_MS_KEY = web.RequestKey("meshkp.cpu_ms", float)


def search_cost(search: str, costly: int) -> int:
    """Tokens one op=index/vindex search costs: `costly` when short or wildcard-like, else 1."""
    text = search.strip()
    if text[:2].lower() == "0x" and len(text) > 2:
        return 1  # a key ID or fingerprint: one index lookup
    if any(char in WILDCARDS for char in text):
        return costly
    words = "".join(char if char.isalnum() else " " for char in text).split()
    longest = max((len(word) for word in words), default=0)
    return costly if longest < SHORT_SEARCH_CHARS else 1


@dataclass(frozen=True, slots=True)
class Rates:
    """The buckets' rates of one Limits value (built once per policy change, not per request)."""

    limits: Limits
    get: Rate
    search: Rate
    upload: Rate
    flood: Rate
    errors: Rate

    @classmethod
    def of(cls, limits: Limits) -> Rates:
        return cls(limits,
                   Rate(limits.rate_get_per_minute / 60, limits.rate_get_burst),
                   Rate(limits.rate_search_per_minute / 60, limits.rate_search_burst),
                   Rate(limits.rate_upload_per_minute / 60, limits.rate_upload_burst),
                   Rate.per_window(limits.ban_requests, limits.ban_requests_seconds),
                   Rate.per_window(limits.ban_errors, limits.ban_errors_seconds))


def lookup_op(request: web.Request) -> str:
    """The `op` of a /pks/lookup query as the handler reads it (the first one), without parsing
    the whole query string on the hot path (op=get replies come from a cache keyed by it)."""
    for part in request.query_string.split("&"):
        if part[:3] == "op=":
            op = part[3:]
            if "%" in op or "+" in op:  # encoded: let aiohttp decode it as the handler does
                return str(request.query.get("op", "")).strip().lower()
            return op.strip().lower()
    return ""


def bucket_of(request: web.Request, rates: Rates) -> tuple[str, int, Rate] | None:
    """(kind, cost, rate) of the bucket `request` draws on, or None (no bucket, ban rules only)."""
    path = request.path
    if path == "/pks/lookup":
        op = lookup_op(request)
        if op in ("get", "hget"):
            return "get", 1, rates.get
        if op in ("index", "vindex"):
            costly = rates.limits.rate_search_costly
            return "search", search_cost(str(request.query.get("search", "")), costly), rates.search
        return None
    if path == "/pks/add" and request.method == "POST":
        return "upload", 1, rates.upload
    return None


def is_client_error(status: int) -> bool:
    """Statuses the error ban counts: the client's fault, 404 aside (a lookup of an unknown
    key is ordinary; gpg --refresh-keys asks for keys the server may not have)."""
    return 400 <= status < 500 and status != 404


class RateLimiter:
    """The limits of one node's HTTP app, applied by the request edge (meshkp/http/edge.py):
    `admit` before the handler, `after` with its answer's status."""

    def __init__(self, limits: Limits, registry: CollectorRegistry,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.table = BucketTable()
        self._rates = Rates.of(limits)  # replaced when `admit` is given other limits
        # (kind, cost, rate) by GET request target: the same few hot lookups come again and
        # again, and decoding one (and costing its search) is most of what a bucket take
        # costs. Emptied when full, and with the rates (a search's cost is a policy value).
        self._kinds: dict[str, tuple[str, int, Rate] | None] = {}
        self.limited = Counter("meshkp_http_rate_limited", "Requests refused with 429 by the "
                               "rate limits, by reason (get, search, upload: that bucket was "
                               "empty; banned: the client is banned)", ["reason"],
                               registry=registry)
        self.bans = Counter("meshkp_http_bans", "Clients banned for a while, by the rule they "
                            "broke (requests: a flood; errors: repeated client errors)",
                            ["reason"], registry=registry)
        for reason in REASONS:
            self.limited.labels(reason)
        for reason in BAN_REASONS:
            self.bans.labels(reason)
        registry.register(_TableCollector(self))

    def admit(self, request: web.Request, client: Client, limits: Limits,
              ) -> tuple[ClientState, web.Response | None]:
        """The client's state, and None if the request may go on, else the 429 to answer.

        `limits`: those in force (the edge reads them once per request)."""
        rates = self._rates
        if rates.limits is not limits:
            rates = self._adopt(limits)
        now = self.clock()
        state = self.table.get(client.key, now, limits.rate_clients)
        if state.banned_until > now:
            left = state.banned_until - now
            self.limited.labels("banned").inc()
            refusal = _too_many(request, left, f"this client ({client.key}) is banned for "
                                f"{math.ceil(left)} s more: {state.ban_reason}")
            # Its next connection is refused at accept, before any HTTP parsing (connguard).
            refusal.force_close()
            return state, refusal
        if state.requests.take(now, 1, rates.flood) > 0:
            self._ban(client, state, limits, now, "requests",
                      f"more than {limits.ban_requests} requests in "
                      f"{limits.ban_requests_seconds} s")
            self.limited.labels("banned").inc()
            return state, _too_many(request, limits.ban_seconds, f"this client ({client.key}) "
                                    f"is banned for {limits.ban_seconds} s: {state.ban_reason}")
        # A GET's bucket by its target as sent (memoised, see _kind_of); others computed.
        found = self._kinds.get(request.raw_path, _UNKNOWN) if request.method == "GET" else _UNKNOWN
        if found is _UNKNOWN:
            found = self._kind_of(request, rates)
        if found is None:
            return state, None
        kind, cost, rate = found
        bucket = state.buckets.get(kind) or state.bucket(kind)
        wait = bucket.take(now, cost, rate)
        if wait <= 0:
            return state, None
        self.limited.labels(kind).inc()
        return state, _too_many(request, wait, f"too many {kind} requests from this client "
                                f"({client.key}): retry in {math.ceil(wait)} s "
                                f"(limits.rate_{kind}_per_minute, rate_{kind}_burst)")

    def after(self, request: web.Request, client: Client, state: ClientState,
              status: int) -> None:
        """The answer's share of the rules: an upload's CPU, and a client error's ban count."""
        if status < 400 and request.method != "POST":
            return  # nearly every request: nothing to count
        cpu_ms = request.get(CPU_MS_KEY)
        rates = self._rates
        now = self.clock()
        limits = rates.limits
        if cpu_ms:
            # Verification CPU beyond the upload's own token (finding 5): charged after the
            # fact, so the next uploads of a client that sends costly keys wait for it.
            extra = cpu_ms * CPU_TOKENS_PER_BUDGET / limits.upload_cpu_ms
            state.bucket("upload").charge(now, extra, rates.upload)
        if (is_client_error(status) and not state.banned(now)
                and state.bucket("errors").take(now, 1, rates.errors) > 0):
            self._ban(client, state, limits, now, "errors",
                      f"more than {limits.ban_errors} client errors in "
                      f"{limits.ban_errors_seconds} s")

    def is_banned(self, key: str) -> bool:
        """Whether client `key` is banned now (read by the connection guard at accept)."""
        state = self.table.peek(key)
        return state is not None and state.banned(self.clock()) > 0

    def _adopt(self, limits: Limits) -> Rates:
        """The rates of new limits (a policy change); the memoised costs go with the old."""
        self._rates = Rates.of(limits)
        self._kinds.clear()
        return self._rates

    def _kind_of(self, request: web.Request, rates: Rates) -> tuple[str, int, Rate] | None:
        if request.method != "GET":
            return bucket_of(request, rates)
        # Keyed by the request target as sent: decoding its path and query (what bucket_of
        # reads) is the costly part, and the same target always decodes the same way.
        target = request.raw_path
        kinds = self._kinds
        found = kinds.get(target, _UNKNOWN)
        if found is _UNKNOWN:
            if len(kinds) >= KIND_MEMO_ENTRIES:
                kinds.clear()
            found = kinds[target] = bucket_of(request, rates)
        return found

    def _ban(self, client: Client, state: ClientState, limits: Limits, now: float, rule: str,
             why: str) -> None:
        state.banned_until = now + limits.ban_seconds
        state.ban_reason = why
        # The buckets start again after the ban (or the flood rule would ban again at once).
        state.buckets.clear()
        state.requests = TokenBucket()
        self.bans.labels(rule).inc()
        log.warning("event=client_banned client=%s address=%s rule=%s seconds=%d",
                    client.key, client.address, rule, limits.ban_seconds)


def _too_many(request: web.Request, wait: float, message: str) -> web.Response:
    response = text_error(429, message)
    response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
    if request.method == "POST":
        # Do not read an upload we refuse: close after the answer.
        response.force_close()
    return response


class _TableCollector:
    """Gauges of the bucket table, read at scrape time (no work per request)."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    def collect(self) -> Iterator[Metric]:
        table = self.limiter.table
        now = self.limiter.clock()
        yield GaugeMetricFamily("meshkp_http_rate_clients",
                                "Clients whose rate buckets are remembered", len(table))
        yield GaugeMetricFamily("meshkp_http_rate_banned", "Clients banned now",
                                table.banned_now(now))
        yield GaugeMetricFamily("meshkp_http_rate_clients_evicted",
                                "Clients forgotten to keep the table bounded (limits.rate_clients)",
                                table.evicted)
