"""`meshkp serve` with the rate limiter left out of the HTTP app: the baseline of
bench/ratelimit_cost.py. Everything else (connection caps, metrics, access log) is the same.
Run: python -m bench.ratelimit_off_server serve --data-dir DIR --http-port PORT
"""

from __future__ import annotations

import functools

from cli.main import main
from meshkp.http import app as http_app
from meshkp.node import node as node_module

if __name__ == "__main__":
    # Node builds its app with make_app; the baseline is the same app without the limiter.
    node_module.make_app = functools.partial(http_app.make_app, rate_limits=False)  # type: ignore[assignment]
    main()
