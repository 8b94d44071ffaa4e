"""Proofs: this node signs its own membership statements, and checks everyone else's.

A statement (Alive, Leave: by the member itself; Suspect, Dead: by the accuser) carries the
Ed25519 signature of the node it speaks for (meshkp/swim/messages.py). The SWIM core never sees
crypto: the driver passes what it sends through `sign` (our statements get our signature) and
what it receives through `check` (a statement whose signer's key does not verify it is removed,
counted as reason "statement" and logged). So a node holding the cluster key but not n1's
identity cannot refute, leave or announce for n1, nor accuse anyone in n1's name.

Messages that name their own sender (a Ping's or PingReq's `source`, a PushPull's `source`) must
name the node whose key signed the frame: one that names another is dropped as "identity", as a
frame claiming another sender is (meshkp/net/frameauth.py). Acks are bound in the core, which
knows whom it probed and whom it asked to probe (meshkp/swim/probe.py).

Ed25519 verify costs ~50 us and each statement reaches a node several times (it is
retransmitted, and relayed by several peers); verified signatures are remembered, so each costs
one verify per node. Our own signatures are remembered too (a statement is sent many times).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict

from meshkp.net.addr import Addr, format_addr
from meshkp.net.identity import NodeIdentity, verify_signature
from meshkp.net.peerkeys import PeerKeys
from meshkp.net.stats import NetStats
from meshkp.swim.messages import (
    Alive,
    Compound,
    Dead,
    Leave,
    MemberRecord,
    Message,
    Ping,
    PingReq,
    PushPull,
    Statement,
    Suspect,
)

log = logging.getLogger(__name__)

# Signatures remembered each way. A statement lives in the broadcast queue for a few dozen
# sends and in push-pulls while its member's state holds: 8,192 covers several full tables.
CACHE_ENTRIES = 8192


class Proofs:
    """The signing and checking of membership statements for one node."""

    def __init__(self, identity: NodeIdentity, peers: PeerKeys, stats: NetStats) -> None:
        self.identity = identity
        self.peers = peers
        self.stats = stats
        self._signed: OrderedDict[bytes, bytes] = OrderedDict()  # signed bytes -> our signature
        self._verified: OrderedDict[bytes, bytes] = OrderedDict()  # signature -> signed bytes
        self.verifies = 0  # Ed25519 verifications done (the rest came from the cache)

    # ---- outgoing ----

    def sign(self, message: Message) -> Message:
        """`message` with every unsigned statement of ours signed (a Compound part by part)."""
        if isinstance(message, Compound):
            return Compound(tuple(self._sign_one(m) for m in message.messages))
        if isinstance(message, PushPull):
            rows = tuple(self._sign_row(r) for r in message.members)
            return dataclasses.replace(message, members=rows)
        return self._sign_one(message)

    def _sign_one(self, message: Message) -> Message:
        if isinstance(message, Alive | Suspect | Dead | Leave):
            return self._signed_statement(message)
        return message

    def _signed_statement(self, s: Statement) -> Statement:
        if s.sig or s.signer != self.identity.node_id:
            return s  # already signed (relayed), or someone else's: relayed as it is
        if isinstance(s, Alive):
            s = dataclasses.replace(s, key=self.identity.public_key)
        body = s.signed_bytes()
        sig = self._signed.get(body)
        if sig is None:
            sig = self.identity.sign(body)
            _remember(self._signed, body, sig)
        return dataclasses.replace(s, sig=sig)

    def _sign_row(self, r: MemberRecord) -> MemberRecord:
        if r.node != self.identity.node_id:
            return r
        statement = r.statement()
        if statement is None:
            return r
        signed = self._signed_statement(statement)
        return dataclasses.replace(r, key=self.identity.public_key, sig=signed.sig)

    # ---- incoming ----

    def check(self, message: Message, transport: str, peer: Addr,
              sender: str | None) -> Message | None:
        """`message` without the statements that do not prove their signer, nor the parts that
        name another node than `sender` (the frame's proven sender; None: unknown) as theirs;
        None if nothing is left."""
        if isinstance(message, Compound):
            kept = tuple(m for m in message.messages
                         if self._valid_part(m, transport, peer, sender))
            if not kept:
                return None
            return kept[0] if len(kept) == 1 else Compound(kept)
        if isinstance(message, PushPull):
            if not self._own_source(message, message.source, sender, transport, peer):
                return None
            rows = tuple(r for r in message.members if self._valid_row(r, transport, peer))
            return dataclasses.replace(message, members=rows)
        return message if self._valid_part(message, transport, peer, sender) else None

    def _valid_part(self, m: Message, transport: str, peer: Addr, sender: str | None) -> bool:
        if isinstance(m, Alive | Suspect | Dead | Leave):
            return self._valid(m, None, transport, peer)
        if isinstance(m, Ping | PingReq):
            return self._own_source(m, m.source, sender, transport, peer)
        return True

    def _own_source(self, m: Message, source: str, sender: str | None, transport: str,
                    peer: Addr) -> bool:
        """True unless `m` names as its source another node than the frame's sender (dropped)."""
        if sender is None or source == sender:
            return True
        self.stats.drop(transport, "identity", format_addr(peer),
                        f"{type(m).__name__.lower()} names source {source!r} but the frame is "
                        f"signed by {sender!r}")
        return False

    def _valid_row(self, r: MemberRecord, transport: str, peer: Addr) -> bool:
        statement = r.statement()
        if statement is None:
            # A suspect or dead row counts only as the sender's suspicion (the core turns it
            # into one of ours), and only for a member we know already.
            return True
        return self._valid(statement, r.key, transport, peer)

    def _valid(self, s: Statement, key: bytes | None, transport: str, peer: Addr) -> bool:
        """True if `s` carries a good signature of its signer (learning the signer's key)."""
        signer = s.signer
        if isinstance(s, Alive):
            key = s.key
        if key:
            if not self.peers.bind(signer, key):
                return self._refuse(s, transport, peer, f"key {key[:8].hex()} is not {signer}'s")
        else:
            key = self.peers.key_of(signer)
            if key is None:
                return self._refuse(s, transport, peer, f"signer {signer} has no known key")
        if not s.sig:
            return self._refuse(s, transport, peer, "not signed")
        body = s.signed_bytes()
        if self._verified.get(s.sig) == body:
            self._verified.move_to_end(s.sig)
            return True
        self.verifies += 1
        if not verify_signature(key, s.sig, body):
            return self._refuse(s, transport, peer, f"signature is not {signer}'s")
        _remember(self._verified, s.sig, body)
        return True

    def _refuse(self, s: Statement, transport: str, peer: Addr, why: str) -> bool:
        self.stats.drop(transport, "statement", format_addr(peer),
                        f"{type(s).__name__.lower()} about {s.node} by {s.signer}: {why}")
        return False


def _remember(cache: OrderedDict[bytes, bytes], key: bytes, value: bytes) -> None:
    cache[key] = value
    cache.move_to_end(key)
    if len(cache) > CACHE_ENTRIES:
        cache.popitem(last=False)

