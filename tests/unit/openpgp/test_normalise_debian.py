"""All 905 keys of debian-keyring normalise, and look exactly as GnuPG shows them.

Compared per fingerprint with `gpg --show-keys` (which runs gpg's import checks: a user
ID without a valid self-signature is not shown): user IDs, subkeys, and the index data
(validity, creation and expiry dates, bits, primary user ID).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from meshkp.openpgp.certificate import Certificate
from meshkp.openpgp.keytext import Rejected, iter_keytext
from tests.gpgtools import GPG, gnupg_home, gpg
from tests.unit.openpgp.gpgcolons import GpgKey, all_differences, parse, show_keys
from tests.unit.openpgp.keyfiles import DEBIAN_KEYRING

pytestmark = [
    pytest.mark.gpg,
    pytest.mark.skipif(GPG is None, reason="gpg is not installed (apt-get install gnupg)"),
    pytest.mark.skipif(
        not DEBIAN_KEYRING.exists(),
        reason="debian-keyring is not installed (apt-get install debian-keyring)",
    ),
]


def normalise_keyring(path: Path) -> tuple[list[Certificate], list[Rejected], float]:
    start = time.perf_counter()
    items = list(iter_keytext(path.read_bytes()))
    elapsed = time.perf_counter() - start
    certs = [i for i in items if isinstance(i, Certificate)]
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert len(certs) + len(rejected) == len(items)
    return certs, rejected, elapsed


@pytest.fixture(scope="module")
def debian() -> tuple[list[Certificate], list[Rejected], dict[str, GpgKey]]:
    certs, rejected, elapsed = normalise_keyring(DEBIAN_KEYRING)
    print(f"\nnormalised {len(certs) + len(rejected)} debian keys in {elapsed:.2f} s")
    return certs, rejected, show_keys(DEBIAN_KEYRING)


def test_all_905_debian_keys_normalise(debian) -> None:
    certs, rejected, listing = debian
    assert rejected == []
    assert len(certs) == len(listing) == 905


def test_debian_keys_match_gpg_user_ids_subkeys_and_index_data(debian) -> None:
    certs, _, listing = debian
    differences = all_differences(certs, listing)
    assert not differences, dict(list(differences.items())[:3])


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_debian_keyring_matches_gpg_import() -> None:
    """The same comparison against a real `gpg --import` (about 80 s on this machine)."""
    certs, rejected, _ = normalise_keyring(DEBIAN_KEYRING)
    assert rejected == []
    with gnupg_home() as home:
        imported = gpg(home, "--import", str(DEBIAN_KEYRING), timeout=900)
        assert imported.returncode == 0, imported.stderr[-2000:]
        listed = gpg(home, "--list-keys", "--with-colons", "--fixed-list-mode", timeout=300)
    listing = parse(listed.stdout)
    assert len(listing) == 905
    differences = all_differences(certs, listing)
    assert not differences, dict(list(differences.items())[:3])
