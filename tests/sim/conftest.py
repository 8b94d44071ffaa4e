"""The `sim` fixture: SimClusters that are closed (drivers stopped, loop closed) after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from meshkp.sim.cluster import SimCluster

MakeCluster = Callable[..., SimCluster]


@pytest.fixture
def sim() -> Iterator[MakeCluster]:
    """SimCluster's constructor, for clusters that live as long as the test."""
    clusters: list[SimCluster] = []

    def make(*args: Any, **kwargs: Any) -> SimCluster:
        cluster = SimCluster(*args, **kwargs)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.close()
