"""HKPS: the TLS context of the HKP listener, from a PEM certificate chain and key.

The context is the server side of TLS 1.2+ with the ssl module's defaults for ciphers (Python
follows OpenSSL's secure defaults); HKPS clients (GnuPG's dirmngr, Sequoia) all speak TLS 1.2
or 1.3. The files are read once, at start; a certificate renewal needs a restart (or a TLS
proxy in front, which is the usual pool setup, with the node on plain HTTP behind it).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from meshkp.errors import ConfigError

if TYPE_CHECKING:
    from meshkp.node.config import NodeConfig


def tls_context(config: NodeConfig) -> ssl.SSLContext | None:
    """The server context of config's --tls-cert/--tls-key, or None for plain HTTP."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {config.tls_cert} and key "
                          f"{config.tls_key}: {exc}; give a PEM chain and its private key") from None
    return context
