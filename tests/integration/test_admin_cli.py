"""`meshkp admins` and `meshkp conflicts` against a real one-node control plane."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import meshkp_cli, start_server

pytestmark = pytest.mark.integration


def test_named_admins_and_conflicts_from_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "solo"
    server = start_server(data)  # no mesh: a one-node control plane that elects itself
    try:
        node = ["--node", server.url]
        alice = tmp_path / "alice.token"
        alice.write_text("alice-" + "a" * 40 + "\n")
        added = meshkp_cli("admins", "add", *node, "--data-dir", str(data),
                           "--new-token-file", str(alice), "alice")
        assert added.returncode == 0, added.stderr
        # Alice's own token now authenticates, on any node applying this policy.
        listed = meshkp_cli("admins", *node, "--token-file", str(alice))
        assert listed.returncode == 0, listed.stderr
        assert "alice  set by admin (" in listed.stdout  # the founder seeded "admin" too
        assert meshkp_cli("conflicts", *node).stdout == "no conflicts\n"
        assert meshkp_cli("conflicts", "list", *node).stdout == "no conflicts\n"
        unknown = meshkp_cli("conflicts", "resolve", *node, "--token-file", str(alice),
                             "--keep", "delete", "0" * 32)
        assert unknown.returncode == 1 and "404" in unknown.stderr and "Traceback" not in unknown.stderr
        removed = meshkp_cli("admins", "remove", *node, "--data-dir", str(data), "alice")
        assert removed.returncode == 0, removed.stderr
        refused = meshkp_cli("admins", *node, "--token-file", str(alice))
        assert refused.returncode == 1 and "refused the admin token" in refused.stderr
    finally:
        server.stop()
    server.assert_no_bugs()
