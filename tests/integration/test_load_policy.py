"""`meshkp load` holds an offline load to the policy the node's control store committed.

A real one-node `meshkp serve` blacklists a fingerprint and lowers key_bytes through
`PUT /cluster/policy`, then stops. An offline `meshkp load` of a keyring with the blacklisted
key, a key over the policy's key_bytes and an ordinary key writes only the ordinary one, and
says why for the others; the cluster's limits win over the load's own --limit options. A data
dir without a control store loads under the command line's limits, as before.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.keygen import generate_key
from tests.integration.conftest import ServerProcess, start_server
from tests.integration.test_load_dump import NODE_ID, load, meshkp, records

pytestmark = pytest.mark.integration


def _admin_put(server: ServerProcess, body: dict[str, object]) -> None:
    token = (server.data_dir / "admin.token").read_text().strip()
    reply = server.request("PUT", "/cluster/policy", body=json.dumps(body).encode(),
                           headers={"Authorization": f"Bearer {token}"})
    assert reply.status == 200, reply.body


def test_an_offline_load_follows_the_stored_blacklist_and_limits(tmp_path: Path) -> None:
    banned, big, plain = generate_key(1), generate_key(2, user_id="B" * 900), generate_key(3)
    keyring = tmp_path / "keys.gpg"
    keyring.write_bytes(banned.data + big.data + plain.data)
    assert len(big.data) > 1000 > len(plain.data)

    data = tmp_path / "node"
    server = start_server(data, "--node-id", NODE_ID)
    try:
        _admin_put(server, {"blacklist": {"add": {banned.fingerprint.hex(): "court order 7"}}})
        _admin_put(server, {"limits": {"packet_bytes": 1000, "key_bytes": 1000}})
        listed = server.request("GET", "/cluster/policy?blacklist=1").json()
        assert [e["fingerprint"] for e in listed["blacklist"]] == [banned.fingerprint.hex().upper()]  # type: ignore[index]
    finally:
        assert server.stop() == 0

    run = load(data, keyring)
    assert run.code == 0, run.stderr
    assert run.summary["totals"]["loaded"] == 1, run.summary
    reasons = run.summary["rejected_by_reason"]
    assert reasons.pop("blacklisted by the cluster policy") == 1, reasons
    assert sum(reasons.values()) == 1 and "key_bytes" in json.dumps(run.summary["rejected_examples"])
    assert set(records(data)) == {plain.fingerprint}

    # The policy wins over the load's own --limit options, and the load says so.
    again = tmp_path / "again.gpg"
    again.write_bytes(big.data)
    done = meshkp("load", "--data-dir", str(data), "--node-id", NODE_ID, "--no-progress",
                  "--limit", "key_bytes=4000000", str(again))
    assert done.returncode == 0, done.stderr
    assert "overridden: key_bytes=4000000(policy:1000)" in done.stderr
    assert set(records(data)) == {plain.fingerprint}


def test_without_a_control_store_the_command_line_limits_apply(tmp_path: Path) -> None:
    keyring = tmp_path / "keys.gpg"
    keyring.write_bytes(generate_key(1).data + generate_key(2, user_id="B" * 900).data)
    run = load(tmp_path / "fresh", keyring)
    assert run.code == 0 and run.summary["totals"]["loaded"] == 2, run
