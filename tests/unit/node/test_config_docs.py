"""docs/configuration.md is tested against the key table and the config dataclasses: every key
has a row in its table, every default shown is the one in the code, every serve option is
listed, and the full example is a valid file holding the seed's block."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from cli.serve import serve
from meshkp.node.settings.build import build, resolve
from meshkp.node.settings.keys import KEYS, Key
from meshkp.node.settings.layers import FILE, Origin, Setting
from meshkp.node.settings.toml_file import parse_config_text

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"
SEED = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "seed-config.toml"
# Keys whose default is derived from other values: the docs show a dash and say how.
DERIVED = {"cluster.node_id", "cluster.bind_address", "cluster.advertise_address",
           "cluster.key_file", "cluster.discovery.mdns_interfaces",
           "cluster.consensus.heartbeat_timeout", "cluster.consensus.election_timeout",
           "cluster.consensus.commit_timeout", "cluster.consensus.snapshot_threshold",
           "cluster.consensus.trailing_logs", "log.access_log_file",
           "hkp.tls_cert", "hkp.tls_key", "hkp.admin_listen"}
_ROW = re.compile(r"^\| `([a-z_]+)` \| ([^|]+) \|")


def doc_tables() -> dict[str, dict[str, str]]:
    """Section -> key -> default cell, from the "### [section]" tables of the doc."""
    tables: dict[str, dict[str, str]] = {}
    section = None
    for line in DOC.read_text().splitlines():
        heading = re.match(r"^### \[([a-z.]+)\]$", line)
        if heading:
            section = heading.group(1)
            tables[section] = {}
        elif line.startswith("## "):
            section = None
        elif section is not None and (row := _ROW.match(line)):
            tables[section][row.group(1)] = row.group(2).strip()
    return tables


def code_default(key: Key) -> object:
    mesh = build({"mesh": Setting(True, Origin(FILE, "x", "x"))}).config
    assert mesh.membership is not None
    target = key.targets[0]
    if target == "mesh":
        return False
    if target in ("consensus.algorithm", "consensus.profile", "membership.profile"):
        return key.kind.from_toml(getattr(key.kind, "options", ["lan"])[0])
    section, _, name = target.partition(".")
    holder = {"node": mesh, "limits": mesh.limits, "replication": mesh.replication,
              "swim": mesh.membership.swim, "membership": mesh.membership}[section]
    return getattr(holder, name)


@pytest.mark.parametrize("key", KEYS, ids=[key.path for key in KEYS])
def test_every_key_has_a_row_with_the_code_default(key: Key) -> None:
    tables = doc_tables()
    assert key.section in tables, f"no ### [{key.section}] table in {DOC.name}"
    assert key.name in tables[key.section], f"{key.label} missing from {DOC.name}"
    cell = tables[key.section][key.name]
    if key.path in DERIVED:
        assert cell == "—", key.path
        return
    literal = re.fullmatch(r"`(.+)`", cell)
    assert literal, f"{key.label}: default {cell!r} is not a TOML value in backticks"
    shown = tomllib.loads(f"v = {literal.group(1)}")["v"]
    assert key.kind.from_toml(shown) == code_default(key), key.path


def test_no_row_names_a_key_that_does_not_exist() -> None:
    known = {(key.section, key.name) for key in KEYS}
    for section, rows in doc_tables().items():
        for name in rows:
            assert (section, name) in known, f"[{section}] {name} is documented but not a key"


def test_every_serve_option_is_in_the_options_table() -> None:
    text = DOC.read_text().split("## Options", 1)[1]
    for param in serve.params:
        for flag in param.opts:
            assert f"`{flag}" in text, flag


@pytest.mark.parametrize("doc", [DOC, DOC.parents[1] / "README.md"], ids=lambda p: p.name)
def test_every_toml_block_of_the_docs_is_a_valid_config(doc: Path) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", doc.read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        layer, problems = parse_config_text(block, doc.name)
        assert problems == [], problems
        resolve(layer)


def test_the_full_example_is_valid_and_holds_the_seed_block() -> None:
    example = DOC.read_text().split("```toml\n", 1)[1].split("```", 1)[0]
    layer, problems = parse_config_text(example, "example")
    assert problems == []
    resolve(layer)
    document, seed = tomllib.loads(example), tomllib.loads(SEED.read_text())
    for table in ("consensus", "discovery", "replication"):
        assert seed["cluster"][table].items() <= document["cluster"][table].items(), table
    plain = {k: v for k, v in seed["cluster"].items() if not isinstance(v, dict)}
    assert plain.items() <= document["cluster"].items()
