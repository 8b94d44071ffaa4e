"""A mesh of real `meshkp serve` processes on 127.0.0.1 replicating with each other.

Each node gets a free replication port chosen up front and the others' ports as --replication-peer,
one shared cluster key file, and a short sync interval. Helpers poll (real processes: the only
tier allowed to), always with a deadline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.keygen import (
    _key_hash_input,
    _sign,
    _v4_fingerprint,
    generate_key,
)
from meshkp.net.crypto import generate_key as generate_cluster_key
from meshkp.net.crypto import write_key_file
from meshkp.openpgp.armor import armor
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.packet import Packet
from tests.integration.conftest import ServerProcess, start_server
from tests.ports import free_port


def armored(index: int, seed: bytes = b"itest", with_subkey: bool = True) -> str:
    return armor(generate_key(index, seed=seed, with_subkey=with_subkey).data)


def with_user_id(index: int, user_id: str, seed: bytes = b"itest") -> str:
    """Armored key `index` carrying only a new, self-certified user ID (an update of the key)."""
    import hashlib

    base = generate_key(index, seed=seed, with_subkey=False)
    secret = hashlib.sha256(seed + b"/primary/" + index.to_bytes(8, "big")).digest()
    signer = Ed25519PrivateKey.from_private_bytes(secret)
    primary_body = parse_packets(base.data)[0].body
    uid = user_id.encode()
    sig = _sign(signer, _v4_fingerprint(primary_body), 0x13, 1704067300, 0x03,
                _key_hash_input(primary_body) + b"\xb4" + len(uid).to_bytes(4, "big") + uid)
    packets = [Packet(6, primary_body), Packet(13, uid), Packet(2, sig)]
    return armor(b"".join(p.encode() for p in packets))


def fingerprint(index: int, seed: bytes = b"itest") -> str:
    return generate_key(index, seed=seed, with_subkey=False).fingerprint.hex().upper()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> float:
    """Poll until predicate() is true; seconds it took, or AssertionError naming `what`."""
    began = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


@dataclass
class Mesh:
    root: Path
    key_file: Path
    sync_ports: list[int]
    extra: Sequence[str] = ()
    nodes: list[ServerProcess | None] = field(default_factory=list)

    @classmethod
    def start(cls, root: Path, n: int, *extra: str) -> Mesh:
        key_file = root / "cluster.key"
        write_key_file(key_file, [generate_cluster_key()], overwrite=True)
        mesh = cls(root, key_file, [free_port() for _ in range(n)], extra)
        mesh.nodes = [None] * n
        for i in range(n):
            mesh.start_node(i)
        return mesh

    def args(self, i: int, peers_on: bool = True) -> list[str]:
        peers = [f"--replication-peer=127.0.0.1:{p}" for j, p in enumerate(self.sync_ports)
                 if j != i and peers_on]
        # An isolated node also listens where no peer dials: the others' anti-entropy would
        # otherwise reach it within one sync interval, and it would not stay isolated.
        port = self.sync_ports[i] if peers_on else free_port()
        return ["--node-id", f"n{i}", "--replication-port", str(port),
                "--cluster-key-file", str(self.key_file), "--no-access-log", *peers, *self.extra]

    def start_node(self, i: int, *more: str, peers_on: bool = True) -> ServerProcess:
        node = start_server(self.root / f"n{i}", *self.args(i, peers_on), *more)
        self.nodes[i] = node
        return node

    def __getitem__(self, i: int) -> ServerProcess:
        node = self.nodes[i]
        assert node is not None, f"node {i} is stopped"
        return node

    def live(self) -> list[ServerProcess]:
        return [n for n in self.nodes if n is not None]

    def stop_node(self, i: int) -> None:
        node = self.nodes[i]
        if node is not None:
            node.stop()
            self.nodes[i] = None

    def close(self) -> None:
        for i in range(len(self.nodes)):
            self.stop_node(i)

    def token(self, i: int) -> str:
        return (self.root / f"n{i}" / "admin.token").read_text().strip()

    def delete_token(self, i: int) -> str:
        """A token node i deletes with: its own (static peers run no control plane, so no
        admin signs deletes; docs/cluster-security.md, "Deletes name their node and admin")."""
        return self.token(i)

    def status(self, node: ServerProcess) -> dict:
        return json.loads(node.request("GET", "/cluster/sync/status").body)

    def roots(self) -> set[str]:
        return {self.status(n)["merkle_root"] for n in self.live()}

    def has_key(self, node: ServerProcess, fpr: str) -> bool:
        return node.lookup(op="get", search="0x" + fpr).status == 200

    def delete(self, i: int, fpr: str, reason: str = "test", actor: str = "tester") -> dict:
        response = self[i].request(
            "DELETE", f"/cluster/keys/{fpr}?reason={quote(reason)}&actor={quote(actor)}",
            headers={"Authorization": f"Bearer {self.delete_token(i)}"},
        )
        assert response.status == 200, response.text
        return json.loads(response.body)

    def sync(self, i: int) -> dict:
        response = self[i].request("POST", "/cluster/sync",
                                   headers={"Authorization": f"Bearer {self.token(i)}"})
        assert response.status == 200, response.text
        return json.loads(response.body)


def build_store(data_dir: Path, count: int) -> None:
    """A node data dir holding `count` generated keys, written directly (fast fixture)."""
    from bench.keygen import generate_keyring
    from meshkp.keys.commit import PULLED, Committer, joining
    from meshkp.keys.record import KeyRecord
    from meshkp.limits import Limits
    from meshkp.openpgp.certificate import certificate_from_packets
    from meshkp.openpgp.framing import parse_packets
    from meshkp.openpgp.keytext import split_stream
    from meshkp.store.leveldb import LevelDBStore

    ring = b"".join(generate_keyring(count, seed=b"boot"))
    store = LevelDBStore(data_dir / "keys")
    committer = Committer(Limits())
    batch: list[KeyRecord] = []
    for key in split_stream(parse_packets(ring)):
        packets = list(key.packets)
        fpr = _primary_fingerprint(packets[0].body)
        batch.append(KeyRecord.new(certificate_from_packets(fpr, list(packets)), "n0"))
        if len(batch) == 1000:
            committer.apply(store, joining(batch), PULLED, sync=False)
            batch = []
    if batch:
        committer.apply(store, joining(batch), PULLED)
    store.close()


def _primary_fingerprint(body: bytes) -> bytes:
    from meshkp.openpgp.pubkey import parse_public_key

    return parse_public_key(body).fingerprint
