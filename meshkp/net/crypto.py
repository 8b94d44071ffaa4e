"""Cluster keyring: NaCl SecretBox sealing with one primary key and older keys still accepted.

Sealed layout (what goes on the wire, UDP datagram or TCP frame body):

    +--------+----------+-----------------------------------+
    | key id | nonce    | XSalsa20-Poly1305 ciphertext + MAC |
    | 4 B    | 24 B     | len(frame) + 16                   |
    +--------+----------+-----------------------------------+

The key id is a 4-byte BLAKE2b hash of the key: it says which key to try, so a frame sealed
with an unknown key costs one table lookup instead of one MAC check per installed key (with
8 MiB TCP frames that matters), and operators can see *which* foreign key is knocking.
It reveals nothing about the key itself. Nonces are random: 24 bytes make collisions negligible
(NaCl's documented use of SecretBox).

Rotation follows memberlist's keyring (keyring.go): install the new key everywhere as a
secondary, then make it primary everywhere, then remove the old one. See docs/cluster-security.md.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Sequence
from pathlib import Path

import nacl.encoding
import nacl.exceptions
import nacl.hash
import nacl.secret
import nacl.utils

from meshkp.errors import ConfigError, DecryptError
from meshkp.net.secretfile import read_secret_file, write_secret_file

log = logging.getLogger(__name__)

KEY_BYTES = nacl.secret.SecretBox.KEY_SIZE  # 32
KEY_ID_BYTES = 4
NONCE_BYTES = nacl.secret.SecretBox.NONCE_SIZE  # 24
MAC_BYTES = nacl.secret.SecretBox.MACBYTES  # 16
SEAL_OVERHEAD = KEY_ID_BYTES + NONCE_BYTES + MAC_BYTES  # 44

# Keys installed at once. Rotation needs two or three; more is a forgotten clean-up, and every
# extra key is one more secret that can leak.
MAX_KEYS = 16

_KEY_ID_PERSON = b"meshkp-keyid-v1"


def generate_key() -> bytes:
    """Return a fresh random 32-byte cluster key."""
    return nacl.utils.random(KEY_BYTES)


def key_id(key: bytes) -> bytes:
    """Return the 4-byte public identifier of a key (safe to log)."""
    return nacl.hash.blake2b(
        key, digest_size=KEY_ID_BYTES, person=_KEY_ID_PERSON, encoder=nacl.encoding.RawEncoder
    )


class Keyring:
    """An ordered set of cluster keys: the first seals, all of them open."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        self._install(keys)

    def _install(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ConfigError("a keyring needs at least one key; run `meshkp keygen FILE`")
        if len(keys) > MAX_KEYS:
            raise ConfigError(f"a keyring holds at most {MAX_KEYS} keys, got {len(keys)}")
        boxes: dict[bytes, nacl.secret.SecretBox] = {}
        for position, key in enumerate(keys, start=1):
            if len(key) != KEY_BYTES:
                raise ConfigError(f"key {position} is {len(key)} bytes, must be {KEY_BYTES}")
            kid = key_id(key)
            if kid in boxes:
                raise ConfigError(f"key {position} is listed twice (key id {kid.hex()})")
            boxes[kid] = nacl.secret.SecretBox(key)
        # One assignment: big frames are sealed and opened in worker threads meanwhile.
        self._state = (key_id(keys[0]), boxes)

    def replace(self, keys: Sequence[bytes]) -> None:
        """Install a new key list atomically (e.g. after the key file was edited for rotation)."""
        self._install(keys)

    @property
    def _primary_id(self) -> bytes:
        return self._state[0]

    @property
    def _boxes(self) -> dict[bytes, nacl.secret.SecretBox]:
        return self._state[1]

    @property
    def primary_id(self) -> str:
        """Hex id of the sealing key, for logs and /cluster/status."""
        return self._primary_id.hex()

    @property
    def key_ids(self) -> list[str]:
        """Hex ids of all installed keys, primary first."""
        return [kid.hex() for kid in self._boxes]

    def seal(self, plaintext: bytes) -> bytes:
        """Encrypt and authenticate with the primary key."""
        primary, boxes = self._state
        return primary + bytes(boxes[primary].encrypt(plaintext))

    def open(self, sealed: bytes) -> bytes:
        """Verify and decrypt with the key named in the envelope; raise DecryptError otherwise."""
        if len(sealed) < SEAL_OVERHEAD:
            raise DecryptError(f"sealed frame is {len(sealed)} bytes, shorter than the envelope")
        kid = sealed[:KEY_ID_BYTES]
        box = self._boxes.get(kid)
        if box is None:
            raise DecryptError(f"frame sealed with unknown key id {kid.hex()}")
        try:
            return box.decrypt(sealed[KEY_ID_BYTES:])
        except nacl.exceptions.CryptoError as exc:
            raise DecryptError(f"frame with key id {kid.hex()} failed authentication") from exc


def parse_key_file(text: str) -> list[bytes]:
    """Parse a key file: one base64 key per line, first = primary; '#' lines and blanks skipped."""
    keys: list[bytes] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError) as exc:
            # Never echo the line: it is (almost) a secret.
            raise ConfigError(f"key file line {lineno} is not base64") from exc
        if len(key) != KEY_BYTES:
            raise ConfigError(
                f"key file line {lineno} decodes to {len(key)} bytes, not {KEY_BYTES}"
            )
        keys.append(key)
    if not keys:
        raise ConfigError("key file holds no key; run `meshkp keygen FILE`")
    return keys


def format_key_file(keys: Sequence[bytes]) -> str:
    """Render keys in key-file format, primary first."""
    lines = [
        "# meshkp cluster keyring: one base64 32-byte key per line; the first line is the primary.",
        "# Keep this file secret (mode 0600). See docs/cluster-security.md for rotation.",
    ]
    lines += [base64.b64encode(key).decode("ascii") for key in keys]
    return "\n".join(lines) + "\n"


def load_keyring(path: Path) -> Keyring:
    """Read a key file into a Keyring."""
    if not path.exists():
        raise ConfigError(f"cluster key file {path} does not exist; create it with "
                          f"`meshkp keygen {path}` and copy it to every node")
    keyring = Keyring(parse_key_file(read_secret_file(path, "cluster key")))
    log.info("event=keyring_loaded path=%s keys=%d primary=%s", path, len(keyring.key_ids),
             keyring.primary_id)
    return keyring


def reload_keyring(keyring: Keyring, path: Path) -> bool:
    """Re-read the key file into `keyring` (SIGHUP: rotation without a restart).

    A file that does not parse leaves the installed keys as they were (logged), so a half-edited
    file never cuts the node off. True if the new keys are installed.
    """
    try:
        keyring.replace(parse_key_file(read_secret_file(path, "cluster key")))
    except (ConfigError, OSError) as exc:
        log.error("event=keyring_reload_failed path=%s error=%s action=kept_old_keys", path, exc)
        return False
    log.info("event=keyring_reloaded path=%s keys=%d primary=%s", path, len(keyring.key_ids),
             keyring.primary_id)
    return True


def write_key_file(path: Path, keys: Sequence[bytes], *, overwrite: bool) -> None:
    """Write keys to path in key-file format, mode 0600."""
    Keyring(keys)  # validate before touching the disk
    write_secret_file(path, format_key_file(keys), overwrite=overwrite)
