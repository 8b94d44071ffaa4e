"""The simulation tier: N production membership drivers in one process, in simulated time.

- network.py: SimNetwork, an in-memory UDP/TCP network with seeded faults, and SimTraffic;
- codec.py: its frame codecs (the production sealing, or a cipher-free stand-in of equal size);
- transport.py: SimTransport, the GossipTransport of a simulated host;
- process.py: ProcessClock, one process's timers (stopped while it is paused);
- loop.py: SimEventLoop, an asyncio loop whose time is a FakeClock;
- cluster.py: SimCluster, the harness tests/sim and bench/swim_sim.py use.
"""
