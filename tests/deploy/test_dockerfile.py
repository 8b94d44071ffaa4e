"""deploy/docker/Dockerfile, without a Docker daemon here: its build context holds what
`pip install .` needs (a wheel is built from exactly the COPY'd files), and the image agrees
with the StatefulSet (user, ports, entry point, data volume)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from tests.deploy.conftest import DEPLOY, REPO
from tests.deploy.test_k8s import container, statefulset

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments out."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current += line.removesuffix("\\").strip() + " "
        if not line.endswith("\\"):
            lines.append(current.strip())
            current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def final_stage() -> list[tuple[str, str]]:
    stages: list[list[tuple[str, str]]] = []
    for name, args in instructions():
        if name == "FROM":
            stages.append([])
        stages[-1].append((name, args))
    return stages[-1]


def copied_sources() -> list[str]:
    sources = []
    for name, args in instructions():
        if name == "COPY" and not args.startswith("--from"):
            sources.extend(args.split()[:-1])
    return sources


def test_the_build_context_makes_a_complete_wheel(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for source in copied_sources():
        path = REPO / source
        assert path.exists(), f"COPY {source}: not in the repository"
        if path.is_dir():
            shutil.copytree(path, context / source,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, context / source)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                             str(tmp_path / "wheels"), str(context)],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "wheels").glob("meshkp-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("meshkp/node/node.py", "crdt/__init__.py", "cli/main.py",
                    "meshkp/samples/tails.asc"):
        assert package in names, f"{package} missing from the image's wheel"


def test_the_image_matches_the_statefulset() -> None:
    stage = dict(final_stage())
    pod = statefulset()["spec"]["template"]["spec"]["securityContext"]
    assert stage["USER"] == f"{pod['runAsUser']}:{pod['runAsGroup']}"
    exposed = set(stage["EXPOSE"].split())
    ports = {f"{p['containerPort']}/{p.get('protocol', 'TCP').lower()}" for p in container()["ports"]}
    assert exposed == ports
    entry = json.loads(stage["ENTRYPOINT"])
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert entry == ["meshkp"] and "meshkp" in scripts
    assert container()["args"][0] == "serve"
    data = {m["mountPath"] for m in container()["volumeMounts"] if m["name"] == "data"}
    assert json.loads(stage["VOLUME"]) == sorted(data)
