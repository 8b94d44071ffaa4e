"""Node identity: persisted 0600, stable id derived from the public key, configurable id."""

import hashlib
import os
import re
import stat
from pathlib import Path

import pytest

from meshkp.errors import ConfigError
from meshkp.net.identity import (
    IDENTITY_FILE,
    NodeIdentity,
    derive_node_id,
    load_or_create_identity,
    validate_node_id,
    verify_signature,
)


def test_identity_is_created_0600_and_stable_across_loads(tmp_path: Path) -> None:
    first = load_or_create_identity(tmp_path)
    path = tmp_path / IDENTITY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    second = load_or_create_identity(tmp_path)
    assert first.node_id == second.node_id
    assert first.public_key == second.public_key
    assert first.node_id == derive_node_id(first.public_key)
    # The derived id is the first 16 lowercase hex digits of SHA-256 over the raw 32-byte key.
    assert len(first.public_key) == 32
    assert re.fullmatch(r"[0-9a-f]{16}", first.node_id)
    assert first.node_id == hashlib.sha256(first.public_key).hexdigest()[:16]
    assert not first.configured


def test_distinct_data_dirs_get_distinct_ids(tmp_path: Path) -> None:
    a = load_or_create_identity(tmp_path / "a")
    b = load_or_create_identity(tmp_path / "b")
    assert a.node_id != b.node_id


def test_configured_id_overrides_but_keeps_the_key(tmp_path: Path) -> None:
    derived = load_or_create_identity(tmp_path)
    named = load_or_create_identity(tmp_path, node_id="eu-west-1")
    assert named.node_id == "eu-west-1" and named.configured
    assert named.public_key == derived.public_key


@pytest.mark.parametrize("bad", ["", "-x", "a b", "x" * 65, "é", "a/b"])
def test_invalid_configured_ids_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError):
        validate_node_id(bad)


def test_corrupt_identity_is_an_error_not_silently_replaced(tmp_path: Path) -> None:
    path = tmp_path / IDENTITY_FILE
    path.write_text("garbage\n")
    with pytest.raises(ConfigError):
        load_or_create_identity(tmp_path)
    assert path.read_text() == "garbage\n"


def test_signatures_verify_only_for_the_right_key_and_message() -> None:
    ident, other = NodeIdentity.generate(), NodeIdentity.generate()
    sig = ident.sign(b"alive inc=3")
    assert len(sig) == 64
    assert verify_signature(ident.public_key, sig, b"alive inc=3")
    assert not verify_signature(ident.public_key, sig, b"alive inc=4")
    assert not verify_signature(other.public_key, sig, b"alive inc=3")
    assert not verify_signature(b"short", sig, b"alive inc=3")
    assert not verify_signature(ident.public_key, b"short", b"alive inc=3")
