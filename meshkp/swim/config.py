"""SwimConfig: every knob of the membership protocol, with memberlist's defaults and profiles.

Values and their meaning follow hashicorp/memberlist `config.go` (DefaultLANConfig,
DefaultLocalConfig); the reconnect and forget times follow Serf (`ReconnectInterval`,
`ReconnectTimeout`), because memberlist alone never reconnects a healed partition.
All durations are seconds (float).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from meshkp.errors import ConfigError
from meshkp.net.wire import UDP_DATAGRAM_BYTES
from meshkp.swim.fields import MAX_META_BYTES, MAX_PUSH_PULL_MEMBERS
from meshkp.swim.messages import meta_room


@dataclass(frozen=True, slots=True)
class SwimConfig:
    # Time between two failure-detector probes (one member each). Lower detects crashes sooner
    # but costs one ping/ack pair per node per interval. memberlist LAN: 1 s.
    probe_interval: float = 1.0
    # Wait for a direct ack before asking `indirect_checks` members to ping-req the target. Set it
    # near the network's p99 RTT; too low turns slow links into indirect probes. LAN: 500 ms.
    probe_timeout: float = 0.5
    # Members asked to probe on our behalf (SWIM §4, Lifeguard nacks). More means fewer false
    # suspicions under loss, at 4 packets each per failed probe. LAN: 3.
    indirect_checks: int = 3
    # Suspicion lasts at least suspicion_mult * max(1, log10 n) * probe_interval before "dead".
    # Higher gives a slow node more time to refute, and detects real crashes later. LAN: 4.
    suspicion_mult: int = 4
    # Lifeguard: the suspicion timer starts at this multiple of the minimum and decays to the
    # minimum as independent confirmations arrive (Lifeguard §4.2). LAN: 6.
    suspicion_max_timeout_mult: int = 6
    # Each broadcast is piggybacked retransmit_mult * ceil(log10(n + 1)) times. Higher makes
    # news reach everyone under loss, at the cost of bytes. LAN: 4.
    retransmit_mult: int = 4
    # Gossip pending broadcasts to `gossip_nodes` random members this often (news that cannot
    # wait for the next ping). Lower spreads faster, costs more packets. LAN: 200 ms.
    gossip_interval: float = 0.2
    # Fan-out of each gossip round. LAN: 3.
    gossip_nodes: int = 3
    # Keep gossiping to a dead node this long, so it can learn it was declared dead and refute.
    # LAN: 30 s (same as push-pull).
    gossip_to_the_dead_time: float = 30.0
    # Full-state TCP push-pull with one random member this often, scaled up above 32 nodes
    # (formulas.push_pull_scale). Repairs anything gossip lost; 0 disables it. LAN: 30 s.
    push_pull_interval: float = 30.0
    # Lifeguard local-health awareness: this node's probe interval is stretched up to this factor
    # when it notices that it is the slow one (missed nacks, refuting). LAN: 8.
    awareness_max_multiplier: int = 8
    # A dead node's id may be claimed from a different address this long after it died. memberlist
    # forgets dead nodes after gossip_to_the_dead_time, so its effective value is 30 s.
    dead_node_reclaim_time: float = 30.0
    # Dead and left members are dropped from the table this long after their last change (Serf's
    # reconnect/tombstone timeout). Longer keeps them visible in /cluster/nodes and reconnectable.
    dead_node_forget_time: float = 24 * 3600.0
    # Every reconnect_interval, ping one random dead member with its death notice attached, so a
    # healed partition or a paused process refutes and rejoins (Serf reconnect). 0 disables.
    # Serf: 30 s. meshkp: 10 s, one sync interval, so that membership (and with it replication)
    # is whole again within a sync interval of a heal; the cost is one ping per 10 s while a
    # member is dead. The first returning member is then push-pulled at once (protocol.py).
    reconnect_interval: float = 10.0
    # meshkp addition: when a suspicion timer runs out, probe the suspect once more (directly,
    # with the accusation attached, and through 2 * indirect_checks members) and declare it dead
    # only if that fails too. Costs up to one probe_interval of detection time; saves the false
    # positive of an observer that missed the refutation. False gives memberlist's behaviour.
    final_probe: bool = True
    # Bytes of one UDP frame, after encryption. 1,400 stays under a 1,500-byte Ethernet MTU with
    # IP/UDP headers (memberlist UDPBufferSize). Piggybacked news is packed up to this size.
    udp_frame_bytes: int = UDP_DATAGRAM_BYTES
    # A TCP push-pull (connect, write, read reply) is abandoned after this long. LAN: 10 s.
    tcp_timeout: float = 10.0
    # Pending broadcasts kept at most; beyond it the most-sent are dropped. Bounds memory when
    # news arrives faster than it can be gossiped (Serf MaxQueueDepth: 4096).
    broadcast_queue_max: int = 4096
    # Ping-reqs we are probing for at once. Each costs a ping and a pending entry; the honest
    # load is a few (indirect_checks per failed probe in the cluster), so the cap only stops a
    # peer from using us to amplify its traffic.
    max_pending_relays: int = 1024
    # Members kept at once (alive, suspect, dead and left, ourselves included); news of a new
    # member beyond it is dropped and counted (members_refused). Each member costs a table row,
    # a push-pull row (~250 bytes), a probe slot and a replication push queue, and its first
    # signed alive one Ed25519 verify; 1,024 keeps a full push-pull near 256 KB and its first
    # verification near 50 ms. A key holder minting identities could otherwise grow all of
    # these without end (red-team finding 6: 10,053 members, no more joins).
    max_members: int = 1024
    # Encoded size of a node's meta map (e.g. its HTTP address). memberlist MetaMaxSize: 512.
    max_meta_bytes: int = 512
    # After leave(), the driver waits at most this long for the "left" broadcast to go out
    # before stopping (Serf BroadcastTimeout: 5 s).
    leave_timeout: float = 5.0

    @classmethod
    def lan(cls) -> SwimConfig:
        """memberlist DefaultLANConfig: conservative, for a LAN or a data centre."""
        return cls()

    @classmethod
    def local(cls) -> SwimConfig:
        """memberlist DefaultLocalConfig: loopback or one host, low RTT, quick convergence."""
        return dataclasses.replace(
            cls.lan(),
            tcp_timeout=1.0,
            indirect_checks=1,
            retransmit_mult=2,
            suspicion_mult=3,
            push_pull_interval=15.0,
            probe_timeout=0.2,
            probe_interval=1.0,
            gossip_interval=0.1,
            gossip_to_the_dead_time=15.0,
            dead_node_reclaim_time=15.0,
        )

    @classmethod
    def test(cls) -> SwimConfig:
        """Fast timers for real-process tests on a loaded 2-core machine (detection in ~3-6 s)."""
        return dataclasses.replace(
            cls.local(),
            probe_interval=0.5,
            probe_timeout=0.25,
            indirect_checks=2,
            gossip_interval=0.1,
            push_pull_interval=5.0,
            gossip_to_the_dead_time=5.0,
            dead_node_reclaim_time=1.0,
            reconnect_interval=2.0,
            leave_timeout=2.0,
        )

    def validate(self) -> SwimConfig:
        """Raise ConfigError naming the first bad value or relation; return self when valid."""
        positive = ("probe_interval", "probe_timeout", "gossip_interval", "tcp_timeout",
                    "leave_timeout")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"swim.{name} must be a positive number of seconds, got {value!r}")
        non_negative = ("gossip_to_the_dead_time", "push_pull_interval", "dead_node_reclaim_time",
                        "dead_node_forget_time", "reconnect_interval")
        for name in non_negative:
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"swim.{name} must be >= 0 seconds, got {value!r}")
        at_least_one = ("suspicion_mult", "suspicion_max_timeout_mult", "retransmit_mult",
                        "gossip_nodes", "awareness_max_multiplier", "broadcast_queue_max",
                        "max_meta_bytes", "max_pending_relays", "max_members")
        for name in at_least_one:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"swim.{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.indirect_checks, int) or self.indirect_checks < 0:
            raise ConfigError(f"swim.indirect_checks must be an integer >= 0, "
                              f"got {self.indirect_checks!r}")
        if self.probe_timeout >= self.probe_interval:
            raise ConfigError(
                f"swim.probe_timeout ({self.probe_timeout}s) must be shorter than probe_interval "
                f"({self.probe_interval}s), or indirect probes get no time to answer")
        if not 576 <= self.udp_frame_bytes <= 65507:
            raise ConfigError(f"swim.udp_frame_bytes must be within 576..65507 (UDP), "
                              f"got {self.udp_frame_bytes}")
        if self.dead_node_forget_time < self.gossip_to_the_dead_time:
            raise ConfigError("swim.dead_node_forget_time must be >= gossip_to_the_dead_time: "
                              "a forgotten node cannot be gossiped to")
        room = meta_room(self.udp_frame_bytes)
        if self.max_meta_bytes > min(MAX_META_BYTES, room):
            raise ConfigError(f"swim.max_meta_bytes must be at most {MAX_META_BYTES} (what peers "
                              f"accept) and {room} (what a signed alive can carry beside a ping "
                              f"in a frame of udp_frame_bytes={self.udp_frame_bytes})")
        if self.max_members > MAX_PUSH_PULL_MEMBERS:
            raise ConfigError(f"swim.max_members must be at most {MAX_PUSH_PULL_MEMBERS}, the "
                              "rows a push-pull may carry")
        return self
