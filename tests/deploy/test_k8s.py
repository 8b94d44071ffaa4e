"""deploy/k8s/: kubectl is not here, so the manifests are parsed and their cross references
checked (names, selectors, ports, volumes, probes, the Secret's key), and the ConfigMap's TOML
goes through `meshkp config check`."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.conftest import DEPLOY, REPO

K8S = DEPLOY / "k8s"
NAMESPACE = "meshkp"


def documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None)
    return docs


def one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} manifests"
    return found[0]


def statefulset() -> dict[str, Any]:
    (found,) = [d for d in documents() if d["kind"] == "StatefulSet"]
    return found


def container() -> dict[str, Any]:
    (found,) = statefulset()["spec"]["template"]["spec"]["containers"]
    return found


def config_toml() -> str:
    volume = volumes()["config"]
    return one("ConfigMap", volume["configMap"]["name"])["data"][volume["configMap"]["items"][0]["key"]]


def volumes() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in statefulset()["spec"]["template"]["spec"]["volumes"]}


def container_ports() -> dict[tuple[str, str], int]:
    return {(p["name"], p.get("protocol", "TCP")): p["containerPort"] for p in container()["ports"]}


def test_every_document_is_namespaced_and_well_formed() -> None:
    docs = documents()
    assert {d["kind"] for d in docs} >= {"Namespace", "Service", "StatefulSet",
                                          "PodDisruptionBudget", "ConfigMap", "Secret"}
    for doc in docs:
        assert doc["apiVersion"] and doc["metadata"]["name"], doc
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]["name"]


def test_services_and_budget_select_the_statefulset_pods() -> None:
    sts = statefulset()
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    headless = one("Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True  # peers found before ready
    for service in (d for d in documents() if d["kind"] == "Service"):
        assert service["spec"]["selector"].items() <= pod_labels.items(), service["metadata"]
    pdb = one("PodDisruptionBudget", "meshkp")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    # A budget that keeps a majority of the replicas.
    assert sts["spec"]["replicas"] - pdb["spec"]["maxUnavailable"] > sts["spec"]["replicas"] // 2


def test_service_ports_name_container_ports() -> None:
    ports = container_ports()
    for service in (d for d in documents() if d["kind"] == "Service"):
        for port in service["spec"]["ports"]:
            key = (port["targetPort"], port.get("protocol", "TCP"))
            assert key in ports, f"{service['metadata']['name']}: {key} is no container port"
            if service["spec"].get("clusterIP") == "None":  # peers dial the pod's own port
                assert ports[key] == port["port"], key


def test_ports_match_the_config() -> None:
    config = tomllib.loads(config_toml())
    ports = container_ports()
    gossip = int(config["cluster"]["bind_address"].rsplit(":", 1)[1])
    assert ports[("http", "TCP")] == config["hkp"]["port"]
    assert ports[("gossip-udp", "UDP")] == ports[("gossip-tcp", "TCP")] == gossip
    assert ports[("sync", "TCP")] == gossip + 1  # port 0: gossip port + 1
    assert config["hkp"]["host"] == "0.0.0.0"


def test_discovery_names_the_headless_service() -> None:
    config = tomllib.loads(config_toml())
    sts = statefulset()
    gossip = config["cluster"]["bind_address"].rsplit(":", 1)[1]
    expected = f"dns:{sts['spec']['serviceName']}.{NAMESPACE}.svc.cluster.local:{gossip}"
    assert config["cluster"]["discovery"] == {"method": "dns", "peers": [expected]}


def test_probes_use_the_health_endpoints() -> None:
    probes = container()
    assert probes["readinessProbe"]["httpGet"] == {"path": "/cluster/health", "port": "http"}
    assert probes["livenessProbe"]["httpGet"] == {"path": "/pks/health", "port": "http"}


def test_volumes_mounts_and_the_secret_agree() -> None:
    sts = statefulset()
    claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    mounts = {m["name"]: m for m in container()["volumeMounts"]}
    assert mounts.keys() == volumes().keys() | claims
    config = tomllib.loads(config_toml())
    assert mounts["data"]["mountPath"] == config["cluster"]["data_dir"]
    assert (mounts["config"]["mountPath"] ==
            container()["args"][container()["args"].index("--config") + 1])
    key = volumes()["cluster-key"]["secret"]
    (item,) = key["items"]
    secret = one("Secret", key["secretName"])
    assert item["key"] in secret["stringData"]
    assert f"{mounts['cluster-key']['mountPath']}/{item['path']}" == config["cluster"]["key_file"]


def test_the_per_pod_settings_come_from_the_downward_api() -> None:
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container()["env"]}
    assert env == {"MESHKP_CLUSTER_NODE_ID": "metadata.name",
                   "MESHKP_CLUSTER_ADVERTISE_ADDRESS": "status.podIP"}


def test_config_check_accepts_the_configmap(tmp_path: Path) -> None:
    path = tmp_path / "meshkp.toml"
    path.write_text(config_toml())
    result = subprocess.run([sys.executable, "-m", "cli.main", "config", "check", str(path)],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout
