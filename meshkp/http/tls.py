"""HKPS: the TLS context of the HKP listener, from a PEM certificate chain and key.

The context is the server side of TLS 1.2+ with the ssl module's defaults for ciphers (Python
follows OpenSSL's secure defaults); HKPS clients (GnuPG's dirmngr, Sequoia) all speak TLS 1.2
or 1.3.

`ServerTls.reload()` (SIGHUP) serves a renewed certificate without a restart. The listener's
context is never changed: the new files are loaded into a fresh context, and only once that
succeeded does it become the one served; the listener's SNI callback (which OpenSSL calls on
every ClientHello, with or without a server name) hands each new connection the current
context. Connections already open keep theirs. A broken file (or one caught half-way through a
renewal, key and certificate not matching) leaves the old certificate served. Loading new
files into the live context instead would leave it, on a failure half-way (certificate loaded,
key refused), serving neither.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
from pathlib import Path

from meshkp.errors import ConfigError

log = logging.getLogger(__name__)


class ServerTls:
    """The server context of a listener (--tls-cert/--tls-key) and the files it comes from;
    ConfigError at construction if they do not load."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.cert = cert
        self.key = key
        self.context = _new_context()  # the listener's: never reloaded
        _load(self.context, cert, key)
        self.current = self.context  # what new connections are served
        self.context.sni_callback = self._serve_current
        self.fingerprint = _leaf_sha256(cert.read_bytes())

    def _serve_current(self, connection: ssl.SSLObject, _server_name: str | None,
                       _context: ssl.SSLContext) -> None:
        if self.current is not self.context:
            connection.context = self.current

    def reload(self) -> bool:
        """Load the files again, for connections accepted from now on; on any failure keep the
        old certificate (and say why). True if the new files are served."""
        try:
            pem = self.cert.read_bytes()
            fresh = _new_context()
            _load(fresh, self.cert, self.key)
        except (OSError, ConfigError) as exc:
            log.error("event=tls_reload_failed cert=%s key=%s error=%r "
                      "action=kept_old_certificate sha256=%s", self.cert, self.key,
                      str(exc), self.fingerprint)
            return False
        self.current = fresh
        old, self.fingerprint = self.fingerprint, _leaf_sha256(pem)
        log.info("event=tls_reloaded cert=%s sha256=%s changed=%s", self.cert, self.fingerprint,
                 old != self.fingerprint)
        return True


def _new_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _load(context: ssl.SSLContext, cert: Path, key: Path) -> None:
    """Load `cert` and `key` into a fresh `context`; ConfigError naming the files."""
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {cert} and key {key}: {exc}; give "
                          "a PEM certificate chain and its private key") from None


def _leaf_sha256(pem: bytes) -> str:
    """The SHA-256 of the first certificate of a PEM chain (what `openssl x509 -fingerprint
    -sha256` prints), to tell in the log which certificate is served; "?" if none parses."""
    text = pem.decode("ascii", "replace")
    start = text.find("-----BEGIN CERTIFICATE-----")
    end = text.find("-----END CERTIFICATE-----", start)
    if start < 0 or end < 0:
        return "?"
    try:
        der = ssl.PEM_cert_to_DER_cert(text[start:end + len("-----END CERTIFICATE-----")])
    except ValueError:
        return "?"
    return hashlib.sha256(der).hexdigest()
