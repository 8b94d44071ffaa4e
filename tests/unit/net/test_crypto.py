"""Cluster keyring: sealing, rotation, wrong keys, and the key file format."""

import base64
import os
import stat
from pathlib import Path

import pytest

from meshkp.errors import ConfigError, DecryptError
from meshkp.net.crypto import (
    MAX_KEYS,
    SEAL_OVERHEAD,
    Keyring,
    format_key_file,
    generate_key,
    load_keyring,
    parse_key_file,
    write_key_file,
)


def test_seal_open_round_trip_and_overhead() -> None:
    ring = Keyring([generate_key()])
    sealed = ring.seal(b"hello")
    assert len(sealed) == 5 + SEAL_OVERHEAD
    assert ring.open(sealed) == b"hello"
    assert ring.seal(b"hello") != sealed  # fresh nonce every time


def test_rotation_old_key_still_opens_new_primary_seals() -> None:
    old, new = generate_key(), generate_key()
    old_ring = Keyring([old])
    # Step 1: every node installs `new` as secondary: still seals with old, opens both.
    step1 = Keyring([old, new])
    # Step 2: `new` becomes primary, `old` kept for stragglers.
    step2 = Keyring([new, old])
    assert step1.open(old_ring.seal(b"a")) == b"a"
    assert step2.open(old_ring.seal(b"b")) == b"b"
    assert step1.open(step2.seal(b"c")) == b"c"
    # Step 3: old removed: frames from a node that never upgraded are refused.
    final = Keyring([new])
    with pytest.raises(DecryptError):
        final.open(old_ring.seal(b"d"))
    assert final.open(step2.seal(b"e")) == b"e"


def test_wrong_key_and_tampering_fail_typed() -> None:
    ring, other = Keyring([generate_key()]), Keyring([generate_key()])
    with pytest.raises(DecryptError) as info:
        ring.open(other.seal(b"x"))
    assert info.value.reason == "decrypt"
    sealed = bytearray(ring.seal(b"payload"))
    sealed[-1] ^= 1
    with pytest.raises(DecryptError):
        ring.open(bytes(sealed))
    for cut in (0, 3, SEAL_OVERHEAD - 1):
        with pytest.raises(DecryptError):
            ring.open(bytes(sealed[:cut]))


def test_replace_switches_primary() -> None:
    a, b = generate_key(), generate_key()
    ring = Keyring([a])
    ring.replace([b, a])
    assert Keyring([b]).open(ring.seal(b"x")) == b"x"


def test_keyring_validation() -> None:
    with pytest.raises(ConfigError):
        Keyring([])
    with pytest.raises(ConfigError):
        Keyring([b"short"])
    key = generate_key()
    with pytest.raises(ConfigError):
        Keyring([key, key])
    with pytest.raises(ConfigError):
        Keyring([generate_key() for _ in range(MAX_KEYS + 1)])


def test_key_file_round_trip_with_comments() -> None:
    keys = [generate_key(), generate_key()]
    text = format_key_file(keys)
    assert parse_key_file(text) == keys
    assert parse_key_file("\n# c\n  " + base64.b64encode(keys[1]).decode() + "  \n") == keys[1:]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "not base64!!\n",
                                  base64.b64encode(b"x" * 31).decode()])
def test_bad_key_files_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_key_file(text)


def test_bad_key_file_error_does_not_echo_the_line() -> None:
    secretish = "A" * 43 + "!"
    with pytest.raises(ConfigError) as info:
        parse_key_file(secretish)
    assert secretish not in str(info.value)


def test_write_key_file_is_0600_and_refuses_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "cluster.key"
    keys = [generate_key()]
    write_key_file(path, keys, overwrite=False)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_keyring(path).primary_id == Keyring(keys).primary_id
    with pytest.raises(ConfigError):
        write_key_file(path, [generate_key()], overwrite=False)
    assert parse_key_file(path.read_text()) == keys  # untouched
    write_key_file(path, [generate_key()], overwrite=True)
    assert parse_key_file(path.read_text()) != keys
    assert [p.name for p in tmp_path.iterdir()] == ["cluster.key"]  # no temp files left


def test_load_missing_key_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="meshkp keygen"):
        load_keyring(tmp_path / "nope.key")
