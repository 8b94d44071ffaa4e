"""The error hierarchy: one base, specific subclasses; only the HTTP layer maps them to status codes."""


class MeshkpError(Exception):
    """Base of every error meshkp raises on purpose."""


class ConfigError(MeshkpError):
    """A configuration value, or a relation between values, is invalid."""


class OpenPGPError(MeshkpError):
    """Input is not acceptable OpenPGP data; the message says what and where."""


class MalformedPacket(OpenPGPError):
    """Packet framing or a packet body cannot be parsed."""


class ArmorError(OpenPGPError):
    """ASCII armor is broken (bad base64, CRC24 mismatch, missing footer)."""


class UnsupportedAlgorithm(OpenPGPError):
    """A signature or key uses an algorithm meshkp cannot verify."""


class KeyRejected(OpenPGPError):
    """A whole certificate is refused (e.g. no valid self-signature); `reason` is operator-facing."""

    def __init__(self, reason: str, fingerprint: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.fingerprint = fingerprint


class LimitExceeded(MeshkpError):
    """Input exceeds a configured bound; `limit` names the config field to raise."""

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit

    def __reduce__(self) -> "tuple[type[LimitExceeded], tuple[str, str]]":
        # Raised in parse worker processes (meshkp/keys/parse.py): the default pickling
        # rebuilds from args alone, which lack `limit`, and the pool breaks on the TypeError.
        return (type(self), (str(self), self.limit))


class Overloaded(MeshkpError):
    """The node cannot take this request now (a shared bound is full); retry in a few seconds."""


class RequestTimedOut(MeshkpError):
    """The client did not send its request body within the read deadline."""


class StoreError(MeshkpError):
    """The key store failed (I/O, corruption, closed)."""


class StoreClosed(StoreError):
    """The store was used after close(); the caller must open it again (or is shutting down)."""


class StoreFull(StoreError):
    """The disk under the store is full: nothing was written; reads go on. HTTP: 507."""


class StoreCorrupt(StoreError):
    """The store's files are damaged; the message says how to repair or replace the data dir."""


class StoreUsageError(StoreError):
    """A caller passed the store something it cannot hold (type, size, shape); nothing was changed."""


class StoreInUse(StoreError):
    """Another process (a running node) holds the data directory's LevelDB lock."""


class WireError(MeshkpError):
    """A frame from a peer could not be decrypted, decoded or validated; it is dropped and counted."""

    # The `reason` label of the frames_dropped counter; subclasses narrow it.
    reason: str = "decode"


class FrameTooLarge(WireError):
    """A frame exceeds the transport's size bound; it was refused before decoding."""

    reason = "oversize"


class DecryptError(WireError):
    """A frame did not open with any key of the cluster keyring (wrong key, or tampered)."""

    reason = "decrypt"


class UnsupportedWireVersion(WireError):
    """A frame carries a wire version this node does not speak."""

    reason = "version"


class UnknownFrameType(WireError):
    """A frame decoded fine but its type code has no handler on this transport."""

    reason = "unknown_type"


class BadSignature(WireError):
    """A frame's (or a membership statement's) Ed25519 signature does not verify."""

    reason = "signature"


class IdentityMismatch(WireError):
    """A frame claims a sender id that does not belong to the key that signed it."""

    reason = "identity"


class ReplayedFrame(WireError):
    """A frame was seen already, or is older than its sender's replay window."""

    reason = "replay"


class FrameClockSkew(WireError):
    """A frame's send time is further from our clock than the configured skew bound."""

    reason = "clock"


class DiscoveryError(MeshkpError):
    """A discovery source (DNS, mDNS) gave an unusable answer; joining retries or goes on alone."""


class PeerUnreachable(MeshkpError):
    """A peer could not be reached or did not answer in time; the caller decides whether to retry."""


class NotFound(MeshkpError):
    """A lookup matched nothing."""


class InvalidRequest(MeshkpError):
    """A client request cannot be understood (bad search string, missing keytext); says why."""


class Unsupported(MeshkpError):
    """A well-formed request asks for something this server does not implement (HKP op, option)."""


class ReplicationError(MeshkpError):
    """Replication with a peer failed (protocol violation, refused request); the round is abandoned."""


class InvalidPeerRecord(ReplicationError):
    """A record received from a peer failed validation; nothing of its batch was stored."""


class ConsistencyNotReached(ReplicationError):
    """Fewer nodes than the requested x-consistency merged a write before the timeout."""

    def __init__(self, message: str, acked: int, needed: int) -> None:
        super().__init__(message)
        self.acked = acked
        self.needed = needed


class InvalidSettings(ConfigError):
    """Settings from a config file, the environment or flags are invalid; `errors` lists each.

    Every entry is a line that names where the value came from (FILE:LINE, the variable or the
    flag), the key and what is wrong, so one run shows every mistake of a file at once.
    """

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class ControlError(MeshkpError):
    """The control plane (Raft log of cluster policy) refused or could not do an operation."""


class NotLeader(ControlError):
    """A proposal reached a node that is not the leader; `leader` is the last known one ("" if none)."""

    def __init__(self, message: str, leader: str = "") -> None:
        super().__init__(message)
        self.leader = leader


class ProposalRefused(ControlError):
    """The leader cannot take this proposal now (backlog full, a membership change in progress...)."""


class InvalidCommand(ControlError):
    """A control-plane command is malformed or breaks a policy rule; nothing was proposed."""


class RaftUsageError(ControlError):
    """A driver broke the core's contract (Ready order, compaction beyond applied...): a bug."""


class ControlUnavailable(ControlError):
    """The control plane cannot commit now: no leader known, no majority, or no answer in time.

    `leader` is the last known leader ("" if none); `retry_after` the seconds to wait before
    retrying (an election usually settles within it). HTTP: 503 with Retry-After.
    """

    def __init__(self, message: str, leader: str = "", retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.leader = leader
        self.retry_after = retry_after


class BackupError(MeshkpError):
    """A backup cannot be taken or restored (corrupt or truncated file, data dir not empty...)."""
