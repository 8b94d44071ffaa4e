"""The one asyncio driver of the SWIM core (meshkp/swim), over a GossipTransport.

- config.py: MembershipConfig, where the gossip listener binds and how it finds peers;
- transport.py: the GossipTransport seam (memberlist's Transport);
- sockets.py: SocketTransport, the real sealed UDP + TCP transport;
- service.py: MembershipService, the driver: timers, join, push-pull, leave, discovery;
- incarnation.py: the incarnation a restarted node starts above.

meshkp/sim runs the same MembershipService over an in-memory SimNetwork on a FakeClock.
"""
