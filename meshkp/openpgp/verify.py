"""Cryptographic checks of a certificate's self-signatures (RFC 9580 §5.2.4, §10.1).

The normaliser asks one question per signature: does `sig`, made by the primary key (or,
for a back-signature, by a subkey), validly bind this component? The answer is a bool;
an algorithm meshkp cannot check is not an answer but an `UnsupportedAlgorithm` whose
message names it, so the operator sees why a key was refused.
"""

from __future__ import annotations

from meshkp.errors import MalformedPacket
from meshkp.openpgp.algorithms import check_supported, key_matches, verify_digest
from meshkp.openpgp.hashing import hash_algorithm, signature_digest
from meshkp.openpgp.packet import Packet, Tag
from meshkp.openpgp.pubkey import PublicKey, parse_public_key
from meshkp.openpgp.signature import CERTIFICATIONS, Signature, SigType

# Which signature types may bind which target (RFC 9580 §5.2.1). Checking this keeps a
# signature from being accepted for a component it was never meant to cover.
_ON_USER = CERTIFICATIONS | {SigType.CERT_REVOCATION}
_ON_SUBKEY = frozenset({SigType.SUBKEY_BINDING, SigType.SUBKEY_REVOCATION})
_ON_KEY = frozenset({SigType.DIRECT_KEY, SigType.KEY_REVOCATION})
_BACK_SIGNATURE = frozenset({SigType.PRIMARY_KEY_BINDING})


def verify_binding(
    primary: PublicKey,
    sig: Signature,
    target: Packet | None,
    signer: PublicKey | None = None,
) -> bool:
    """True if `sig` by `signer` (default: the primary) validly binds `target` to `primary`.

    `target` is a user ID (tag 13), user attribute (17) or subkey (14) packet, or None for
    direct-key and key-revocation signatures. False when the math, the left 16 bits, the
    signature type or the version rules fail, or the material is malformed. Raises
    UnsupportedAlgorithm when the hash or public-key algorithm cannot be verified here.
    """
    signer = primary if signer is None else signer
    if target is None:
        return _verify(primary, sig, None, signer)
    framed = _frame_target(target)
    if framed is None:
        return False
    return _verify(primary, sig, framed, signer)


def verify_back_signature(primary: PublicKey, subkey: PublicKey, sig: Signature) -> bool:
    """True if `sig` is a valid primary-key binding (0x19) made by a signing `subkey`.

    This is the embedded signature a signing subkey's binding must carry (RFC 9580
    §5.2.1.9): it hashes the primary and the subkey, like the 0x18 binding, but is made by
    the subkey. Same return and error contract as verify_binding.
    """
    return _verify(primary, sig, (Tag.PUBLIC_SUBKEY, subkey.body), subkey)


def _frame_target(target: Packet) -> tuple[int, bytes] | None:
    """The (tag, body) that gets hashed for a target packet; None if it cannot be one."""
    if target.tag in (Tag.USER_ID, Tag.USER_ATTRIBUTE):
        return target.tag, target.body
    if target.tag == Tag.PUBLIC_SUBKEY:
        try:
            # The canonical body: trailing octets after the material are not hashed, as
            # they are not part of the fingerprint either (see pubkey.py).
            return Tag.PUBLIC_SUBKEY, parse_public_key(target.body).body
        except MalformedPacket:
            return None
    return None


def _verify(
    primary: PublicKey, sig: Signature, target: tuple[int, bytes] | None, signer: PublicKey
) -> bool:
    algorithm = hash_algorithm(sig.hash_algorithm)
    check_supported(sig.pubkey_algorithm, signer)
    if not key_matches(sig.pubkey_algorithm, signer):
        return False
    if not _type_fits(sig.sig_type, target, by_primary=signer.fingerprint == primary.fingerprint):
        return False
    if not _versions_fit(sig, signer, algorithm.v6_salt_size):
        return False
    try:
        digest = signature_digest(algorithm, sig, primary.body, target)
    except OverflowError:
        return False  # a key body too long for the 2-octet frame of a v3/v4 signature
    # The quick check of RFC 9580 §5.2.3: most forgeries and corruptions fail here, before
    # any public-key arithmetic.
    if digest[:2] != sig.left16:
        return False
    return verify_digest(signer, sig.pubkey_algorithm, sig.material, algorithm, digest)


def _type_fits(sig_type: int, target: tuple[int, bytes] | None, by_primary: bool) -> bool:
    if target is None:
        return by_primary and sig_type in _ON_KEY
    if target[0] == Tag.PUBLIC_SUBKEY:
        return sig_type in (_ON_SUBKEY if by_primary else _BACK_SIGNATURE)
    return by_primary and sig_type in _ON_USER


def _versions_fit(sig: Signature, signer: PublicKey, v6_salt_size: int | None) -> bool:
    """RFC 9580 §5.2.3: v6 keys make v6 signatures and only they do; the salt size is fixed
    by the hash (§9.5), which must not be MD5, SHA-1 or RIPEMD-160 in a v6 signature."""
    if (sig.version == 6) != (signer.version == 6):
        return False
    if sig.version == 6:
        return v6_salt_size is not None and len(sig.salt) == v6_salt_size
    return True
