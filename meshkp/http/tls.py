"""HKPS: the TLS context of the HKP listener, from a PEM certificate chain and key.

The context is the server side of TLS 1.2+ with the ssl module's defaults for ciphers (Python
follows OpenSSL's secure defaults); HKPS clients (GnuPG's dirmngr, Sequoia) all speak TLS 1.2
or 1.3. The files are read once, at start; a certificate renewal needs a restart (or a TLS
proxy in front, which is the usual pool setup, with the node on plain HTTP behind it).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from meshkp.errors import ConfigError


def tls_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """The server context of --tls-cert/--tls-key, or None (plain HTTP) without them."""
    if cert is None or key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {cert} and key {key}: {exc}; give "
                          "a PEM certificate chain and its private key") from None
    return context
