"""Misfiled self-signatures are moved to the component they bind, as `gpg --import` does.

rtt-140.asc and lp1195901.asc carry self-signatures filed under the wrong subkey or user ID,
but every one of them is also filed correctly, so dropping the misfiled copies loses nothing
(that is why meshkp matched gpg on them before relocation existed). The keys below remove
the correctly filed copies of one component's self-signatures, so that component's only
binding is a misfiled one: `gpg --import` keeps the component ("signatures reordered"),
`gpg --show-keys` does not reorder and drops it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from meshkp.errors import KeyRejected
from meshkp.limits import Limits
from meshkp.openpgp.certificate import Certificate
from meshkp.openpgp.index import key_view
from meshkp.openpgp.keytext import parse_keytext
from meshkp.openpgp.normalise import claims_self, normalise
from meshkp.openpgp.packet import Packet, Tag
from meshkp.openpgp.pubkey import parse_public_key
from meshkp.openpgp.signature import SigType, parse_signature
from meshkp.openpgp.sigpeek import peek_signature
from meshkp.openpgp.verify import verify_binding
from tests.gpgtools import GPG, gnupg_home, gpg
from tests.unit.openpgp.gpgcolons import all_differences, parse, structure_differences
from tests.unit.openpgp.keyfiles import FIXTURES, fixture, raw_key
from tests.unit.openpgp.test_index import GPG_COMPARABLE

RTT_SUBKEY = "dd2f4160d468906c"  # its binding is also filed under subkey 5eb3406d3df45908
DEMON_UID = b"Phil Pennock <pdp@spodhuis.demon.nl>"  # revoked; sigs also under other UIDs


def without_own_sigs(name: str, victim: Callable[[Packet], bool]) -> list[Packet]:
    """Key `name` minus the self-signatures filed (correctly) under the victim component."""
    packets = raw_key(name)
    primary = parse_public_key(packets[0].body)
    kept: list[Packet] = []
    current: Packet | None = None
    for packet in packets:
        if packet.tag == Tag.SIGNATURE and current is not None and victim(current):
            header = peek_signature(packet.body)
            if header is not None and claims_self(header, primary) and verify_binding(
                primary, parse_signature(packet.body), current
            ):
                continue
        elif packet.tag != Tag.SIGNATURE:
            current = packet if packet.tag in (Tag.USER_ID, Tag.PUBLIC_SUBKEY) else None
        kept.append(packet)
    return kept


def rtt_variant() -> list[Packet]:
    return without_own_sigs(
        "rtt-140.asc",
        lambda c: c.tag == Tag.PUBLIC_SUBKEY and parse_public_key(c.body).key_id.hex() == RTT_SUBKEY,
    )


def lp_variant() -> list[Packet]:
    return without_own_sigs("lp1195901.asc", lambda c: c.tag == Tag.USER_ID and c.body == DEMON_UID)


def subkey_ids(cert: Certificate) -> set[str]:
    return {parse_public_key(c.packet.body).key_id.hex() for c in cert.subkeys.values()}


def test_a_subkey_whose_only_binding_is_misfiled_is_kept() -> None:
    packets = rtt_variant()
    assert len(packets) < len(raw_key("rtt-140.asc"))  # its own bindings were removed
    cert = normalise(packets)
    assert RTT_SUBKEY in subkey_ids(cert)
    (component,) = (c for c in cert.subkeys.values()
                    if parse_public_key(c.packet.body).key_id.hex() == RTT_SUBKEY)
    primary = parse_public_key(cert.primary.packet.body)
    (binding,) = (parse_signature(s.body) for s in component.signatures)
    assert binding.sig_type == SigType.SUBKEY_BINDING
    assert verify_binding(primary, binding, component.packet)
    # The full file loses nothing and gains nothing: its misfiled copies are duplicates.
    assert subkey_ids(normalise(raw_key("rtt-140.asc"))) == subkey_ids(cert)


def test_user_id_self_signatures_filed_under_other_user_ids_are_moved() -> None:
    cert = normalise(lp_variant())
    assert DEMON_UID in cert.user_ids
    primary = parse_public_key(cert.primary.packet.body)
    sigs = [parse_signature(s.body) for s in cert.user_ids[DEMON_UID].signatures]
    own = [s for s in sigs if claims_self(s, primary)]
    assert own and all(verify_binding(primary, s, cert.user_ids[DEMON_UID].packet) for s in own)
    assert SigType.CERT_REVOCATION in {s.sig_type for s in own}
    demon = next(u for u in key_view(cert).user_ids if u.user_id == DEMON_UID)
    assert demon.revoked  # as gpg --import shows it (uid:r)
    # Moving never changes the correctly filed key.
    assert normalise(raw_key("lp1195901.asc")).user_ids.keys() == cert.user_ids.keys()


def test_relocation_does_not_depend_on_upload_order() -> None:
    packets = rtt_variant()
    groups: list[list[Packet]] = []
    for packet in packets[1:]:
        if packet.tag == Tag.SIGNATURE and groups:
            groups[-1].append(packet)
        else:
            groups.append([packet])
    direct = groups.pop(0) if groups[0][0].tag == Tag.SIGNATURE else []
    for seed in range(3):
        random.Random(seed).shuffle(groups)
        shuffled = [packets[0], *direct, *(p for group in groups for p in group)]
        assert normalise(shuffled) == normalise(packets)


def test_the_hash_budget_bounds_the_search() -> None:
    # The user ID's 19 self-signatures are filed under the 4 other user IDs; trying them in
    # canonical order needs 8 candidate hashes. With fewer, the rest are dropped (the budget
    # is deterministic, so the result still does not depend on the upload order).
    full = normalise(lp_variant())
    assert normalise(lp_variant(), Limits(relocation_hashes=8)) == full
    partly = normalise(lp_variant(), Limits(relocation_hashes=7))
    assert partly.user_ids[DEMON_UID].signatures < full.user_ids[DEMON_UID].signatures
    assert DEMON_UID not in normalise(lp_variant(), Limits(relocation_hashes=1)).user_ids


def test_a_binding_swapped_between_user_id_and_subkey_is_not_moved() -> None:
    # gpg --import moves these across kinds; Hockeypuck (and the corpus README) reject the key.
    with pytest.raises(KeyRejected, match="no valid self-signature"):
        normalise(raw_key("snowcrash_evaporated.asc"))


def test_forged_candidates_count_against_bad_self_signatures() -> None:
    # Copies of a real certification of user ID Y with a damaged signature value: the left 16
    # bits still match Y, so each one filed under user ID X fails there and then costs a
    # public-key operation on Y. Both failures count against the budget.
    packets = list(raw_key("lp1195901.asc"))
    primary = parse_public_key(packets[0].body)
    x = next(i for i, p in enumerate(packets) if p.tag == Tag.USER_ID and b"exim.org" in p.body)
    target = next(p for p in packets if p.tag == Tag.USER_ID and p.body == DEMON_UID)
    real = next(
        p for p in packets
        if p.tag == Tag.SIGNATURE and parse_signature(p.body).sig_type == SigType.POSITIVE_CERT
        and claims_self(parse_signature(p.body), primary)
        and verify_binding(primary, parse_signature(p.body), target)
    )
    forged = [Packet(Tag.SIGNATURE, real.body[:-1] + bytes([real.body[-1] ^ n])) for n in range(1, 6)]
    assert all(not verify_binding(primary, parse_signature(f.body), target) for f in forged)
    upload = packets[: x + 1] + forged + packets[x + 1 :]
    baseline = normalise(packets)
    assert normalise(upload) == baseline  # within the default budget they are just dropped
    # lp1195901 itself has 25 misfiled copies that fail where they are filed (and are skipped
    # by relocation, being filed correctly elsewhere too): 25 + 5 + 5 failures in all.
    assert normalise(upload, Limits(bad_self_signatures=35)) == baseline
    with pytest.raises(KeyRejected, match="bad_self_signatures"):
        normalise(upload, Limits(bad_self_signatures=34))


@pytest.mark.gpg
@pytest.mark.skipif(GPG is None, reason="gpg is not installed (apt-get install gnupg)")
@pytest.mark.parametrize("variant", [rtt_variant, lp_variant])
def test_user_ids_and_subkeys_match_gpg_import(
    variant: Callable[[], list[Packet]], tmp_path: Path
) -> None:
    packets = variant()
    path = tmp_path / "key.gpg"
    path.write_bytes(b"".join(p.encode() for p in packets))
    with gnupg_home() as home:
        imported = gpg(home, "--import", str(path))
        assert imported.returncode == 0, imported.stderr
        assert b"signatures reordered" in imported.stderr
        listed = gpg(home, "--list-keys", "--with-colons", "--fixed-list-mode")
    cert = normalise(packets)
    (seen,) = parse(listed.stdout).values()
    assert structure_differences(cert, seen) == []


# gpg --import moves bindings across kinds too; meshkp and Hockeypuck reject this key.
_IMPORT_DIFFERS = {"snowcrash_evaporated.asc"}


@pytest.mark.gpg
@pytest.mark.skipif(GPG is None, reason="gpg is not installed (apt-get install gnupg)")
@pytest.mark.parametrize("name", [n for n in GPG_COMPARABLE if n not in _IMPORT_DIFFERS])
def test_corpus_matches_gpg_import(name: str) -> None:
    """test_index compares with `gpg --show-keys`; `gpg --import` reorders, and agrees too."""
    certs = {c.fingerprint.hex().upper(): c for c in parse_keytext(fixture(name))
             if isinstance(c, Certificate)}
    with gnupg_home() as home:
        gpg(home, "--import", str(FIXTURES / name))
        listing = parse(gpg(home, "--list-keys", "--with-colons", "--fixed-list-mode").stdout)
    for fingerprint, seen in listing.items():
        if seen.pub[1] != b"i":
            assert fingerprint in certs
    listed = [c for fp, c in certs.items() if fp in listing]
    assert all_differences(listed, listing) == {}
