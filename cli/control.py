"""`meshkp leader`, `policy get|set|blacklist list|add|remove`, `routing get|set`, `audit`: the policy log.

Reads go to any node (`--node`); changes need that node's admin token and are forwarded to
the leader by the node, which answers once the change is applied there. In a minority the node
answers 503 with the last known leader: the command says so and exits 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from cli.node_client import call, call_ok, find_token, node_option, token_options


def _print(body: Any) -> None:
    click.echo(json.dumps(body, indent=2, sort_keys=True))


def _change(node_url: str, method: str, path: str, body: Any, token: str) -> Any:
    status, reply = call(node_url, method, path, body, token)
    if status == 503 and isinstance(reply, dict):
        leader = reply.get("leader_http") or reply.get("leader") or "unknown"
        raise click.ClickException(f"the control plane cannot commit now: {reply.get('error')} "
                                   f"(leader: {leader}); retry later")
    if not 200 <= status < 300:
        raise click.ClickException(f"{method} {path} answered {status}: {reply}")
    return reply


def _assignments(pairs: tuple[str, ...]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.UsageError(f"{pair!r} is not NAME=VALUE")
        values[name.strip()] = value.strip()
    return values


@click.command("leader")
@node_option
def leader(node_url: str) -> None:
    """Show the control plane's leader as the node at --node knows it."""
    body = call_ok(node_url, "GET", "/cluster/leader")
    who = body.get("leader") or "none known"
    how = "authoritative (leader with lease)" if body.get("authoritative") else "last known"
    click.echo(f"leader: {who} ({how}), term {body.get('term')}, http {body.get('leader_http') or '-'}")


@click.group("policy")
def policy() -> None:
    """Read or change the cluster policy (limits)."""


@policy.command("get")
@node_option
def policy_get(node_url: str) -> None:
    """Print the policy applied on the node at --node."""
    _print(call_ok(node_url, "GET", "/cluster/policy"))


@policy.command("set")
@node_option
@token_options
@click.option("--expect-version", type=int, default=None,
              help="Apply only if the policy is still at this version (compare-and-set).")
@click.argument("assignments", nargs=-1, required=True, metavar="NAME=VALUE...")
def policy_set(node_url: str, token_file: Path | None, data_dir: Path | None,
               expect_version: int | None, assignments: tuple[str, ...]) -> None:
    """Set limits for the whole cluster, e.g. `meshkp policy set search_results=200`."""
    limits: dict[str, int] = {}
    for name, value in _assignments(assignments).items():
        try:
            limits[name] = int(value)
        except ValueError:
            raise click.UsageError(f"limit {name} must be an integer, got {value!r}") from None
    body: dict[str, Any] = {"limits": limits}
    if expect_version is not None:
        body["expect_version"] = expect_version
    _policy_change(node_url, body, find_token(token_file, data_dir))


@policy.group("blacklist")
def blacklist() -> None:
    """The cluster's blacklist: fingerprints hidden on every node and refused on upload."""


@blacklist.command("list")
@node_option
def blacklist_list(node_url: str) -> None:
    """Print the blacklist applied on the node at --node."""
    for e in call_ok(node_url, "GET", "/cluster/policy?blacklist=1").get("blacklist", []):
        click.echo(f"{e['fingerprint']} {e['token']:>10} {e['actor']:<12} {e['reason']}")


@blacklist.command("add")
@node_option
@token_options
@click.option("--reason", required=True, help="Why (shown to uploaders and in the audit trail).")
@click.argument("fingerprints", nargs=-1, required=True, metavar="FINGERPRINT...")
def blacklist_add(node_url: str, token_file: Path | None, data_dir: Path | None, reason: str,
                  fingerprints: tuple[str, ...]) -> None:
    """Blacklist FINGERPRINTs (hex) for the whole cluster."""
    body = {"blacklist": {"add": {fp: reason for fp in fingerprints}}}
    _policy_change(node_url, body, find_token(token_file, data_dir))


@blacklist.command("remove")
@node_option
@token_options
@click.argument("fingerprints", nargs=-1, required=True, metavar="FINGERPRINT...")
def blacklist_remove(node_url: str, token_file: Path | None, data_dir: Path | None,
                     fingerprints: tuple[str, ...]) -> None:
    """Take FINGERPRINTs (hex) off the blacklist."""
    _policy_change(node_url, {"blacklist": {"remove": list(fingerprints)}}, find_token(token_file, data_dir))


def _policy_change(node_url: str, body: dict[str, Any], token: str) -> None:
    reply = _change(node_url, "PUT", "/cluster/policy", body, token)
    if not reply.get("applied"):
        raise click.ClickException(f"the change was ignored: {(reply.get('audit') or {}).get('detail')}")
    click.echo(f"applied at {reply['token']}: policy version {reply['policy']['version']}")


@click.group("routing")
def routing() -> None:
    """Read or change how load balancers and clients see each node."""


@routing.command("get")
@node_option
def routing_get(node_url: str) -> None:
    """Print every node's routing (nodes without one have the defaults)."""
    _print(call_ok(node_url, "GET", "/cluster/routing"))


@routing.command("set")
@node_option
@token_options
@click.option("--member", "member", default=None, help="The node to change (default: --node's).")
@click.argument("assignments", nargs=-1, required=True, metavar="weight=N|drain=BOOL|read_only=BOOL|zone=Z")
def routing_set(node_url: str, token_file: Path | None, data_dir: Path | None,
                member: str | None, assignments: tuple[str, ...]) -> None:
    """Change one node's routing, e.g. `meshkp routing set drain=true`."""
    body: dict[str, Any] = {}
    for name, value in _assignments(assignments).items():
        if name == "weight":
            body[name] = int(value)
        elif name in ("drain", "read_only"):
            if value.lower() not in ("true", "false"):
                raise click.UsageError(f"{name} must be true or false")
            body[name] = value.lower() == "true"
        elif name == "zone":
            body[name] = value
        else:
            raise click.UsageError(f"unknown routing field {name!r}: weight, drain, read_only, zone")
    if member is not None:
        body["node"] = member
    reply = _change(node_url, "PUT", "/cluster/routing", body, find_token(token_file, data_dir))
    click.echo(f"applied at {reply['token']}: {(reply.get('audit') or {}).get('detail')}")


@click.command("audit")
@node_option
@click.option("--after", type=int, default=0, show_default=True, help="Entries after this seq.")
@click.option("--limit", type=int, default=100, show_default=True, help="Entries per page (<= 500).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON page.")
def audit(node_url: str, after: int, limit: int, as_json: bool) -> None:
    """Print the cluster's audit trail: every committed change, who, where, under which token."""
    body = call_ok(node_url, "GET", f"/cluster/audit?after={after}&limit={limit}")
    if as_json:
        _print(body)
        return
    for e in body.get("entries", []):
        click.echo(f"{e['seq']:>6} {e['token']:>10} {e['outcome']:<8} {e['op']:<18} "
                   f"{e['actor'] or '-':<12} {e['node'] or '-':<18} {e['detail']}")
    click.echo(f"({body.get('total')} entries in the cluster's life; "
               f"next page: --after {body.get('next_after')})")
