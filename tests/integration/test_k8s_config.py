"""The Kubernetes ConfigMap's TOML, unchanged, runs 3 real `meshkp serve --config` processes
that form a mesh. What a pod gets from its StatefulSet (node id, advertise address) and what
only a cluster has (the pod network, the headless Service's DNS name, /data, the Secret) come
as MESHKP_* variables, as the StatefulSet passes them: the name resolves to loopback here."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from meshkp.net.crypto import generate_key, write_key_file
from tests.integration.conftest import REPO, ServerProcess, start_server
from tests.integration.test_membership import gossip_port, nodes_seen, wait_until

pytestmark = pytest.mark.integration

CONFIGMAP = REPO / "deploy" / "k8s" / "configmap.yaml"


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop(signal.SIGKILL if server.proc.poll() is None else signal.SIGTERM)
    for server in started:
        server.assert_no_bugs()


def test_the_configmap_forms_a_mesh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    servers: list[ServerProcess]) -> None:
    config = tmp_path / "meshkp.toml"
    config.write_text(yaml.safe_load(CONFIGMAP.read_text())["data"]["meshkp.toml"])
    key_file = tmp_path / "cluster.key"
    write_key_file(key_file, [generate_key()], overwrite=False)
    ports = [gossip_port() for _ in range(3)]
    for i, port in enumerate(ports):
        pod = f"meshkp-{i}"
        for name, value in {
            "MESHKP_CLUSTER_NODE_ID": pod,  # fieldRef metadata.name
            "MESHKP_CLUSTER_ADVERTISE_ADDRESS": "127.0.0.1",  # fieldRef status.podIP
            "MESHKP_CLUSTER_DATA_DIR": str(tmp_path / pod),
            "MESHKP_CLUSTER_BIND_ADDRESS": f"127.0.0.1:{port}",
            "MESHKP_CLUSTER_KEY_FILE": str(key_file),
            "MESHKP_CLUSTER_DISCOVERY_PEERS": f"dns:localhost:{ports[0]}",
            "MESHKP_HKP_HOST": "127.0.0.1",
            "MESHKP_HKP_PORT": "0",
            "MESHKP_MEMBERSHIP_PROFILE": "test",
        }.items():
            monkeypatch.setenv(name, value)
        servers.append(start_server(tmp_path / pod, timeout=60,
                                    serve_args=("--config", str(config))))
    pods = {f"meshkp-{i}" for i in range(3)}
    wait_until(lambda: all(nodes_seen(s) == dict.fromkeys(pods, "alive") for s in servers), 30,
               "3 pods alive everywhere", lambda: [nodes_seen(s) for s in servers])
    for server in servers:  # the StatefulSet's probes
        assert server.request("GET", "/cluster/health").status == 200
        assert server.request("GET", "/pks/health").status == 200
