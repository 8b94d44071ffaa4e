"""Files that hold secrets (cluster key, node identity, admin token): created 0600, atomically."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from meshkp.errors import ConfigError

log = logging.getLogger(__name__)


def write_secret_file(path: Path, text: str, *, overwrite: bool) -> None:
    """Write text to path with mode 0600 via a temporary file and rename; refuse to clobber."""
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            # link() fails if another process created `path` meanwhile: first writer wins.
            os.link(tmp, path)
            tmp.unlink()
    except FileExistsError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"{path} appeared while writing it; another process owns it") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_secret_file(path: Path, what: str) -> str:
    """Read a secret file as ASCII; warn when group or others can read it."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("event=secret_file_permissive what=%s path=%s mode=%o hint=chmod_600",
                    what.replace(" ", "_"), path, mode & 0o777)
    return text
