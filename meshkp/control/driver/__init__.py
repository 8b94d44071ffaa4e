"""The control plane's I/O half: the asyncio Ready loop, the ControlPlane API, transports.

- loop.py: RaftDriver (the Ready loop, ticks on an injected Scheduler), ControlStorage,
  ControlTransport;
- plane.py: ControlPlane, what the node and the HTTP endpoints call;
- memory.py: an in-process transport for simulations on a FakeClock;
- tcp.py: the sealed TCP transport between nodes (member meta "control").
"""
