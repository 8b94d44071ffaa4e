"""`meshkp dev` (what `make run` starts): a local 3-node mesh on loopback with sample keys.

Each node is a real `meshkp serve` child process with its own data directory under
./.meshkp-dev/ (node1, node2, node3), HKP on 127.0.0.1:11371-11373 and gossip on
7946/7948/7950 (replication listens on gossip port + 1). They share one cluster key,
created on first start in ./.meshkp-dev/cluster.key. The samples (public test keys shipped
in meshkp/samples/) are uploaded to node 1 through the normal /pks/add path on every start
(re-uploading is a no-op) and replicate to the others, so a newcomer can search any node.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from importlib import resources
from pathlib import Path

import click

from cli.top.command import run_live

DEV_ROOT = Path(".meshkp-dev")
FIRST_HTTP_PORT = 11371
FIRST_GOSSIP_PORT = 7946
START_TIMEOUT_S = 60


def sample_keytexts() -> list[tuple[str, bytes]]:
    """(file name, armored keys) of the samples shipped with the package."""
    folder = resources.files("meshkp").joinpath("samples")
    return sorted(
        (entry.name, entry.read_bytes()) for entry in folder.iterdir() if entry.name.endswith(".asc")
    )


def _hint(urls: list[str], root: Path) -> str:
    hkp = urls[0].replace("http://", "hkp://")
    other = urls[-1].replace("http://", "hkp://")
    return f"""
meshkp dev mesh is up: {", ".join(urls)}  (Ctrl-C stops all nodes)

Try it with GnuPG (a throw-away GNUPGHOME keeps your own keyring out of it):
  export GNUPGHOME=$(mktemp -d)
  gpg --keyserver {hkp} --search-keys alice@example.com
  gpg --keyserver {other} --recv-keys 0x10FE8CF1B483F7525039AA2A361BC1F023E0DCCA
  gpg --quick-gen-key 'You <you@example.org>' && gpg --keyserver {hkp} --send-keys <fingerprint>
  gpg --keyserver {other} --search-keys you@example.org     # replicated to another node

Or look at the mesh:
  .venv/bin/meshkp members --node {urls[0]}
  .venv/bin/meshkp leader --node {urls[0]}      (node 1 founded the control plane)
  curl '{urls[1]}/cluster/sync/status'
  curl '{urls[2]}/pks/lookup?op=stats&options=json'
Admin token (for join/leave/delete): {root / "node1" / "admin.token"}
"""


def _wait_healthy(url: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise click.ClickException(
                f"node for {url} exited with code {process.returncode}; see the log above "
                "(is the port taken? stop the other process or use --first-http-port)"
            )
        try:
            with urllib.request.urlopen(f"{url}/pks/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise click.ClickException(f"node {url} did not become healthy in {START_TIMEOUT_S} s")


def _upload_samples(url: str) -> int:
    uploaded = 0
    for name, keytext in sample_keytexts():
        body = urllib.parse.urlencode({"keytext": keytext.decode("ascii", "replace")}).encode()
        request = urllib.request.Request(
            f"{url}/pks/add", data=body, headers={"Accept": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30):
                uploaded += 1
        except urllib.error.HTTPError as exc:
            click.echo(f"sample {name} was not accepted: HTTP {exc.code}", err=True)
    return uploaded


@click.command("dev")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=DEV_ROOT,
              show_default=True, help="Where the nodes' data directories live.")
@click.option("--nodes", type=click.IntRange(1, 9), default=3, show_default=True)
@click.option("--first-http-port", type=int, default=FIRST_HTTP_PORT, show_default=True)
@click.option("--first-gossip-port", type=int, default=FIRST_GOSSIP_PORT, show_default=True,
              help="Node i gossips on this + 2*i (replication uses gossip port + 1).")
@click.option("--log-level", default="WARNING", show_default=True)
@click.option("--top", "open_top", is_flag=True,
              help="Open `meshkp top` on the mesh (the nodes then log to ROOT/nodeN.log); "
                   "q or Ctrl-C stops all nodes.")
def dev(root: Path, nodes: int, first_http_port: int, first_gossip_port: int, log_level: str,
        open_top: bool) -> None:
    """Run a local development mesh with sample keys (what `make run` starts)."""
    root.mkdir(parents=True, exist_ok=True)
    key_file = root / "cluster.key"
    if not key_file.exists():
        from meshkp.net.crypto import generate_key, write_key_file

        write_key_file(key_file, [generate_key()], overwrite=False)
    seed = f"127.0.0.1:{first_gossip_port}"
    processes: list[subprocess.Popen[bytes]] = []
    urls = []
    for index in range(nodes):
        http_port = first_http_port + index
        command = [
            sys.executable, "-m", "cli.main", "serve",
            "--data-dir", str(root / f"node{index + 1}"), "--host", "127.0.0.1",
            "--http-port", str(http_port), "--mesh", "--gossip-port", str(first_gossip_port + 2 * index),
            "--cluster-key-file", str(key_file), "--log-level", log_level,
            "--control-profile", "local",  # one host: fail over in about a second
        ]
        if index:
            command += ["--join", seed]
        # Under top, a node's warnings on the terminal would write over the view.
        log = open(root / f"node{index + 1}.log", "ab") if open_top else None  # noqa: SIM115
        processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log))
        if log is not None:
            log.close()  # the child keeps its own copy
        urls.append(f"http://127.0.0.1:{http_port}")
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        for url, process in zip(urls, processes, strict=True):
            _wait_healthy(url, process, deadline)
        click.echo(f"{_upload_samples(urls[0])} sample key files uploaded to {urls[0]}.")
        click.echo(_hint(urls, root))
        if open_top:
            _top_until_quit(urls[0])
        else:
            _wait_until_interrupted(processes)
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        click.echo("meshkp dev mesh stopped; data kept in " + str(root))


def _top_until_quit(url: str) -> None:
    """`meshkp top` on the mesh; returns on q, Ctrl-C or SIGTERM (then the nodes are stopped)."""
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    run_live(url)


def _wait_until_interrupted(processes: list[subprocess.Popen[bytes]]) -> None:
    """Block until Ctrl-C/SIGTERM, or until a node dies (then say which)."""
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        while True:
            for index, process in enumerate(processes):
                if process.poll() is not None:
                    click.echo(f"node{index + 1} exited with code {process.returncode}", err=True)
                    return
            time.sleep(1)
    except KeyboardInterrupt:
        return
