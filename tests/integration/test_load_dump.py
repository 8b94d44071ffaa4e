"""`meshkp load` and `meshkp dump` as an operator runs them: real processes, real LevelDB, real gpg."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.keygen import generate_key, write_keyring
from meshkp.bulk.datadir import store_path
from meshkp.keys.ingest import KEYS_COUNTER
from meshkp.keys.merkle_index import MerkleIndex
from meshkp.keys.record import KeyRecord
from meshkp.store.leveldb import LevelDBStore
from meshkp.store.protocol import IndexKind
from tests.gpgtools import GPG, gnupg_home, gpg, show_keys_colons
from tests.integration.conftest import REPO, start_server

pytestmark = pytest.mark.integration

DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-keyring.gpg")
needs_debian = pytest.mark.skipif(
    not DEBIAN_KEYRING.exists(), reason="debian-keyring is not installed (apt-get install debian-keyring)"
)
needs_gpg = pytest.mark.skipif(GPG is None, reason="gpg is not installed")
NODE_ID = "loader-test"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    summary: dict


def meshkp(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], cwd=REPO, capture_output=True, text=True,
        timeout=timeout, check=False,
    )


def load(data_dir: Path, *files: Path) -> Run:
    summary_path = data_dir.with_name(data_dir.name + "-summary.json")
    summary_path.unlink(missing_ok=True)
    done = meshkp("load", "--data-dir", str(data_dir), "--node-id", NODE_ID, "--no-progress",
                  "--summary-json", str(summary_path), *map(str, files))
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return Run(done.returncode, done.stdout, done.stderr, summary)


def records(data_dir: Path) -> dict[bytes, bytes]:
    store = LevelDBStore(store_path(data_dir))
    try:
        return dict(store.iter_records())
    finally:
        store.close()


@pytest.fixture(scope="module")
def debian_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Run]]:
    data_dir = tmp_path_factory.mktemp("debian") / "node"
    yield data_dir, load(data_dir, DEBIAN_KEYRING)


@needs_debian
@needs_gpg
def test_all_905_debian_keys_load_and_come_back_by_fingerprint(debian_dir) -> None:
    data_dir, run = debian_dir
    assert run.code == 0, run.stderr
    assert run.summary["totals"] == {
        "keys": 905, "loaded": 905, "merged": 0, "unchanged": 0, "rejected": 0
    }
    assert "loaded (new)" in run.stdout and "905" in run.stdout
    with gnupg_home() as home:
        listing = show_keys_colons(home, DEBIAN_KEYRING)
    gpg_fingerprints, in_primary = [], False
    for fields in listing:  # the first fpr after a pub (rvk lines may come between)
        if fields[0] == "fpr" and in_primary:
            gpg_fingerprints.append(bytes.fromhex(fields[9]))
        in_primary = fields[0] in ("pub", "rvk") or (in_primary and fields[0] != "fpr")
    assert len(set(gpg_fingerprints)) == 905
    store = LevelDBStore(store_path(data_dir))
    try:
        assert store.counter(KEYS_COUNTER) == 905
        for fingerprint in gpg_fingerprints:
            assert store.lookup(IndexKind.FINGERPRINT, fingerprint, 2) == [fingerprint]
            record = KeyRecord.decode(store.get(fingerprint) or b"")
            assert record.certificate is not None and record.certificate.user_ids
            assert record.vv.to_obj() == {NODE_ID: 1}
    finally:
        store.close()


def round_trip(data_dir: Path, tmp_path: Path, keys: int, keys_per_file: int) -> None:
    """dump data_dir, load the dump into a fresh dir: the stored records must be identical."""
    out = tmp_path / "dump"
    dumped = meshkp("dump", "--data-dir", str(data_dir), "--out", str(out),
                    "--keys-per-file", str(keys_per_file), "--no-progress")
    assert dumped.returncode == 0, dumped.stderr
    files = -(-keys // keys_per_file)
    assert sorted(p.name for p in out.iterdir()) == [f"hkp-dump-{n:04d}.pgp" for n in range(files)]
    assert f"{keys} keys in {files} file(s)" in dumped.stdout
    again = load(tmp_path / "copy", out)
    assert again.code == 0, again.stderr
    assert again.summary["totals"]["loaded"] == keys
    assert records(tmp_path / "copy") == records(data_dir)


def test_dump_then_load_gives_identical_records(tmp_path: Path) -> None:
    keyring = tmp_path / "keys.gpg"
    keyring.write_bytes(b"".join(generate_key(i, with_subkey=i % 3 > 0).data for i in range(60)))
    data_dir = tmp_path / "node"
    assert load(data_dir, keyring).summary["totals"]["loaded"] == 60
    round_trip(data_dir, tmp_path, keys=60, keys_per_file=25)


@needs_debian
@pytest.mark.slow
def test_debian_keyring_dump_then_load_gives_identical_records(debian_dir, tmp_path: Path) -> None:
    data_dir, first = debian_dir
    assert first.code == 0, first.stderr
    round_trip(data_dir, tmp_path, keys=905, keys_per_file=400)


def test_loading_the_same_file_twice_leaves_everything_unchanged(tmp_path: Path) -> None:
    keyring = tmp_path / "keys.gpg"
    write_keyring(str(keyring), 100, processes=1)
    data_dir = tmp_path / "node"
    assert load(data_dir, keyring).summary["totals"]["loaded"] == 100
    before = records(data_dir)
    second = load(data_dir, keyring)
    assert second.code == 0, second.stderr
    assert second.summary["totals"] == {
        "keys": 100, "loaded": 0, "merged": 0, "unchanged": 100, "rejected": 0
    }
    assert records(data_dir) == before
    store = LevelDBStore(store_path(data_dir))
    try:  # anti-entropy's tree was kept in the load's batches: no rebuild needed at start
        assert MerkleIndex().size(store) == store.counter(KEYS_COUNTER) == 100
    finally:
        store.close()


def test_malformed_file_gets_a_clear_error_and_leaves_the_store_unchanged(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    good = tmp_path / "good.gpg"
    good.write_bytes(generate_key(1).data)
    assert load(data_dir, good).code == 0
    before = records(data_dir)
    broken = tmp_path / "broken.pgp"
    broken.write_bytes(b"".join(generate_key(i).data for i in range(5, 9))[:-20])
    run = load(data_dir, broken)
    assert run.code == 1
    assert "broken.pgp" in run.stderr and "truncated" in run.stderr
    assert "nothing of this file was loaded" in run.stderr
    assert "Traceback" not in run.stderr
    assert records(data_dir) == before


def test_load_and_dump_refuse_while_a_node_serves_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    keyring = tmp_path / "keys.gpg"
    keyring.write_bytes(generate_key(3).data)
    server = start_server(data_dir)
    try:
        run = load(data_dir, keyring)
        dumped = meshkp("dump", "--data-dir", str(data_dir), "--out", str(tmp_path / "out"))
    finally:
        server.stop()
    assert run.code == 2
    assert "in use by a running meshkp node" in run.stderr and "/pks/add" in run.stderr
    assert "Traceback" not in run.stderr
    assert dumped.returncode == 2 and "running meshkp node" in dumped.stderr
    assert load(data_dir, keyring).summary["totals"]["loaded"] == 1  # works once it stopped


@needs_gpg
def test_gnupg_reads_the_dump_files(tmp_path: Path) -> None:
    keyring = tmp_path / "keys.asc"
    write_keyring(str(keyring), 25, armored=True, processes=1)
    data_dir = tmp_path / "node"
    assert load(data_dir, keyring).summary["totals"]["loaded"] == 25
    out = tmp_path / "dump"
    assert meshkp("dump", "--data-dir", str(data_dir), "--out", str(out),
                  "--keys-per-file", "10").returncode == 0
    files = sorted(out.iterdir())
    assert len(files) == 3
    with gnupg_home() as home:
        imported = gpg(home, "--import", *map(str, files))
        assert b"imported: 25" in imported.stderr, imported.stderr
        checked = gpg(home, "--check-sigs", "--with-colons")
    statuses = [line.split(":")[1] for line in checked.stdout.decode().splitlines()
                if line.startswith("sig:")]
    assert statuses == ["!"] * 50
