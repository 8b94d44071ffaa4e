"""A gossip-joined mesh of real `meshkp serve` processes that chaos runs can kill, pause and
restart, on 127.0.0.1 or one process per network namespace (chaos/netns.py).

It extends tests/integration/replication_mesh.Mesh (status, roots, deletes, sync): nodes find
each other through SWIM (`--join` every other node, `--gossip-profile`), not `--replication-peer`,
so that failure detection and rejoin are part of what is tested.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.netns import Topology, connect_in
from meshkp.net.crypto import generate_key as generate_cluster_key
from meshkp.net.crypto import write_key_file
from tests.integration.conftest import ServerProcess, start_server
from tests.integration.replication_mesh import Mesh
from tests.integration.test_membership import gossip_port

# Inside a namespace every node has its own address, so the ports can be fixed.
NETNS_GOSSIP_PORT = 7946
# Per-request bound of the observer's HTTP calls: a paused or partitioned node must not stall a
# poll loop for the default 30 s.
OBSERVE_TIMEOUT_S = 5.0


FOUNDER = 0  # the node that founds the control plane


@dataclass
class NsServer(ServerProcess):
    """A server inside a network namespace, reached from the client namespace."""

    netns: str = ""

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        conn.sock = connect_in(self.netns, self.host, self.port, timeout)
        return conn


@dataclass
class ChaosCluster(Mesh):
    """Mesh of n gossip-joined nodes; node i has id `n{i}` and data dir ROOT/n{i}."""

    gossip_ports: list[int] = field(default_factory=list)
    topology: Topology | None = None
    profile: str = "test"
    sync_interval_s: float = 2.0
    paused: set[int] = field(default_factory=set)
    exited: list[str] = field(default_factory=list)  # nodes found exited when about to kill
    mounts: list[Path] = field(default_factory=list)  # tmpfs data dirs (unmounted at close)
    prefix: dict[int, list[str]] = field(default_factory=dict)  # e.g. faketime before a node's command
    # A slot whose node was replaced runs under a new id (ReplaceVoter); the ids removed for good
    # stay in the others' membership as gone (SWIM forgets the dead only after a day).
    ids: dict[int, str] = field(default_factory=dict)
    retired: set[str] = field(default_factory=set)

    @classmethod
    def launch(
        cls, root: Path, n: int, topology: Topology | None = None, profile: str = "test",
        sync_interval_s: float = 2.0, extra: tuple[str, ...] = (), small_disks: dict[int, str] | None = None,
    ) -> ChaosCluster:
        """Start n nodes (in parallel) and return once each answers /pks/health.

        `small_disks` {node: size}: that node's data dir is a tmpfs of that size (root only), so
        the disk-full nemesis can fill it."""
        from chaos.nemesis import mount_tmpfs  # nemesis imports this module

        root.mkdir(parents=True, exist_ok=True)
        key_file = root / "cluster.key"
        write_key_file(key_file, [generate_cluster_key()], overwrite=True)
        gossip = [NETNS_GOSSIP_PORT] * n if topology else [gossip_port() for _ in range(n)]
        cluster = cls(root, key_file, [g + 1 for g in gossip], extra, gossip_ports=gossip,
                      topology=topology, profile=profile, sync_interval_s=sync_interval_s)
        cluster.nodes = [None] * n
        try:
            for i, size in (small_disks or {}).items():
                mount_tmpfs(root / f"n{i}", size)
                cluster.mounts.append(root / f"n{i}")
            # The founder first: it joins nobody, so nodes whose joins all finished before it
            # listened would never learn of it (their joins succeed with each other).
            cluster.start_node(FOUNDER)
            cluster.restart_all()
        except BaseException:
            cluster.close()
            raise
        return cluster

    @property
    def n(self) -> int:
        return len(self.nodes)

    def node_id(self, i: int) -> str:
        return self.ids.get(i, f"n{i}")

    def delete_token(self, i: int) -> str:
        """The founder's bootstrap token, which it seeded as the named admin "admin": any node
        accepts it and signs its deletes as that admin, so they replicate (a node's own
        bootstrap token gets 403 for a delete in a mesh whose admins have keys)."""
        return self.token(0)

    def host(self, i: int) -> str:
        return "127.0.0.1" if self.topology is None else self.topology.host(i)

    def args(self, i: int, peers_on: bool = True) -> list[str]:
        # Node 0 starts with no seeds: a node with an empty control store and no --join founds
        # the control plane (docs/control-plane.md); the others join it and each other. After a
        # restart its control store is not empty, so it rejoins instead of founding again.
        # A node that replaced the founder in its slot (ReplaceVoter) is a new node: it joins.
        founder = i == FOUNDER and i not in self.ids
        seeds = [f"--join={self.host(j)}:{self.gossip_ports[j]}"
                 for j in range(self.n) if j != i and peers_on and not founder]
        return ["--mesh", "--node-id", self.node_id(i), "--gossip-port", str(self.gossip_ports[i]),
                "--replication-port", str(self.sync_ports[i]), "--cluster-key-file", str(self.key_file),
                "--gossip-profile", self.profile, "--sync-interval", f"{self.sync_interval_s:g}",
                "--no-access-log", *seeds, *self.extra]

    def start_node(self, i: int, *more: str, peers_on: bool = True) -> ServerProcess:
        data_dir = self.root / f"n{i}"
        if self.topology is None:
            node = start_server(data_dir, *self.args(i, peers_on), *more,
                                command_prefix=self.prefix.get(i, []))
        else:
            node = start_server(
                data_dir, *self.args(i, peers_on), *more, host=self.topology.host(i),
                command_prefix=[*self.topology.exec_prefix(i), *self.prefix.get(i, [])],
                server_type=functools.partial(NsServer, netns=self.topology.client),
            )
        self.nodes[i] = node
        return node

    # -- faults ------------------------------------------------------------------------------

    def kill(self, i: int) -> None:
        """kill -9 node i (no shutdown of any kind)."""
        node = self.nodes[i]
        if node is not None:
            if node.proc.poll() is not None:
                self.exited.append(f"{self.node_id(i)} rc={node.proc.returncode}")
            node.stop(signal.SIGKILL)
            self.nodes[i] = None

    def kill_all(self) -> None:
        """kill -9 every node at once (signals first, then reap), like a power cut minus the disk."""
        for i, node in enumerate(self.nodes):
            if node is None:
                continue
            if node.proc.poll() is not None:
                self.exited.append(f"{self.node_id(i)} rc={node.proc.returncode}")
            else:
                os.kill(node.proc.pid, signal.SIGKILL)
        for i, node in enumerate(self.nodes):
            if node is not None:
                node.stop(signal.SIGKILL)  # reaps it
                self.nodes[i] = None
        self.paused.clear()

    def restart_all(self) -> None:
        """Start every stopped node, in parallel."""
        stopped = [i for i, node in enumerate(self.nodes) if node is None]
        with ThreadPoolExecutor(max_workers=max(1, len(stopped))) as pool:
            list(pool.map(self.start_node, stopped))

    def pause(self, i: int) -> None:
        os.kill(self[i].proc.pid, signal.SIGSTOP)
        self.paused.add(i)

    def resume(self, i: int) -> None:
        os.kill(self[i].proc.pid, signal.SIGCONT)
        self.paused.discard(i)

    def close(self) -> None:
        for i in list(self.paused):
            self.resume(i)
        with ThreadPoolExecutor(max_workers=max(1, self.n)) as pool:
            list(pool.map(self.stop_node, range(self.n)))
        from chaos.nemesis import unmount

        for where in self.mounts:
            unmount(where)

    # -- observation -------------------------------------------------------------------------

    def running(self) -> list[int]:
        """Nodes started and neither killed nor paused."""
        return [i for i, node in enumerate(self.nodes) if node is not None and i not in self.paused]

    def crashed(self) -> list[int]:
        """Nodes we believe are running whose process has exited on its own."""
        return [i for i, node in enumerate(self.nodes)
                if node is not None and node.proc.poll() is not None]

    def get_json(self, i: int, path: str) -> dict[str, Any] | None:
        """GET path on node i as JSON, or None when it does not answer 200 in time."""
        node = self.nodes[i]
        if node is None:
            return None
        try:
            reply = node.request("GET", path, timeout=OBSERVE_TIMEOUT_S)
        except OSError:
            return None
        if reply.status != 200:
            return None
        body = json.loads(reply.body)
        return body if isinstance(body, dict) else None

    def view(self, i: int) -> dict[str, str]:
        """node id -> status as node i's membership sees it ({} if it does not answer)."""
        body = self.get_json(i, "/cluster/nodes")
        return {} if body is None else {m["id"]: m["status"] for m in body["nodes"]}

    def all_alive(self, among: list[int] | None = None) -> bool:
        """Every running node (of `among`) lists every node of the cluster as alive (and the
        retired ids, if it knows them, as gone)."""
        want = {self.node_id(j): "alive" for j in range(self.n)}
        nodes = self.running() if among is None else among

        def agrees(view: dict[str, str]) -> bool:
            gone = {m: s for m, s in view.items() if m in self.retired}
            current = {m: s for m, s in view.items() if m not in self.retired}
            return current == want and all(s in ("dead", "left") for s in gone.values())

        return all(agrees(self.view(i)) for i in nodes)

    def sees_dead(self, observer: int, target: int) -> bool:
        return self.view(observer).get(self.node_id(target)) in ("dead", "left")

    def root_of(self, i: int) -> str | None:
        body = self.get_json(i, "/cluster/sync/status")
        return None if body is None else str(body["merkle_root"])

    def roots_equal(self) -> bool:
        roots = [self.root_of(i) for i in self.running()]
        return None not in roots and len(set(roots)) == 1

    def served(self, fingerprints: list[str], i: int) -> dict[str, bool]:
        """fingerprint -> whether node i serves it (op=get is 200), over kept-alive connections."""
        # Served = a 200 whose body is that key (a 404 for a deleted key is "not served").
        return {fpr: status == 200 and served_key(body) == fpr
                for fpr, status, body in self[i].get_keys(fingerprints)}

    def serves(self, i: int, fpr: str) -> bool | None:
        """Whether node i serves the key now; None if it is down, paused or does not answer."""
        node = self.nodes[i]
        if node is None or i in self.paused:
            return None
        try:
            reply = node.request("GET", f"/pks/lookup?op=get&search=0x{fpr}",
                                 timeout=OBSERVE_TIMEOUT_S)
        except OSError:
            return None
        return reply.status == 200

    def conflicts(self, i: int) -> set[str]:
        body = self.get_json(i, "/cluster/conflicts")
        assert body is not None, f"node {i} did not answer /cluster/conflicts"
        return {c["fingerprint"] for c in body["conflicts"]}


def served_key(body: bytes) -> str | None:
    """The primary fingerprint of an armored key reply, or None when it is not one."""
    from meshkp.openpgp.armor import dearmor
    from meshkp.openpgp.framing import parse_packets
    from meshkp.openpgp.grouping import fingerprint_hex, parse_primary

    try:
        return fingerprint_hex(parse_primary(parse_packets(dearmor(body)[0])[0]))
    except Exception:  # any malformed reply is simply "not the key"
        return None


def poll(predicate: object, timeout: float, step: float = 0.25) -> float | None:
    """Seconds until predicate() held, or None if it did not within timeout."""
    assert callable(predicate)
    began = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            return None
        time.sleep(step)
