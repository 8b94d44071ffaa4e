"""The rate limiter's own cost per request, in-process: the middleware around a handler that
answers at once, against the bare handler, on one mocked op=get request (limits that never
refuse, so the whole path runs). An upper bound: the mocked transport's address lookup is
slower than a real one's. Median of 5 runs of 50,000 calls.
Run: python -m bench.ratelimit_micro
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import statistics
import time

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from prometheus_client import CollectorRegistry

from meshkp.http.clientaddr import ClientResolver
from meshkp.http.ratelimit import RateLimiter
from meshkp.limits import Limits

CALLS = 50_000
LIMITS = dataclasses.replace(Limits(), rate_get_burst=10**9, rate_get_per_minute=10**9,
                             ban_requests=10**9)
ANSWER = web.Response(text="x")


async def _handler(_request: web.Request) -> web.StreamResponse:
    return ANSWER


async def _run() -> list[float]:
    limiter = RateLimiter(lambda: LIMITS, ClientResolver(), CollectorRegistry())
    request = make_mocked_request("GET", "/pks/lookup?op=get&search=0x10FE8CF1B483F752")
    costs = []
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(CALLS):
            await limiter.middleware(request, _handler)
        on = (time.perf_counter() - began) / CALLS
        began = time.perf_counter()
        for _ in range(CALLS):
            await _handler(request)
        off = (time.perf_counter() - began) / CALLS
        costs.append((on - off) * 1e6)
    return costs


def main() -> None:
    costs = asyncio.run(_run())
    print(f"rate limiter cost per request: median {statistics.median(costs):.1f} us "
          f"(runs {', '.join(f'{c:.1f}' for c in costs)}); load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
