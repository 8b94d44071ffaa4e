"""The HKP index view of corpus keys, checked against GnuPG where it can tell."""

from __future__ import annotations

import pytest

from meshkp.openpgp.certificate import Certificate
from meshkp.openpgp.index import key_view, user_ids_in_index_order
from meshkp.openpgp.keytext import SECRET_KEY_REASON, Rejected, parse_keytext
from meshkp.openpgp.keyview import Revocation
from meshkp.openpgp.revocation import RevocationCertificate, apply_revocation
from tests.gpgtools import GPG, gnupg_home, gpg
from tests.unit.openpgp.gpgcolons import all_differences, show_keys
from tests.unit.openpgp.keyfiles import FIXTURES, cert, fixture

# gpg 2.2 predates v6 keys; the v3 key is rejected by normalisation (no self-signature).
GPG_COMPARABLE = sorted(
    p.name
    for p in FIXTURES.glob("*.asc")
    if not p.name.startswith(("pqc-", "slhdsa-", "rfc9580-", "0xd46b7c827"))
) + ["snowcrash.gpg"]

needs_gpg = pytest.mark.skipif(GPG is None, reason="gpg is not installed (apt-get install gnupg)")


@pytest.mark.gpg
@needs_gpg
@pytest.mark.parametrize("name", GPG_COMPARABLE)
def test_index_data_matches_gnupg(name: str) -> None:
    certs = [i for i in parse_keytext(fixture(name)) if isinstance(i, Certificate)]
    listing = show_keys(FIXTURES / name)
    # gpg 2.2 cannot read some files at all ("PGP ARMORED FILE" armor, v5 subkeys): those
    # list nothing. Where it lists keys, we store those it does not call invalid ('i'), and
    # of the invalid ones at most keys without user IDs (gpg wants one; we keep a key with a
    # valid subkey binding, as Hockeypuck does, so its updates and revocations can land).
    if listing:
        ours = {c.fingerprint.hex().upper(): c for c in certs}
        for fingerprint, key in listing.items():
            if key.pub[1] != b"i":
                assert fingerprint in ours
            elif fingerprint in ours:
                assert not ours[fingerprint].user_ids
    differences = all_differences(certs if listing else [], listing)
    assert not differences


def test_primary_user_id_selection_lp1195901() -> None:
    info = key_view(cert("lp1195901.asc"))
    assert info.user_ids[0].text == "Phil Pennock <phil.pennock@spodhuis.org>"
    assert info.user_ids[0].primary
    assert sum(u.primary for u in info.user_ids) == 1
    demon = next(u for u in info.user_ids if u.text == "Phil Pennock <pdp@spodhuis.demon.nl>")
    assert demon.revoked and not demon.primary
    assert key_view(cert("lp1195901_2.asc")).user_ids[0].text == (
        "Phil Pennock <phil.pennock@globnix.org>"
    )
    merged = cert("lp1195901.asc").merge(cert("lp1195901_globnix.asc"))
    assert key_view(merged).user_ids[0].text == "Phil Pennock <phil.pennock@spodhuis.org>"


def test_user_ids_in_index_order_is_the_order_of_the_view() -> None:
    checked = 0
    for path in sorted(FIXTURES.glob("*.asc")):
        for c in (i for i in parse_keytext(path.read_bytes()) if isinstance(i, Certificate)):
            assert user_ids_in_index_order(c) == [u.user_id for u in key_view(c).user_ids], path
            checked += len(c.user_ids) > 1
    assert checked > 10  # keys where the order is a choice


def test_key_facts_of_a_plain_rsa_key() -> None:
    info = key_view(cert("gentoo-l1.asc"))
    assert info.algorithm == 1 and info.algorithm_name == "RSA" and info.bits == 2048
    assert info.key_id.hex() == "2839fe0d796198b1"
    # Hockeypuck TestPrimaryUserIDSig: the newest self-signature's key expiration.
    assert info.expires == 1782907200
    assert not info.revoked and info.expired(1782907199) is False and info.expired(1782907200)
    assert info.user_ids[0].created == 1713678916


def test_v6_key_facts() -> None:
    info = key_view(cert("rfc9580-v6-sample.asc"))
    assert info.version == 6 and info.algorithm_name == "ED25519" and info.bits == 255
    assert info.fingerprint.hex().upper() == (
        "CB186C4F0609A697E4D52DFA6C722B0C1F1E27C18A56708F6525EC27BAD9ACC9"
    )
    assert not info.user_ids and len(info.subkeys) == 1


