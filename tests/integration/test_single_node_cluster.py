"""A node without a mesh answers every /cluster/* read endpoint as a mesh of one (issue 10)."""

from __future__ import annotations

import pytest

READS = ["/cluster/nodes", "/cluster/status", "/cluster/health", "/cluster/load",
         "/cluster/performance", "/cluster/leader", "/cluster/consensus", "/cluster/policy",
         "/cluster/routing", "/cluster/audit", "/cluster/conflicts", "/cluster/sync/status"]


@pytest.mark.parametrize("path", READS)
def test_every_cluster_read_answers_on_a_single_node(meshkp_server, path: str) -> None:  # type: ignore[no-untyped-def]
    reply = meshkp_server.request("GET", path)
    assert reply.status == 200, (path, reply.status, reply.text)
    assert isinstance(reply.json(), dict)


def test_the_single_node_is_its_own_alive_member_and_leader(meshkp_server) -> None:  # type: ignore[no-untyped-def]
    nodes = meshkp_server.request("GET", "/cluster/nodes").json()
    assert nodes["mesh"] is False and [n["status"] for n in nodes["nodes"]] == ["alive"]
    me = nodes["self"]
    assert meshkp_server.request("GET", "/cluster/leader").json()["leader"] == me
    assert meshkp_server.request("GET", "/cluster/status").json()["counts"]["alive"] == 1
