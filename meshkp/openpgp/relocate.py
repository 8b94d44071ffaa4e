"""Misfiled self-signatures: find the component a self-signature was made for.

Old keyservers and keyrings sometimes filed a self-signature under the wrong component:
rtt-140.asc carries subkey bindings under the wrong subkey, lp1195901.asc user ID
certifications and a revocation under the wrong user ID. `gpg --import` (2.2) moves each
such signature to the component it verifies on and says "N signatures reordered", so a
component whose only binding was misfiled is kept; `gpg --show-keys` does not reorder.
meshkp does what import does, within the kind the signature was filed under: one filed
under a user ID is tried on the other user IDs (and attributes on attributes), one filed
under a subkey on the other subkeys. Bindings swapped between a user ID and a subkey
(snowcrash_evaporated.asc) are not moved: that key stays rejected, as the corpus README and
Hockeypuck's tests require, although `gpg --import` accepts it.

A hostile upload can file many forged "self-signatures" among many components, so the
search is bounded twice. Each candidate is first checked by the left 16 bits of the digest
(RFC 9580 §5.2.3): one hash, no public-key arithmetic, and at most `Limits.relocation_hashes`
of them per key. A candidate that passes that check but does not verify costs a public-key
operation and counts against `Limits.bad_self_signatures` like any failing self-signature.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from operator import attrgetter

from meshkp.errors import UnsupportedAlgorithm
from meshkp.openpgp.hashing import hash_algorithm, signature_digest
from meshkp.openpgp.packet import Packet
from meshkp.openpgp.pubkey import PublicKey
from meshkp.openpgp.signature import Signature

# A self-signature that failed on the components it was filed under: the parsed signature,
# and those components (one packet can be filed under several, e.g. SKS's ugly keys).
Stray = tuple[Signature, frozenset[Packet]]
# Full verification of a signature against a target; counts failures, may raise KeyRejected.
Verify = Callable[[Signature, Packet], bool]
_BODY = attrgetter("body")  # canonical order within one kind (all strays are signatures)


def relocate(
    primary: PublicKey,
    strays: Mapping[Packet, Stray],
    components: Collection[Packet],
    placed: Collection[Packet],
    hashes: int,
    verify: Verify,
) -> dict[Packet, Packet]:
    """Signature packet -> the component of the same kind it validly binds, for each stray
    that binds one; strays already in `placed` (valid elsewhere) are not searched for.

    Deterministic whatever the upload order: strays and candidates are tried in canonical
    (tag, body) order, so the hash budget cuts the search off at the same place.
    """
    found: dict[Packet, Packet] = {}
    by_kind: dict[int, list[Packet]] = {}  # candidates of each kind, sorted by body
    for packet in sorted(strays, key=_BODY):
        if packet in placed:
            continue  # a copy of a signature that is filed correctly too (lp1195901.asc)
        sig, filed = strays[packet]
        for kind in sorted({target.tag for target in filed}):
            if kind not in by_kind:
                by_kind[kind] = sorted((c for c in components if c.tag == kind), key=_BODY)
            for target in by_kind[kind]:
                if target in filed:
                    continue
                if hashes <= 0:
                    return found
                hashes -= 1
                if _left16_fits(primary, sig, target) and _verifies(verify, sig, target):
                    found[packet] = target
                    break
            if packet in found:
                break
    return found


def _verifies(verify: Verify, sig: Signature, target: Packet) -> bool:
    try:
        return verify(sig, target)
    except UnsupportedAlgorithm:
        return False  # not reached: the filed attempt got past the same algorithm checks


def _left16_fits(primary: PublicKey, sig: Signature, target: Packet) -> bool:
    # Component bodies come canonical from grouping (a subkey's trailing octets cut off),
    # which is what verify_binding hashes too.
    try:
        algorithm = hash_algorithm(sig.hash_algorithm)
        digest = signature_digest(algorithm, sig, primary.body, (target.tag, target.body))
    except (UnsupportedAlgorithm, OverflowError):
        return False
    return digest[:2] == sig.left16
