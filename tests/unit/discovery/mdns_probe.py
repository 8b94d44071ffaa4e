"""Run inside a test's network namespace: advertise one node over mDNS on 127.0.0.1 and print,
as one JSON line, the same-cluster peers seen once `want` of them appeared (or at the deadline)."""

import asyncio
import json
import sys
import time

from meshkp.discovery.mdns import MdnsDiscovery


async def main(cluster: str, node_id: str, port: int, want: int, deadline: float) -> None:
    disc = MdnsDiscovery(cluster, node_id, port, advertise=["127.0.0.1"], http_port=port + 1,
                         interfaces=["127.0.0.1"])
    await disc.start()
    start = time.monotonic()
    try:
        while len(disc.peers()) < want and time.monotonic() - start < deadline:
            await asyncio.sleep(0.1)
        found = sorted((p.node_id, p.gossip_port, p.http_port) for p in disc.peers())
        print(json.dumps({"node": node_id, "peers": found, "ignored": disc.ignored,
                          "seconds": round(time.monotonic() - start, 2)}), flush=True)
        # Stay announced a little longer so slower siblings can still see us.
        await asyncio.sleep(1.0)
    finally:
        await disc.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                     float(sys.argv[5])))