def test_hard_revocation_from_the_key_itself() -> None:
    info = key_view(cert("test-key-revoked.asc"))
    assert info.revoked and info.hard_revoked
    assert info.revocation == Revocation(1611408186, 0, "")
    assert not info.user_ids[0].revoked  # the user ID's own state


def test_bare_revocation_merged_makes_the_key_revoked() -> None:
    (revocation,) = parse_keytext(fixture("test-rtbf-revoke.asc"))
    assert isinstance(revocation, RevocationCertificate)
    revoked = apply_revocation(cert("test-rtbf.asc"), revocation)
    assert revoked is not None
    info = key_view(revoked)
    assert info.revocation == Revocation(1700606689, 2, "test RTBF revocation")
    assert info.hard_revoked
    assert not key_view(cert("test-rtbf.asc")).revoked


@pytest.mark.parametrize(
    ("code", "hard"), [(None, True), (0, True), (1, False), (2, True), (3, False), (32, True), (110, True)]
)
def test_revocation_reason_hardness(code: int | None, hard: bool) -> None:
    # RFC 9580 §5.2.3.31: only "superseded" (1) and "retired" (3) are soft.
    assert Revocation(0, code, "").hard is hard


def test_user_id_revocation_newer_than_certification() -> None:
    info = key_view(cert("test-key-uid-revoked.asc"))
    states = {u.text: u.revoked for u in info.user_ids}
    assert states == {"uid@example.com": False, "revokeduid@example.com": True}
    assert info.user_ids[0].text == "uid@example.com"


def test_user_id_with_only_its_revocation_left() -> None:
    c = cert("lp1195901.asc")
    demon = b"Phil Pennock <pdp@spodhuis.demon.nl>"
    from meshkp.openpgp.signature import SigType, parse_signature

    component = c.user_ids[demon]
    only_rev = frozenset(
        p for p in component.signatures if parse_signature(p.body).sig_type == SigType.CERT_REVOCATION
    )
    stripped = Certificate(
        c.fingerprint, c.primary, {**c.user_ids, demon: type(component)(component.packet, only_rev)},
        c.user_attributes, c.subkeys,
    )
    uid = next(u for u in key_view(stripped).user_ids if u.user_id == demon)
    assert uid.revoked and uid.created is None and not uid.primary


def test_subkey_facts_lp1195901() -> None:
    subkeys = key_view(cert("lp1195901.asc")).subkeys
    assert len(subkeys) == 7
    assert [s.created for s in subkeys] == sorted(s.created for s in subkeys)
    first = subkeys[0]
    assert first.key_id.hex() == "bd53847773fd5f8d"
    assert (first.algorithm, first.bits, first.expires) == (16, 1024, 1175187315)


@pytest.mark.gpg
@needs_gpg
def test_soft_revocation_and_secret_key_from_real_gnupg() -> None:
    with gnupg_home() as home:
        made = gpg(home, "--passphrase", "", "--quick-gen-key", "Soft <soft@example.org>",
                   "ed25519", "sign", "0")
        assert made.returncode == 0, made.stderr
        public = gpg(home, "--export", "soft@example.org").stdout
        secret = gpg(home, "--pinentry-mode", "loopback", "--passphrase", "",
                     "--export-secret-keys", "soft@example.org").stdout
        listing = gpg(home, "--with-colons", "--list-keys", "soft@example.org").stdout
        fingerprint = next(
            line.split(b":")[9].decode() for line in listing.splitlines() if line.startswith(b"fpr")
        )
        # gpg --gen-revoke only asks its questions on a command fd, not in --batch mode.
        import os
        import subprocess

        env = {**os.environ, "GNUPGHOME": str(home), "LC_ALL": "C"}
        revoke = subprocess.run(
            [GPG or "gpg", "--no-tty", "--command-fd", "0", "--pinentry-mode", "loopback",
             "--passphrase", "", "--gen-revoke", fingerprint],
            input=b"y\n3\nretired\n\ny\n", capture_output=True, env=env, timeout=60, check=False,
        )
        assert revoke.returncode == 0, revoke.stderr
    (key,) = parse_keytext(public)
    assert isinstance(key, Certificate)
    (revocation,) = parse_keytext(revoke.stdout)
    assert isinstance(revocation, RevocationCertificate)
    revoked = apply_revocation(key, revocation)
    assert revoked is not None
    info = key_view(revoked)
    assert info.revoked and not info.hard_revoked
    assert (info.revocation.reason_code, info.revocation.reason_text) == (3, "retired")
    (refused,) = parse_keytext(secret)
    assert refused == Rejected(SECRET_KEY_REASON, fingerprint)
