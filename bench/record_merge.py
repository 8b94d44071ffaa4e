"""Merge throughput of key records built from real debian-keyring keys, by record size.

Each key is split into two replicas (alternate signatures each, as two nodes that saw
different certifications); we time `a.join(b, limits)` (the CRDT join with the signature cap)
and the encode that a store write needs.
Run: python -m bench.record_merge
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from meshkp.keys.record import KeyRecord
from meshkp.limits import Limits
from meshkp.openpgp.certificate import Certificate, Component, certificate_from_packets
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.packet import Tag
from meshkp.openpgp.pubkey import parse_public_key

KEYRING = Path("/usr/share/keyrings/debian-keyring.gpg")
BUCKETS = [(0, 4_096), (4_096, 16_384), (16_384, 65_536), (65_536, 1 << 30)]
KEPT_TAGS = {Tag.PUBLIC_KEY, Tag.SIGNATURE, Tag.USER_ID, Tag.USER_ATTRIBUTE, Tag.PUBLIC_SUBKEY}


def _certificates() -> list[Certificate]:
    certs, current = [], []
    for packet in parse_packets(KEYRING.read_bytes()):
        if packet.tag == Tag.PUBLIC_KEY and current:
            certs.append(current)
            current = []
        if packet.tag in KEPT_TAGS:
            current.append(packet)
    certs.append(current)
    return [certificate_from_packets(parse_public_key(c[0].body).fingerprint, c) for c in certs]


def _half(cert: Certificate, parity: int) -> Certificate:
    def keep(component: Component) -> Component:
        sigs = sorted(component.signatures)
        return Component(component.packet, frozenset(sigs[parity::2]))

    return Certificate(
        cert.fingerprint, keep(cert.primary),
        {b: keep(c) for b, c in cert.user_ids.items()},
        {b: keep(c) for b, c in cert.user_attributes.items()},
        {b: keep(c) for b, c in cert.subkeys.items()},
    )


def main(runs: int = 3) -> None:
    limits = Limits()
    pairs = [
        (KeyRecord.new(_half(c, 0), "node-a"), KeyRecord.new(_half(c, 1), "node-b"), len(c.to_bytes()))
        for c in _certificates()
    ]
    print(f"{len(pairs)} debian-keyring keys, median of {runs} runs")
    print(f"{'record size':>16} {'keys':>6} {'merges/s':>10} {'merge+encode/s':>15} {'MB/s merged':>12}")
    for low, high in BUCKETS:
        chosen = [(a, b, size) for a, b, size in pairs if low <= size < high]
        if not chosen:
            continue
        merge_rates, full_rates = [], []
        for _ in range(runs):
            start = time.perf_counter()
            for a, b, _size in chosen:
                a.join(b, limits)
            merge_rates.append(len(chosen) / (time.perf_counter() - start))
            start = time.perf_counter()
            for a, b, _size in chosen:
                a.join(b, limits).encode()
            full_rates.append(len(chosen) / (time.perf_counter() - start))
        mean_size = statistics.mean(size for *_, size in chosen)
        rate = statistics.median(merge_rates)
        label = f"{low // 1024}-{high // 1024 if high < 1 << 30 else 'inf'} KiB"
        print(
            f"{label:>16} {len(chosen):>6} {rate:>10.0f} {statistics.median(full_rates):>15.0f}"
            f" {rate * mean_size / 1e6:>12.1f}"
        )


if __name__ == "__main__":
    main()
