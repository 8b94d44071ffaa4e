"""Real `meshkp serve` processes for integration tests, and a small blocking HTTP client.

`start_server` runs `python -m cli.main serve --http-port 0` on a fresh data directory, reads
the bound address from the one line the command prints on stdout, and waits for
/pks/health. The process's stderr goes to DATA_DIR/../server.log; at teardown the fixture
fails the test module if the log shows an unexpected exception (`event=http_bug`), since
bad input must never reach the 500 path.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

import pytest

if TYPE_CHECKING:
    from tests.integration.control_mesh import ControlMesh

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
_LISTENING = re.compile(r"listening on https?://([\d.]+):(\d+)")


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class ServerProcess:
    """A running `meshkp serve`; `request` talks to it over a fresh connection each call."""

    proc: subprocess.Popen[bytes]
    host: str
    port: int
    data_dir: Path
    log_path: Path
    extra_args: Sequence[str] = field(default_factory=tuple)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def hkp(self) -> str:
        return f"hkp://{self.host}:{self.port}"

    def request(
        self, method: str, path: str, body: bytes | None = None,
        headers: Mapping[str, str] | None = None, timeout: float = 30,
    ) -> Response:
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            raw = conn.getresponse()
            data = raw.read()
            return Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, data)
        finally:
            conn.close()

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        """A new, unconnected HTTP connection to the server (chaos/ overrides it for netns)."""
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def get_keys(self, fingerprints: Iterable[str],
                 timeout: float = 30) -> Iterator[tuple[str, int, bytes]]:
        """(fingerprint, status, body) of op=get for each, over kept-alive connections: a new
        one whenever the server closes one (it does after its per-connection request cap)."""
        conn = self.connection(timeout)
        try:
            for fpr in fingerprints:
                conn.request("GET", "/pks/lookup?" + urlencode({"op": "get", "search": "0x" + fpr}))
                reply = conn.getresponse()
                yield fpr, reply.status, reply.read()
                if reply.will_close:
                    conn.close()
                    conn = self.connection(timeout)
        finally:
            conn.close()

    def lookup(self, headers: Mapping[str, str] | None = None, **params: str) -> Response:
        return self.request("GET", "/pks/lookup?" + urlencode(params), headers=headers)

    def add(self, keytext: bytes | str, headers: Mapping[str, str] | None = None,
            **fields: str) -> Response:
        if isinstance(keytext, str):
            keytext = keytext.encode()
        body = b"keytext=" + quote(keytext, safe="").encode()
        for name, value in fields.items():
            body += f"&{name}={quote(value)}".encode()
        all_headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        return self.request("POST", "/pks/add", body=body, headers=all_headers)

    def metric(self, name: str) -> float:
        """The value of an unlabelled sample `name` on this node's /metrics."""
        text = self.request("GET", "/metrics").body.decode()
        match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
        assert match, name
        return float(match.group(1))

    def key_count(self) -> int:
        stats = self.lookup(op="stats", options="mr").json()
        assert isinstance(stats, dict)
        return int(stats["keys"])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode

    def assert_no_bugs(self) -> None:
        log = self.log_text()
        bugs = [line for line in log.splitlines() if "event=http_bug" in line]
        assert not bugs, "server hit the unexpected-exception path:\n" + log[-4000:]


# Where the tests' own HTTP clients connect from (loopback), and the chaos namespaces' subnet.
TEST_TRUSTED_PROXIES = ("127.0.0.1/32", "::1/128", "10.213.0.0/24")


def start_server(
    data_dir: Path, *extra_args: str, timeout: float = 90, host: str = "127.0.0.1",
    command_prefix: Sequence[str] = (),
    server_type: Callable[..., ServerProcess] = ServerProcess,
    serve_args: Sequence[str] | None = None,
    trusted_proxies: Sequence[str] = TEST_TRUSTED_PROXIES,
) -> ServerProcess:
    """Start `meshkp serve` on a free port of `host`; return once /pks/health answers 200.

    `command_prefix` runs the command elsewhere (chaos/ uses `ip netns exec NS`); `server_type`
    builds the handle from ServerProcess's fields (chaos/ passes one that connects in a netns).
    `serve_args` replaces `--data-dir DATA_DIR --host HOST --http-port 0`, e.g. with
    `--config FILE` when a config file says where the node keeps its data and listens
    (DATA_DIR still names the server's log file). `trusted_proxies` are passed as
    --trusted-proxy: the test client's address by default, so that tests making many requests
    do not trip the rate limits (tests of the limits pass () or send X-Forwarded-For).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-server.log"
    log_file = open(log_path, "ab")  # noqa: SIM115  (the child keeps writing to it)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if serve_args is None:
        serve_args = ("--data-dir", str(data_dir), "--host", host, "--http-port", "0")
    proc = subprocess.Popen(
        [*command_prefix, sys.executable, "-m", "cli.main", "serve", *serve_args,
         *(arg for cidr in trusted_proxies for arg in ("--trusted-proxy", cidr)), *extra_args],
        stdout=subprocess.PIPE, stderr=log_file, cwd=REPO, env=env,
    )
    log_file.close()
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    buffer = b""
    match = None
    while match is None:
        if proc.poll() is not None:
            raise RuntimeError(
                f"meshkp serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"meshkp serve did not start in {timeout}s")
        chunk = proc.stdout.read() or b""
        buffer += chunk
        match = _LISTENING.search(buffer.decode(errors="replace"))
        if match is None:
            time.sleep(0.05)
    server = server_type(proc, match.group(1), int(match.group(2)), data_dir, log_path,
                         extra_args)
    while True:
        try:
            if server.request("GET", "/pks/health", timeout=2).status == 200:
                return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop(signal.SIGKILL)
            raise RuntimeError("meshkp serve never answered /pks/health")
        time.sleep(0.05)


@pytest.fixture
def cmesh(tmp_path: Path) -> Iterator[ControlMesh]:
    """A 5-node ControlMesh (nodes started by the test); every node's log is checked for bugs."""
    from tests.integration.control_mesh import ControlMesh  # it imports this module

    m = ControlMesh(tmp_path)
    try:
        yield m
    finally:
        m.close()
        for server in m.servers.values():
            server.assert_no_bugs()


@pytest.fixture(scope="module")
def meshkp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server per test module, on a fresh data dir; fails the module on a 500 bug."""
    server = start_server(tmp_path_factory.mktemp("meshkp") / "node")
    try:
        yield server
    finally:
        server.stop()
        server.assert_no_bugs()


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def meshkp_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `meshkp ARGS` as an operator would (no admin token in the environment)."""
    env = {k: v for k, v in os.environ.items() if k != "MESHKP_ADMIN_TOKEN"}
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
