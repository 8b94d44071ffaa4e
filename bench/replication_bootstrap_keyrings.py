"""Bootstrap of a new node from the three Debian keyrings, against `meshkp load` of them (issue 11).

The same benchmark as bench/replication_bootstrap.py, on real keys: debian-keyring,
debian-maintainers and debian-nonupload (1,172 keys, 32 MB), median of 3 runs.

    python -m bench.replication_bootstrap_keyrings
"""

from __future__ import annotations

from pathlib import Path

from bench import replication_bootstrap

KEYRINGS = [Path("/usr/share/keyrings") / name
            for name in ("debian-keyring.gpg", "debian-maintainers.gpg", "debian-nonupload.gpg")]


def run(runs: int = 3) -> None:
    """The benchmark (bench.run_all calls it with runs=1 for --quick)."""
    missing = [str(path) for path in KEYRINGS if not path.exists()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: install the debian-keyring package")
    replication_bootstrap.run(runs=runs, keyrings=[str(path) for path in KEYRINGS])


def main() -> None:
    run()


if __name__ == "__main__":
    main()
