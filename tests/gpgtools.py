"""Running real GnuPG in tests: a fresh GNUPGHOME (mode 700) per use."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

GPG = shutil.which("gpg")


@contextmanager
def gnupg_home() -> Iterator[Path]:
    """A throwaway GNUPGHOME; dirmngr/agent are killed on exit so no daemon outlives the test."""
    home = Path(tempfile.mkdtemp(prefix="meshkp-gnupg-"))
    home.chmod(0o700)
    try:
        yield home
    finally:
        env = {**os.environ, "GNUPGHOME": str(home)}
        subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


def gpg(
    home: Path, *args: str, input: bytes | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    """Run gpg in batch mode inside `home`; never raises on gpg's exit code."""
    env = {**os.environ, "GNUPGHOME": str(home), "LC_ALL": "C"}
    return subprocess.run(
        [GPG or "gpg", "--batch", "--no-tty", *args],
        input=input, capture_output=True, env=env, timeout=timeout, check=False,
    )


def show_keys_colons(home: Path, path: Path) -> list[list[str]]:
    """`gpg --show-keys --with-colons` records of a key file, split into fields."""
    result = gpg(home, "--show-keys", "--with-colons", "--fixed-list-mode", str(path))
    return [line.split(":") for line in result.stdout.decode("utf-8", "replace").splitlines()]
