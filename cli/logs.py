"""Log setup shared by the commands: key=value lines on stderr, one per event."""

from __future__ import annotations

import logging
import sys

LOG_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


def setup_logging(level: str) -> None:
    """Send the root logger's records to stderr as key=value lines at `level`."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr, force=True)
