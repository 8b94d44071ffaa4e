"""CPU cost of verifying every self-signature of debian-keyring (905 keys, ~6,500 signatures).

Self-signatures are those whose issuer is the primary key: certifications and their
revocations on user IDs and attributes, subkey bindings and revocations, direct-key and key
revocation signatures. Parsing is done before the clock starts; the figure is verification
only (hashing plus public-key math), median of 3 runs of process CPU time.
Run: python -m bench.verify_selfsigs
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from meshkp.errors import MalformedPacket
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.packet import Packet, Tag
from meshkp.openpgp.pubkey import PublicKey, parse_public_key
from meshkp.openpgp.signature import Signature, parse_signature
from meshkp.openpgp.verify import verify_binding

KEYRING = Path("/usr/share/keyrings/debian-keyring.gpg")
RUNS = 3


def self_signatures(data: bytes) -> tuple[int, list[tuple[PublicKey, Signature, Packet | None]]]:
    """(number of keys, every (primary, self-signature, component) of a binary keyring)."""
    jobs: list[tuple[PublicKey, Signature, Packet | None]] = []
    keys = 0
    primary: PublicKey | None = None
    component: Packet | None = None
    for packet in parse_packets(data):
        if packet.tag == Tag.PUBLIC_KEY:
            primary, component, keys = parse_public_key(packet.body), None, keys + 1
        elif packet.tag in (Tag.USER_ID, Tag.USER_ATTRIBUTE, Tag.PUBLIC_SUBKEY):
            component = packet
        elif packet.tag == Tag.SIGNATURE and primary is not None:
            try:
                sig = parse_signature(packet.body)
            except MalformedPacket:
                continue
            if sig.issuer_matches(primary.key_id, primary.fingerprint):
                jobs.append((primary, sig, component))
    return keys, jobs


def main() -> None:
    keys, jobs = self_signatures(KEYRING.read_bytes())
    timings, valid = [], 0
    for _ in range(RUNS):
        start = time.process_time()
        valid = sum(verify_binding(primary, sig, target) for primary, sig, target in jobs)
        timings.append(time.process_time() - start)
    cpu = statistics.median(timings)
    print(f"keys={keys} self_signatures={len(jobs)} valid={valid} "
          f"cpu_s={cpu:.2f} sigs_per_s={len(jobs) / cpu:.0f} keys_per_s={keys / cpu:.0f}")


if __name__ == "__main__":
    main()
