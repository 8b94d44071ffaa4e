"""Errors of the crdt package: one base, specific subclasses.

crdt/ sits below meshkp/ and must not import it, so this base is separate from
meshkp.errors.MeshkpError; callers that take peer bytes catch `CrdtError` and count or wrap it.
"""


class CrdtError(Exception):
    """Base of every error the crdt package raises on purpose."""


class DecodeError(CrdtError):
    """Bytes or a decoded object are not a valid encoding of the expected type; nothing changed."""


class CrdtConfigError(CrdtError):
    """A geometry or protocol parameter is invalid; the message names the field and the bound."""


class ClockDriftError(CrdtError):
    """A received HLC timestamp is further ahead of the local wall clock than allowed."""


class MerkleError(CrdtError):
    """A Merkle tree argument or stored node is invalid (bad id/digest length, corrupt node)."""


class DiffProtocolError(CrdtError):
    """A Merkle diff message breaks the protocol (bad shape, unrequested path, no progress)."""
