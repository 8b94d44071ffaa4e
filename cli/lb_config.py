"""`meshkp lb-config haproxy|nginx`: a load-balancer config of the mesh's live membership.

The members come from one node's `GET /cluster/nodes`; each announces its HKP address in its
member meta ("http"), and its agent-check port ("agent") when it runs one. Members that left
are out; dead ones stay in, since they are meant to come back and the balancer's health check
keeps them out meanwhile.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import click

from cli.lb_templates import Backend, render_haproxy, render_nginx
from cli.node_client import call, node_option


def agent_port_of(member: Any, default: int | None) -> int | None:
    """The agent-check port a member announces ("agent" in its meta), else `default`."""
    meta = member.get("meta") if isinstance(member.get("meta"), dict) else {}
    announced = str(meta.get("agent", ""))
    if announced.isdigit() and 0 < int(announced) <= 65535:
        return int(announced)
    return default


def backends_of(reply: Any, agent_port: int | None = None) -> list[Backend]:
    """The Backends of a /cluster/nodes reply, by node id; members without an address left out.

    `agent_port`: the agent-check port of members that announce none (None: no agent check).
    """
    if not isinstance(reply, dict) or not isinstance(reply.get("nodes"), list):
        raise click.ClickException(f"/cluster/nodes answered something else than a member list: "
                                   f"{str(reply)[:200]}")
    found = []
    for member in reply["nodes"]:
        address = str(member.get("http") or member.get("meta", {}).get("http") or "")
        # Port 0: a node started with --http-port 0 whose real port has not reached us yet.
        if member.get("status") == "left" or not address or address.endswith(":0"):
            continue
        found.append(Backend(str(member["id"]), address, agent_port_of(member, agent_port)))
    return sorted(found, key=lambda b: b.name)


def write_atomically(path: Path, text: str) -> None:
    """Replace path in one rename: a balancer reloading meanwhile never reads half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.command("lb-config")
@click.argument("balancer", type=click.Choice(["haproxy", "nginx"]))
@node_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the config here (replaced atomically); default: standard output.")
@click.option("--bind", default="*:11371", show_default=True, metavar="ADDR",
              help="Where the balancer listens (HAProxy `bind`, nginx `listen`).")
@click.option("--check-interval", type=click.IntRange(100, 60_000), default=2000,
              show_default=True, metavar="MS", help="HAProxy health- and agent-check interval.")
@click.option("--agent-port", type=click.IntRange(1, 65535), default=None, metavar="PORT",
              help="HAProxy agent-check port of the nodes that announce none "
                   "(a node started with --agent-check-port announces its own).")
def lb_config(balancer: str, node_url: str, out: Path | None, bind: str,
              check_interval: int, agent_port: int | None) -> None:
    """Write a HAProxy or nginx config of every member of the node's mesh."""
    status, reply = call(node_url, "GET", "/cluster/nodes")
    if status == 404:
        raise click.ClickException(f"{node_url} has no /cluster/nodes (404): give the HKP "
                                   "address of a meshkp node, e.g. http://HOST:11371")
    if status != 200:
        raise click.ClickException(f"GET /cluster/nodes on {node_url} answered {status}: {reply}")
    backends = backends_of(reply, agent_port)
    if not backends:
        raise click.ClickException(f"{node_url} knows no member with an HTTP address")
    if balancer == "haproxy":
        text = render_haproxy(backends, bind, check_interval)
    else:
        listen = bind.removeprefix("*:")
        text = render_nginx(backends, listen)
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        write_atomically(out, text)
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc}") from exc
    click.echo(f"{out}: {balancer} config of {len(backends)} node(s): "
               + ", ".join(b.name for b in backends), err=True)
