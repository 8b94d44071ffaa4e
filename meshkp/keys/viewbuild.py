"""Build the index view of a stored key from its binary form (meshkp.openpgp.index facts)."""

from __future__ import annotations

from meshkp.keys.views import KeyView, SignatureView, SubkeyView, UserIdView
from meshkp.openpgp.certificate import Component, certificate_from_packets
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.index import key_info
from meshkp.openpgp.normalise import claims_self
from meshkp.openpgp.pubkey import PublicKey, parse_public_key
from meshkp.openpgp.signature import parse_signature


def build_view(fingerprint: bytes, binary: bytes) -> KeyView:
    """The KeyView of a stored (already normalised) certificate."""
    cert = certificate_from_packets(fingerprint, parse_packets(binary))
    info = key_info(cert)
    primary = parse_public_key(cert.primary.packet.body)
    user_ids = tuple(
        UserIdView(
            text=uid.user_id,
            created=uid.created,
            expires=uid.expires,
            revoked=uid.revoked,
            signatures=_signatures(cert.user_ids[uid.user_id], primary),
        )
        for uid in info.user_ids
    )
    subkeys = tuple(
        SubkeyView(s.fingerprint, s.key_id, s.algorithm, s.bits, s.created, s.expires, s.revoked)
        for s in info.subkeys
    )
    return KeyView(
        fingerprint=info.fingerprint,
        version=info.version,
        key_id=info.key_id,
        algorithm=info.algorithm,
        bits=info.bits,
        created=info.created,
        expires=info.expires,
        revoked=info.revoked,
        user_ids=user_ids,
        subkeys=subkeys,
        signatures=_signatures(cert.primary, primary),
        user_attributes=info.user_attributes,
    )


def _signatures(component: Component, primary: PublicKey) -> tuple[SignatureView, ...]:
    """Signatures of a component for op=vindex, oldest first."""
    views = []
    for packet in component.ordered_signatures():
        sig = parse_signature(packet.body)
        issuer = sig.issuer_key_id
        views.append(SignatureView(sig.sig_type, issuer, sig.created, claims_self(sig, primary)))
    views.sort(key=lambda v: (v.created, v.issuer or b""))
    return tuple(views)
