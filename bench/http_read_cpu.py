"""CPU per HKP read in µs, in one process: a real node's HTTP server against bare aiohttp's.

A real `Node` with the default configuration (the access log on, to a file; LevelDB holding
debian-keyring) is started in this process, and its aiohttp server is fed requests through
in-memory transports instead of sockets: `connections` clients in a closed loop, each sending
its next request when the previous answer is complete, as wrk does. The same is done with
bench/bare_server.py's app serving the same bytes. What is left is exactly the Python work of
one request (parse, route, edge, handler, response, access log, metrics), without the
kernel's socket work, the load generator or other processes' load: `time.process_time()` over
every thread of this process (the access log's writer included) ÷ requests.

`--profile` adds a cProfile of meshkp's run (its overhead inflates the µs; use it for where
the time goes, not for the figure).
Run: python -m bench.http_read_cpu [--requests 20000] [--runs 3] [--profile]
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from aiohttp import web

from bench import bare_server
from bench.common import DEBIAN_KEYRING, NO_REFUSAL_LIMITS, console, median, report
from bench.http_read import load_keyring, pick_median_key
from bench.http_read_wrk import urls
from meshkp.http.app import EDGE_KEY, GUARD_KEY
from meshkp.limits import Limits
from meshkp.node.config import NodeConfig
from meshkp.node.node import Node

# What makes a connection's protocol: aiohttp's Server, or the node's listener's guard around it.
Factory = Callable[[], asyncio.Protocol]
# A run that has not finished after this many seconds has lost answers (a bug, not slowness).
RUN_TIMEOUT_S = 120.0


class _Client(asyncio.Transport):
    """One keep-alive connection of a closed-loop client, without a socket."""

    def __init__(self, protocol: asyncio.Protocol, request: bytes, answer_bytes: int,
                 done: Callable[[], None]) -> None:
        super().__init__()
        self.protocol = protocol
        self.request = request
        self.answer_bytes = answer_bytes
        self.done = done
        self.received = 0
        self.closing = False

    def send(self) -> None:
        self.protocol.data_received(self.request)

    def write(self, data: Any) -> None:
        self.received += len(data)
        if self.received >= self.answer_bytes:
            if self.received != self.answer_bytes:
                raise RuntimeError(f"answer of {self.received} bytes, expected {self.answer_bytes}")
            self.received = 0
            self.done()

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 11371)}.get(name, default)

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return True


async def answer_bytes(server: Factory, request: bytes) -> int:
    """The size of one answer on the wire (status line, headers and body), by one request."""
    sizes: list[int] = []
    protocol = server()
    client = _Client(protocol, request, 1 << 40, lambda: None)
    protocol.connection_made(client)
    client.send()
    for _ in range(1000):
        await asyncio.sleep(0.001)
        if client.received:
            await asyncio.sleep(0.01)  # the rest of the answer, if written in pieces
            sizes.append(client.received)
            break
    protocol.connection_lost(None)
    if not sizes:
        raise RuntimeError("no answer to the first request")
    return sizes[0]


async def drive(server: Factory, request: bytes, size: int, connections: int,
                count: int) -> float:
    """CPU µs per request over `count` requests from `connections` closed-loop clients."""
    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    left = [count]
    clients: list[_Client] = []

    def make_done(index: int) -> Callable[[], None]:
        def done() -> None:
            left[0] -= 1
            if left[0] <= 0:
                if not finished.done():
                    finished.set_result(None)
            elif left[0] >= connections:
                loop.call_soon(clients[index].send)
        return done

    for index in range(connections):
        protocol = server()
        client = _Client(protocol, request, size, make_done(index))
        protocol.connection_made(client)
        clients.append(client)
    began = time.process_time()
    for client in clients:
        client.send()
    await asyncio.wait_for(finished, RUN_TIMEOUT_S)
    spent = time.process_time() - began
    for client in clients:
        client.protocol.connection_lost(None)
    return spent * 1e6 / count


def _request(url: str) -> bytes:
    path = url.split("127.0.0.1", 1)[1].split("/", 1)[1]
    return f"GET /{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: wrk\r\n\r\n".encode()


async def _bare_server(body: bytes, content_type: str) -> web.AppRunner:
    runner = web.AppRunner(bare_server.make_app(body, content_type), access_log=None)
    await runner.setup()
    return runner


async def measure(data_dir: Path, work: Path, requests: int, runs: int, connections: int,
                  profile: bool, only: tuple[str, ...],
                  access_log: bool = True, edge: bool = True) -> dict[str, dict[str, object]]:
    # The rate limits run but refuse nothing: the driver is one client at a very high rate.
    node = Node(NodeConfig(data_dir=data_dir, http_port=0, access_log=access_log,
                           access_log_file=work / "access.log", limits=Limits(**NO_REFUSAL_LIMITS)))
    await node.start()
    figures: dict[str, dict[str, object]] = {}
    try:
        assert node.http is not None and node.app is not None
        runner_server = node.http.runner.server
        assert runner_server is not None
        if not edge:
            # Diagnosis only (errors are then not mapped, requests not counted nor limited):
            # what the request edge costs (meshkp/http/edge.py). Connections made after this
            # take the server's handler as it is now: the app's own, without the edge.
            runner_server.request_handler = node.app[EDGE_KEY].inner
        # Connections go through the listener's guard, as on the node's socket (GuardedSite):
        # it resolves each connection's client once, as the edge then expects.
        server = node.app[GUARD_KEY].factory(runner_server)
        target = pick_median_key(DEBIAN_KEYRING)
        for name, url in urls("http://127.0.0.1", target).items():
            if only and name not in only:
                continue
            request = _request(url)
            size = await answer_bytes(server, request)
            body, content_type = await _body(node, url)
            bare = await _bare_server(body, content_type)
            assert bare.server is not None
            bare_size = await answer_bytes(bare.server, request)
            mine, base = [], []
            for _ in range(runs):
                mine.append(await drive(server, request, size, connections, requests))
                base.append(await drive(bare.server, request, bare_size, connections, requests))
            stats = ""
            if profile:
                profiler = cProfile.Profile()
                profiler.enable()
                await drive(server, request, size, connections, requests)
                profiler.disable()
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(45)
                stats = out.getvalue()
                print(stats)  # plain: rich would wrap the columns
            await bare.cleanup()
            figures[name] = {"meshkp_us": mine, "bare_us": base, "answer_bytes": size,
                             "bare_answer_bytes": bare_size,
                             "ratio": median(base) / median(mine), "profile": stats}
            console.print(f"{name}: meshkp {median(mine):.1f} µs, bare {median(base):.1f} µs")
    finally:
        await node.stop()
    return figures


async def _body(node: Node, url: str) -> tuple[bytes, str]:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(
            url.replace("http://127.0.0.1", node.url)) as response:
        return await response.read(), response.headers["Content-Type"]


@click.command()
@click.option("--requests", type=int, default=20_000, show_default=True)
@click.option("--runs", type=int, default=3, show_default=True)
@click.option("--connections", type=int, default=32, show_default=True)
@click.option("--profile", is_flag=True, help="Print a cProfile of one more meshkp run.")
@click.option("--only", multiple=True, type=click.Choice(["get", "get_mr", "index_mr", "vindex"]))
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="Off: what the access log costs, by difference (the default config has it on).")
@click.option("--edge/--no-edge", default=True, show_default=True,
              help="Off: what the request edge (errors, metrics, rate limits) costs, by "
                   "difference (diagnosis only).")
def main(requests: int, runs: int, connections: int, profile: bool, only: tuple[str, ...],
         access_log: bool, edge: bool) -> None:
    """CPU µs per request of a real node's HTTP server vs bare aiohttp, without sockets."""
    run(requests, runs, connections, profile, only, access_log, edge)


def run(requests: int = 20_000, runs: int = 3, connections: int = 32, profile: bool = False,
        only: tuple[str, ...] = (), access_log: bool = True,
        edge: bool = True) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="bench-cpu-"))
    try:
        load_keyring(work / "data")
        figures = asyncio.run(measure(work / "data", work, requests, runs, connections, profile, only,
                                      access_log, edge))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [[name, f["answer_bytes"], f"{median(f['meshkp_us']):.1f}",  # type: ignore[arg-type]
             f"{median(f['bare_us']):.1f}", f"{f['ratio']:.2f}"]  # type: ignore[arg-type]
            for name, f in figures.items()]
    data = {"requests": requests, "runs": runs, "connections": connections,
            "access_log": access_log, "edge": edge, "figures": figures}
    log_state = "access log on" if access_log else "access log off"
    if not edge:
        log_state += ", edge off"
    report("http_read_cpu",
           f"CPU µs per request in process ({log_state}), {connections} clients, median of {runs}",
           ["request", "answer bytes", "meshkp µs", "bare µs", "bare ÷ meshkp"], rows, data)
    return data


if __name__ == "__main__":
    main()
