"""A mesh of real `meshkp serve --mesh` processes with a control plane (tests and bench).

Node 0 starts without seeds and founds the cluster; the others join it (`--join` node 0).
Timers: `--gossip-profile test` and `--control-profile local`.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

from meshkp.net.crypto import generate_key, write_key_file
from tests.integration.conftest import Response, ServerProcess, start_server
from tests.integration.test_membership import gossip_port


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               state: Callable[[], object] | None = None) -> float:
    began = time.monotonic()
    while not predicate():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"not within {timeout} s: {what}"
                                 + (f"; last seen: {state()}" if state else ""))
        time.sleep(0.05)
    return time.monotonic() - began


class ControlMesh:
    def __init__(self, root: Path, size: int = 5) -> None:
        self.size = size
        self.root = root
        self.key_file = root / "cluster.key"
        write_key_file(self.key_file, [generate_key()], overwrite=False)
        self.ports = [gossip_port() for _ in range(size)]
        self.servers: dict[str, ServerProcess] = {}
        self.stopped: set[str] = set()

    def start(self, i: int, join_node: int = 0, extra: tuple[str, ...] = ()) -> ServerProcess:
        """Start node i, joining node `join_node`'s gossip port (node 0 founds: it joins none),
        with `extra` options after the mesh's own."""
        join = [*([] if i == join_node else ["--join", f"127.0.0.1:{self.ports[join_node]}"]), *extra]
        server = start_server(self.root / f"n{i}", "--mesh", "--node-id", f"n{i}",
                              "--gossip-port", str(self.ports[i]), "--cluster-key-file",
                              str(self.key_file), "--gossip-profile", "test",
                              "--control-profile", "local", "--no-access-log", *join, timeout=60)
        self.servers[f"n{i}"] = server
        return server

    def running(self) -> dict[str, ServerProcess]:
        return {n: s for n, s in self.servers.items() if s.proc.poll() is None and n not in self.stopped}

    def get(self, node: str, path: str) -> dict:
        try:
            reply = self.servers[node].request("GET", path, timeout=5)
        except OSError:
            return {}
        return reply.json() if reply.status == 200 else {}  # type: ignore[return-value]

    def leaders(self) -> dict[str, object]:
        return {n: self.get(n, "/cluster/leader").get("leader") for n in self.running()}

    def agreed_leader(self) -> str | None:
        seen = set(self.leaders().values())
        return seen.pop() if len(seen) == 1 and None not in seen else None  # type: ignore[return-value]

    def put_policy(self, node: str, limits: dict[str, int], timeout: float = 30) -> Response:
        token = (self.servers[node].data_dir / "admin.token").read_text().strip()
        return self.servers[node].request(
            "PUT", "/cluster/policy", body=json.dumps({"limits": limits}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=timeout)

    def limits_of(self, name: str) -> dict[str, object]:
        """Limit `name` as each running node's policy has it (None: no answer)."""
        return {n: self.get(n, "/cluster/policy").get("limits", {}).get(name) for n in self.running()}

    def limit_everywhere(self, name: str, value: int) -> bool:
        return all(limit == value for limit in self.limits_of(name).values())


    def form(self) -> str:
        """Start every node; return once all are voters and agree on one leader (its id)."""
        for i in range(self.size):
            self.start(i)
        wait_until(lambda: len(self.get("n0", "/cluster/consensus").get("voters", [])) == self.size,
                   60, f"{self.size} voters")
        wait_until(lambda: self.agreed_leader() is not None, 20, "one leader", self.leaders)
        leader = self.agreed_leader()
        assert leader is not None
        return leader

    def close(self) -> None:
        for server in self.servers.values():
            if server.proc.poll() is None:
                server.proc.send_signal(signal.SIGCONT)
            server.stop(signal.SIGKILL if server.proc.poll() is None else signal.SIGTERM)
