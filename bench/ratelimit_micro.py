"""The rate limiter's own cost per request, in-process: what the request edge calls for a client
that is not exempt (`RateLimiter.admit` before the handler, `after` with its status), on one
mocked op=get request of a client resolved once (as the edge does per connection), with limits
that never refuse, so the whole path runs. Median of 5 runs of 50,000 calls.
Run: python -m bench.ratelimit_micro
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time

from aiohttp.test_utils import make_mocked_request
from prometheus_client import CollectorRegistry

from meshkp.http.clientaddr import Client
from meshkp.http.ratelimit import RateLimiter
from meshkp.limits import Limits

CALLS = 50_000
LIMITS = dataclasses.replace(Limits(), rate_get_burst=10**9, rate_get_per_minute=10**9,
                             ban_requests=10**9)


def _run() -> list[float]:
    limiter = RateLimiter(LIMITS, CollectorRegistry())
    request = make_mocked_request("GET", "/pks/lookup?op=get&search=0x10FE8CF1B483F752")
    client = Client("192.0.2.7", "192.0.2.7", False)
    costs = []
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(CALLS):
            state, refused = limiter.admit(request, client, LIMITS)
            assert refused is None
            limiter.after(request, client, state, 200)
        costs.append((time.perf_counter() - began) / CALLS * 1e6)
    return costs


def main() -> None:
    costs = _run()
    print(f"rate limiter cost per request: median {statistics.median(costs):.2f} us "
          f"(runs {', '.join(f'{c:.2f}' for c in costs)}); load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
