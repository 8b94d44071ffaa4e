"""One real node's /metrics, scraped once for the deploy/ tests.

An in-process Node with the default parts, in a mesh of one (so membership's and replication's
collectors are there) on a temp data dir, after a few requests so the labelled HTTP families carry samples.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from meshkp.membership.config import MembershipConfig
from meshkp.node.config import NodeConfig
from meshkp.node.node import Node
from meshkp.swim.config import SwimConfig
from tests.deploy.promql import exported_names

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


async def _scrape(data_dir: Path) -> str:
    membership = MembershipConfig(bind_host="127.0.0.1", gossip_port=0, swim=SwimConfig.test())
    # The access log on, as by default: it brings its own collector.
    node = Node(NodeConfig(data_dir=data_dir, http_port=0, access_log=True,
                           membership=membership))
    await node.start()
    try:
        async with aiohttp.ClientSession() as session:
            for path in ("/pks/health", "/pks/lookup?op=stats&options=mr",
                         "/pks/lookup?op=get&search=0xDEADBEEFDEADBEEF"):
                async with session.get(node.url + path) as reply:
                    await reply.read()
            async with session.get(node.url + "/metrics") as reply:
                assert reply.status == 200
                return await reply.text()
    finally:
        await node.stop()


@pytest.fixture(scope="session")
def node_metrics(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every sample name a real node's /metrics exports."""
    text = asyncio.run(_scrape(tmp_path_factory.mktemp("metrics-node") / "node"))
    return exported_names(text)
