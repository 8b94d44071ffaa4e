"""An admin's signing key, derived from its token, so a delete can prove its admin to any node.

Admins have bearer tokens, not key pairs, and the node that checks a token could before only
vouch for the admin it named. Now the Ed25519 key of an admin is derived from its token (a
hash of the token under a context of its own), and the control plane's admin table keeps the
public key beside the token's SHA-256 (`PolicyState.admin_keys`). The node that receives the
token derives the private key for that one request and signs the delete with it
(meshkp/keys/deleteproof.py); every receiver checks the signature against the key its admin
table names. A node holding the cluster key but no admin token cannot make that signature.

What this exposes is what the table already did: the public key, like the SHA-256, lets a
token be guessed offline, so admin tokens must be random (32 bytes in hex), not passwords.
"""

from __future__ import annotations

import hashlib

import nacl.signing

_CONTEXT = b"meshkp-admin-key-v1\x00"  # domain separation: the seed is no other hash of it


def admin_signing_key(token: str | bytes) -> nacl.signing.SigningKey:
    """The admin's Ed25519 key pair for `token` (the same on every node for the same token)."""
    raw = token.encode("utf-8", "surrogateescape") if isinstance(token, str) else token
    return nacl.signing.SigningKey(hashlib.sha256(_CONTEXT + raw).digest())


def admin_public_key(token: str | bytes) -> bytes:
    """The public key the admin table keeps for `token`."""
    return bytes(admin_signing_key(token).verify_key)
