"""A private network for chaos runs: one namespace per node, a hub namespace with the bridge,
and a client namespace from which the test talks HTTP to the nodes.

Everything lives in namespaces this module creates (names `mkpc<hex>-*`), so the host's
interfaces, routes and iptables are never touched: the bridge and the host ends of the veth
pairs sit in the hub namespace, and deleting the namespaces removes all of it. Addresses are
in 10.213.0.0/24 and exist only inside these namespaces.

Faults are iptables rules in each node's namespace, in a chain `CHAOS` jumped to from INPUT
(the kernel here has no netem, so loss is `-m statistic --mode random` DROP, and there is no
delay). The client's address and loopback are exempt, so observing the mesh never suffers
the faults injected into it.

The test process joins the client namespace only to create a socket (setns(2) on the calling
thread, then back): a socket stays in the namespace it was created in.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

SUBNET = "10.213.0"
PREFIX_LEN = 24
CLIENT_HOST = f"{SUBNET}.254"
CHAIN = "CHAOS"
_CLONE_NEWNET = 0x40000000
_NETNS_DIR = "/var/run/netns"
_libc = ctypes.CDLL(None, use_errno=True)


def unavailable_reason() -> str | None:
    """Why namespaces and iptables cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces (ip netns add) and iptables rules"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"needs `{tool}` (apt-get install -y iproute2 iptables)"
    return None


def _run(*args: str) -> None:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()}")


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextmanager
def _inside(netns: str) -> Iterator[None]:
    """The calling thread (setns(2) switches only it) is in `netns` for the duration."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"{_NETNS_DIR}/{netns}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


def connect_in(netns: str, host: str, port: int, timeout: float) -> socket.socket:
    """A TCP socket created in `netns` and connected to host:port from there."""
    with _inside(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class Topology:
    """n node namespaces on one bridge, plus the client namespace; `close()` removes it all."""

    n: int
    tag: str = field(default_factory=lambda: "mkpc" + uuid.uuid4().hex[:6])
    created: list[str] = field(default_factory=list)

    @property
    def hub(self) -> str:
        return f"{self.tag}-hub"

    @property
    def client(self) -> str:
        return f"{self.tag}-cl"

    def node_ns(self, i: int) -> str:
        return f"{self.tag}-n{i}"

    def host(self, i: int) -> str:
        return f"{SUBNET}.{i + 1}"

    def exec_prefix(self, i: int) -> list[str]:
        """Command prefix running a program inside node i's namespace."""
        return ["ip", "netns", "exec", self.node_ns(i)]

    def create(self) -> None:
        self._add_ns(self.hub)
        _run("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", self.hub, "link", "set", "br0", "up")
        for i in range(self.n):
            self._attach(self.node_ns(i), f"v{i}", self.host(i))
            self._iptables(i, "-N", CHAIN)
            self._iptables(i, "-A", "INPUT", "-j", CHAIN)
        self._attach(self.client, "vcl", CLIENT_HOST)

    def _add_ns(self, name: str) -> None:
        _run("ip", "netns", "add", name)
        self.created.append(name)
        _run("ip", "-n", name, "link", "set", "lo", "up")

    def _attach(self, netns: str, hub_end: str, address: str) -> None:
        self._add_ns(netns)
        _run("ip", "-n", self.hub, "link", "add", hub_end, "type", "veth",
             "peer", "name", "eth0", "netns", netns)
        _run("ip", "-n", self.hub, "link", "set", hub_end, "master", "br0", "up")
        _run("ip", "-n", netns, "addr", "add", f"{address}/{PREFIX_LEN}", "dev", "eth0")
        _run("ip", "-n", netns, "link", "set", "eth0", "up")

    def close(self) -> None:
        """Delete every namespace created (their veths and the bridge go with them)."""
        for name in reversed(self.created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        self.created.clear()

    # -- faults ------------------------------------------------------------------------------

    def _iptables(self, i: int, *rule: str) -> None:
        netns = self.node_ns(i)
        assert netns in self.created, f"refusing to touch a namespace we did not create: {netns}"
        _run("ip", "netns", "exec", netns, "iptables", "-w", "5", *rule)

    def _exempt(self, i: int) -> None:
        """Loopback and the observing client are never subject to the faults."""
        self._iptables(i, "-A", CHAIN, "-i", "lo", "-j", "RETURN")
        self._iptables(i, "-A", CHAIN, "-s", CLIENT_HOST, "-j", "RETURN")

    def partition(self, groups: Sequence[Sequence[int]]) -> None:
        """Drop every packet between nodes of different groups (each side drops on input)."""
        self.heal()
        for group in groups:
            others = [j for other in groups if other is not group for j in other]
            for i in group:
                self._exempt(i)
                for j in others:
                    self._iptables(i, "-A", CHAIN, "-s", self.host(j), "-j", "DROP")

    def drops(self, rules: dict[int, Sequence[int]]) -> None:
        """Node i drops every packet from each node of rules[i] (INPUT only, so one-way unless
        the other side has the mirror rule): one-way partitions, rings, bridges."""
        self.heal()
        for i, sources in rules.items():
            self._exempt(i)
            for j in sources:
                self._iptables(i, "-A", CHAIN, "-s", self.host(j), "-j", "DROP")

    def loss(self, probability: float) -> None:
        """Drop each packet between nodes with `probability`, on input, independently."""
        self.heal()
        for i in range(self.n):
            self._exempt(i)
            self._iptables(i, "-A", CHAIN, "-s", f"{SUBNET}.0/{PREFIX_LEN}", "-m", "statistic",
                           "--mode", "random", "--probability", f"{probability:.3f}", "-j", "DROP")

    def heal(self) -> None:
        """Remove every fault rule."""
        for i in range(self.n):
            self._iptables(i, "-F", CHAIN)
