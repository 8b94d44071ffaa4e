"""Per-node Ed25519 identity, kept in DATA_DIR/node.key; the node id derives from its public key."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.signing

from meshkp.errors import ConfigError
from meshkp.net.secretfile import read_secret_file, write_secret_file

log = logging.getLogger(__name__)

IDENTITY_FILE = "node.key"
SEED_BYTES = 32
SIGNATURE_BYTES = 64

# 16 hex chars = 64 bits of SHA-256: a birthday collision needs ~4 billion nodes, and a short id
# keeps gossip frames small (each broadcast names a node).
DERIVED_ID_CHARS = 16

# Configured ids end up in frames, logs, metrics labels and URLs: keep them short and plain.
_NODE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def derive_node_id(public_key: bytes) -> str:
    """Return the node id that belongs to an Ed25519 public key."""
    return hashlib.sha256(public_key).hexdigest()[:DERIVED_ID_CHARS]


def validate_node_id(node_id: str) -> str:
    """Return node_id if it is a legal configured id, else raise ConfigError."""
    if not _NODE_ID_RE.match(node_id):
        raise ConfigError(
            f"node id {node_id!r} is invalid: use 1-64 characters from A-Z a-z 0-9 . _ - "
            "starting with a letter or digit"
        )
    return node_id


def verify_signature(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Return True iff signature is a valid Ed25519 signature of message by public_key."""
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """A node's signing key and the id it is known by in the cluster."""

    signing_key: nacl.signing.SigningKey
    node_id: str
    # True when --node-id overrode the derived id; peers then cannot check id == hash(key).
    configured: bool = False

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return bytes(self.signing_key.verify_key)

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte detached signature of message."""
        return self.signing_key.sign(message).signature

    @classmethod
    def generate(cls, node_id: str | None = None) -> NodeIdentity:
        """Return a fresh in-memory identity (tests and simulations)."""
        return cls._from_key(nacl.signing.SigningKey.generate(), node_id)

    @classmethod
    def _from_key(cls, key: nacl.signing.SigningKey, node_id: str | None) -> NodeIdentity:
        if node_id is None:
            return cls(key, derive_node_id(bytes(key.verify_key)), configured=False)
        return cls(key, validate_node_id(node_id), configured=True)


def _encode_seed(seed: bytes) -> str:
    return (
        "# meshkp node identity (Ed25519 seed, base64). Secret: keep mode 0600.\n"
        + base64.b64encode(seed).decode("ascii")
        + "\n"
    )


def _decode_seed(text: str, path: Path) -> bytes:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if len(lines) != 1:
        raise ConfigError(f"identity file {path} must hold exactly one base64 line")
    try:
        seed = base64.b64decode(lines[0], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"identity file {path} is not base64") from exc
    if len(seed) != SEED_BYTES:
        raise ConfigError(f"identity file {path} holds {len(seed)} bytes, not {SEED_BYTES}")
    return seed


def load_or_create_identity(data_dir: Path, node_id: str | None = None) -> NodeIdentity:
    """Load DATA_DIR/node.key, creating it (0600) on first start; node_id overrides the derived id.

    A corrupt file is an error, never silently replaced: a new key would change the node's id.
    """
    path = data_dir / IDENTITY_FILE
    if path.exists():
        seed = _decode_seed(read_secret_file(path, "node identity"), path)
        key = nacl.signing.SigningKey(seed)
        created = False
    else:
        key = nacl.signing.SigningKey.generate()
        write_secret_file(path, _encode_seed(bytes(key)), overwrite=False)
        created = True
    identity = NodeIdentity._from_key(key, node_id)
    log.info("event=identity_loaded path=%s node_id=%s created=%s configured=%s",
             path, identity.node_id, created, identity.configured)
    return identity
