"""The `meshkp top` click command: the poller thread, the key loop and rich's Live display."""

from __future__ import annotations

import time

import click
from rich.console import Console
from rich.live import Live

from cli.node_client import node_option
from cli.top.collect import Collector, Poller
from cli.top.keys import KeyReader, ViewState
from cli.top.render import frame

# Seconds between key checks: how fast a key press shows on screen.
KEY_POLL_S = 0.1


@click.command("top")
@node_option
@click.option("--interval", type=click.FloatRange(min=0.2, max=60), default=1.0,
              show_default=True, metavar="S", help="Seconds between polls of the cluster.")
@click.option("--once", is_flag=True,
              help="Poll twice (--interval apart, so request rates exist), print one frame "
                   "to stdout and exit: for scripts and tests.")
def top(node_url: str, interval: float, once: bool) -> None:
    """A live view of the cluster seen through the node at --node: members, roles, keys,
    Merkle roots, pushes, RTT, requests/s and p99, topology, events. Keys: q quit, s sort,
    / filter, j/k select, Enter detail."""
    if once:
        collector = Collector(node_url)
        try:
            collector.poll()
            time.sleep(interval)
            snapshot = collector.poll()
        finally:
            collector.close()
        console = Console()
        console.print(frame(snapshot, ViewState(), height=console.height))
        if snapshot.error:
            raise SystemExit(1)
        return
    run_live(node_url, interval)


def run_live(node_url: str, interval: float = 1.0) -> None:
    """The full-screen view until q or Ctrl-C (`meshkp dev --top` calls it too)."""
    poller = Poller(Collector(node_url), interval)
    console = Console()
    view = ViewState()
    poller.start()
    shown: object = None
    try:
        with KeyReader() as keys, Live(frame(None, view), console=console, screen=True,
                                       auto_refresh=False, transient=True) as live:
            while True:
                pressed = keys.read(KEY_POLL_S)
                if not all(view.handle(key) for key in pressed):
                    return
                snapshot = poller.latest
                if pressed or snapshot is not shown:
                    shown = snapshot
                    live.update(frame(snapshot, view, height=console.height), refresh=True)
    except KeyboardInterrupt:
        return
    finally:
        poller.stop()
