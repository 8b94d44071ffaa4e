"""The size `quorum` and `all` are counted against (MembershipPeers.cluster_size).

Regression (chaos checker, stale reads): a node restarted without seeds, or whose frames were
all refused for clock skew, knew no peer; its cluster size was 1, so it answered
`x-consistency: all` with 200 on its own ack while no other node had the key.
"""

from __future__ import annotations

from meshkp.replication.transport import MembershipPeers


class View:
    def __init__(self, **counts: int) -> None:
        self._counts = counts

    def counts(self) -> dict[str, int]:
        return dict(self._counts)


def test_a_node_that_knows_no_peer_counts_the_control_planes_members() -> None:
    peers = MembershipPeers(View(alive=1))
    peers.configured = lambda: 5
    assert peers.cluster_size() == 5


def test_a_node_that_sees_peers_counts_its_membership_as_before() -> None:
    peers = MembershipPeers(View(alive=3, suspect=1, dead=1, left=2))
    peers.configured = lambda: 7  # e.g. members that left are still in the configuration
    assert peers.cluster_size() == 5


def test_without_a_control_plane_a_lone_node_is_a_cluster_of_one() -> None:
    assert MembershipPeers(View(alive=1)).cluster_size() == 1
