"""CPU cost of frames that prove their sender (issue 12): `python -m bench.frame_auth [--quick]`.

1. Per gossip frame (a full 1,400-byte UDP compound), median of 3 runs, microseconds per frame
   sent and received, each beside the baseline of the same run:
   - baseline: wire encode + cluster-key seal, open + decode (what every frame cost before);
   - signed: the same plus the Ed25519 signature, its verification, the sender-key binding and
     the replay window (meshkp/net/codec.py, what every frame costs now);
   - pairwise: the alternative not taken, an X25519 box per peer pair (precomputed shared key)
     inside the cluster-key box;
   - statements: checking a frame of 6 fresh signed alives (one Ed25519 verify each), and the
     same frame again (every signature remembered: what retransmissions cost).
2. Per node-second of gossip: process CPU of a 10-node SWIM simulation (LAN profile, real
   sealing) over 120 simulated seconds, with identity checks and with them replaced by
   pass-throughs, divided by node-seconds simulated.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from unittest import mock

import nacl.public

from bench.common import report
from meshkp.membership.proofs import Proofs
from meshkp.net.codec import SealedCodec
from meshkp.net.crypto import Keyring, generate_key
from meshkp.net.frameauth import FrameAuth
from meshkp.net.identity import NodeIdentity
from meshkp.net.stats import NetStats
from meshkp.net.wire import UDP_DATAGRAM_BYTES, Frame, decode_frame, encode_frame
from meshkp.sim.cluster import SimCluster
from meshkp.swim.config import SwimConfig
from meshkp.swim.messages import Alive, Compound, Ping, decode_message

RUNS = 3
# Signed alives in the measured frame: what fits in one 1,400-byte datagram beside a ping.
STATEMENTS = 6


def _per_call(fn: Callable[[], object], n: int) -> float:
    """Median over RUNS of the microseconds one call of fn takes."""
    samples = []
    for _ in range(RUNS):
        began = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - began) / n * 1e6)
    return statistics.median(samples)


def _gossip_frame(signers: list[NodeIdentity]) -> Compound:
    """A ping plus signed alives of other members, as full as a UDP frame gets."""
    parts: list[object] = [Ping(1 << 62, "b", "a", ("10.0.0.1", 7946))]
    for i, ident in enumerate(signers):
        alive = Alive(ident.node_id, (f"10.0.{i}.1", 7946), 7, {"http": f"10.0.{i}.1:11371"},
                      ident.public_key)
        parts.append(Alive(alive.node, alive.addr, alive.incarnation, alive.meta, alive.key,
                           ident.sign(alive.signed_bytes())))
    return Compound(tuple(parts))  # type: ignore[arg-type]


def per_frame(n: int) -> dict[str, float]:
    keyring = Keyring([generate_key()])
    signers = [NodeIdentity.generate() for _ in range(STATEMENTS)]
    message = _gossip_frame(signers)
    frame = Frame(message.TYPE, message.to_map())
    limit = UDP_DATAGRAM_BYTES

    def baseline() -> None:
        data = keyring.seal(encode_frame(frame, limit))
        decode_frame(keyring.open(data), limit)

    a_auth, b_auth = FrameAuth(NodeIdentity.generate("a")), FrameAuth(NodeIdentity.generate("b"))
    a = SealedCodec(keyring, limit, auth=a_auth)
    b = SealedCodec(keyring, limit, auth=b_auth)

    def signed() -> None:
        b.unpack(a.pack(frame))

    ka, kb = nacl.public.PrivateKey.generate(), nacl.public.PrivateKey.generate()
    box_a, box_b = nacl.public.Box(ka, kb.public_key), nacl.public.Box(kb, ka.public_key)

    def pairwise() -> None:
        data = keyring.seal(box_a.encrypt(encode_frame(frame, limit)))
        decode_frame(box_b.decrypt(keyring.open(data)), limit)

    received = decode_message(frame.type, frame.body)
    fresh: list[Proofs] = []

    def statements_fresh() -> None:
        proofs = Proofs(b_auth.identity, FrameAuth(b_auth.identity).peers, NetStats())
        fresh.append(proofs)
        proofs.check(received, "udp", ("10.0.0.1", 7946), "a")

    cached = Proofs(b_auth.identity, b_auth.peers, NetStats())
    cached.check(received, "udp", ("10.0.0.1", 7946), "a")

    def statements_cached() -> None:
        cached.check(received, "udp", ("10.0.0.1", 7946), "a")

    out = {
        "frame_bytes": float(len(a.pack(frame))),
        "baseline_us": _per_call(baseline, n),
        "signed_us": _per_call(signed, n),
        "pairwise_us": _per_call(pairwise, n),
        "statements_fresh_us": _per_call(statements_fresh, max(1, n // 8)),
        "statements_cached_us": _per_call(statements_cached, n),
    }
    assert all(p.verifies == len(signers) for p in fresh)  # one verify per fresh statement
    return out


class _PassThrough:
    """Proofs with nothing signed or checked: the baseline of the simulation."""

    def __init__(self, *_args: object) -> None:
        pass

    def sign(self, message: object) -> object:
        return message

    def check(self, message: object, *_args: object) -> object:
        return message


@contextmanager
def _identity_off() -> Iterator[None]:
    """Frames sealed but unsigned, statements neither signed nor checked."""
    import meshkp.sim.cluster as cluster_module
    real = cluster_module.make_codec
    with mock.patch("meshkp.membership.service.Proofs", _PassThrough), \
            mock.patch.object(cluster_module, "make_codec",
                              lambda keys, sealed=True, auth=None: real(keys, sealed)):
        yield


def per_node_second(seconds: float, n: int = 10) -> float:
    """Process CPU microseconds per simulated node-second of steady-state gossip."""
    with SimCluster(SwimConfig.lan(), seed=5, sealed=True) as cluster:
        cluster.start(n)
        assert cluster.run_until(cluster.converged, timeout=60.0) is not None
        began = time.process_time()
        cluster.run(seconds)
        cpu = time.process_time() - began
    return cpu / (n * seconds) * 1e6


def run(quick: bool = False) -> dict[str, float]:
    n = 300 if quick else 3000
    seconds = 30.0 if quick else 120.0
    figures = per_frame(n)
    on = statistics.median(per_node_second(seconds) for _ in range(RUNS))
    with _identity_off():
        off = statistics.median(per_node_second(seconds) for _ in range(RUNS))
    figures.update({"sim_on_us_per_node_s": on, "sim_off_us_per_node_s": off})
    base = figures["baseline_us"]
    rows = [
        ["baseline: seal + open (cluster key only)", f"{base:.1f}", "1.00"],
        ["signed: + Ed25519 sign/verify, binding, replay", f"{figures['signed_us']:.1f}",
         f"{figures['signed_us'] / base:.2f}"],
        ["pairwise: + X25519 box per peer (not taken)", f"{figures['pairwise_us']:.1f}",
         f"{figures['pairwise_us'] / base:.2f}"],
        ["6 fresh signed statements checked", f"{figures['statements_fresh_us']:.1f}", "-"],
        ["the same 6, signatures remembered", f"{figures['statements_cached_us']:.1f}", "-"],
        ["sim CPU per node-second, identity off", f"{off:.0f}", "1.00"],
        ["sim CPU per node-second, identity on", f"{on:.0f}", f"{on / off:.2f}"],
    ]
    report("frame_auth", f"Frames that prove their sender ({int(figures['frame_bytes'])}-byte "
           "gossip frame; us)", ["what", "us", "ratio"], rows, figures)
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    run(quick=args.quick)


if __name__ == "__main__":
    main()
