"""Bounds of the replicated policy state, each with what it protects against.

These are constants, not config: every node must apply the log identically, so a bound that
refuses a command on one node must refuse it on all. Together they keep a snapshot of the
whole state below one frame (MAX_SNAPSHOT_BYTES, ~7.7 MiB; tests/unit/control/test_policy_snapshot.py
builds the largest state and checks it fits).
"""

from __future__ import annotations

# Blacklisted fingerprints. Every node checks each upload against the list and holds it in
# memory; real keyserver blacklists hold tens to hundreds. 10,000 x (fingerprint + reason +
# actor) is at most ~4 MB.
MAX_BLACKLIST = 10_000
# Fingerprints in one blacklist command: one entry of max_entry_bytes (512 KiB) with reasons.
MAX_BLACKLIST_BATCH = 1000
# Audit entries kept in the state (the most recent; GET /cluster/audit pages through them).
# Older ones are dropped from the state but stay in each node's log lines. ~1.2 MB at most.
MAX_AUDIT = 2000
# Conflict resolutions remembered (by conflict id) so a repeated resolve is refused by name.
MAX_RESOLUTIONS = 2000
# Named admin identities, and per-node routing entries.
MAX_ADMINS = 64
# Admin public keys remembered (PolicyState.admin_keys), current and replaced: a delete signed
# by an admin stays provable after the admin's token was rotated. One per PutAdmin; beyond it
# a PutAdmin is refused (an admin rotated 4,096 times is a script gone wrong).
MAX_ADMIN_KEYS = 4096
MAX_ROUTES = 1024
# Per-reason conflict rule overrides of one conflict kind.
MAX_RULE_REASONS = 64
# Version vector entries a resolution carries (one per node that ever wrote the key).
MAX_COVERS = 1024

# Text sizes. Reasons are operator-facing sentences; names and actors are identifiers.
MAX_REASON_CHARS = 256
MAX_NAME_CHARS = 64
MAX_ACTOR_CHARS = 128
MAX_ZONE_CHARS = 64
MAX_CONFLICT_ID_CHARS = 128
# One audit entry's free-text detail (what the command did, or why it was ignored).
MAX_DETAIL_CHARS = 256
# Routing weight: a load balancer's relative share (0: none).
MAX_WEIGHT = 10_000
# A fingerprint is 16 (v3), 20 (v4) or 32 (v6) bytes (RFC 9580 §5.5.4).
FINGERPRINT_LENGTHS = frozenset({16, 20, 32})
# An admin token is stored as its SHA-256.
TOKEN_HASH_BYTES = 32
# An admin's Ed25519 public key (meshkp/keys/adminkey.py).
ADMIN_KEY_BYTES = 32
# A resolution's signed proof: two keys, two signatures, its texts and the covers vector
# (MAX_COVERS entries of an id and a counter, ~80 bytes each).
MAX_PROOF_BYTES = 96 * 1024
