"""HKPS: `meshkp serve --tls-cert --tls-key` speaks TLS on the HKP port, and real GnuPG fetches
a key over hkps:// from it, trusting a test CA through the GNUPGHOME's dirmngr.conf
(hkp-cacert). GnuPG refuses an IP literal for hkps, so gpg runs in a private mount namespace
(`unshare -m`) whose /etc/hosts maps a test name to 127.0.0.1."""

from __future__ import annotations

import datetime
import functools
import http.client
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.gpgtools import GPG, gnupg_home
from tests.integration.conftest import ServerProcess, start_server

HOSTNAME = "keys.meshkp.test"
ALICE = "10FE8CF1B483F7525039AA2A361BC1F023E0DCCA"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

def _can_unshare_mounts() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    return probe.returncode == 0


pytestmark = [
    pytest.mark.integration,
    pytest.mark.gpg,
    pytest.mark.skipif(GPG is None, reason="gpg is not installed (apt-get install gnupg dirmngr)"),
    pytest.mark.skipif(not _can_unshare_mounts(),
                       reason="needs root and unshare -m (a private /etc/hosts for gpg)"),
]


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate it signed for HOSTNAME: (ca, cert, key) PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("meshkp test CA")).issuer_name(_name("meshkp test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(HOSTNAME)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName(HOSTNAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


@dataclass
class TlsServer(ServerProcess):
    """The harness's server handle, speaking HTTPS (verified against the test CA)."""

    ca_file: Path | None = None

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=context)


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TlsServer, Path]]:
    directory = tmp_path_factory.mktemp("hkps")
    ca, cert, key = make_certificates(directory)
    server = start_server(directory / "node", "--tls-cert", str(cert), "--tls-key", str(key),
                          server_type=functools.partial(TlsServer, ca_file=ca))
    assert isinstance(server, TlsServer)
    assert server.add((FIXTURES / "alice_signed.asc").read_bytes()).status == 200
    yield server, ca
    server.stop()
    server.assert_no_bugs()


def test_plain_http_is_not_served_on_the_tls_port(tls_node: tuple[TlsServer, Path]) -> None:
    server, _ = tls_node
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    with pytest.raises((http.client.HTTPException, OSError)):
        conn.request("GET", "/pks/health")
        conn.getresponse().read()
    conn.close()


def gpg_recv_over_hkps(port: int, ca: Path, tmp_path: Path) -> None:
    """Real `gpg --recv-keys` of Alice over hkps://HOSTNAME:port, trusting `ca` (dirmngr.conf)."""
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost {HOSTNAME}\n")
    with gnupg_home() as home:
        (home / "dirmngr.conf").write_text(f"hkp-cacert {ca}\nstandard-resolver\n")
        script = (f'mount --bind "$1" /etc/hosts && exec "$2" --batch --no-tty --keyserver '
                  f'"hkps://{HOSTNAME}:{port}" --recv-keys {ALICE}')
        env = {**os.environ, "GNUPGHOME": str(home), "LC_ALL": "C"}
        done = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(hosts), GPG or "gpg"],
                              capture_output=True, env=env, timeout=120, check=False)
        output = (done.stdout + done.stderr).decode("utf-8", "replace")
        assert done.returncode == 0, output
        assert "imported: 1" in output or "public key" in output, output


def test_gpg_recv_keys_over_hkps_with_a_test_ca(tls_node: tuple[TlsServer, Path],
                                                 tmp_path: Path) -> None:
    server, ca = tls_node
    gpg_recv_over_hkps(server.port, ca, tmp_path)


def served_certificate(port: int, ca: Path) -> bytes:
    """The DER certificate a new TLS connection to 127.0.0.1:port is served (verified by `ca`)."""
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=HOSTNAME) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def pem_to_der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def wait_for_log(server: TlsServer, needle: str, count: int) -> None:
    deadline = time.monotonic() + 15
    while server.log_text().count(needle) < count:
        assert time.monotonic() < deadline, f"no {needle} in the log:\n{server.log_text()[-3000:]}"
        time.sleep(0.05)


def test_sighup_serves_a_renewed_certificate_and_keeps_it_over_a_broken_one(
        tmp_path: Path) -> None:
    """A certificate renewal without a restart: SIGHUP, and new connections get the new
    certificate; a broken file on the next SIGHUP keeps the last good one (and says so)."""
    first, renewed = tmp_path / "first", tmp_path / "renewed"
    first.mkdir()
    renewed.mkdir()
    ca1, cert1, key1 = make_certificates(first)
    ca2, cert2, key2 = make_certificates(renewed)
    live_cert, live_key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(cert1, live_cert)
    shutil.copy(key1, live_key)
    server = start_server(tmp_path / "node", "--tls-cert", str(live_cert), "--tls-key",
                          str(live_key), server_type=functools.partial(TlsServer, ca_file=ca1))
    assert isinstance(server, TlsServer)
    try:
        assert server.add((FIXTURES / "alice_signed.asc").read_bytes()).status == 200
        assert served_certificate(server.port, ca1) == pem_to_der(cert1)
        shutil.copy(cert2, live_cert)
        shutil.copy(key2, live_key)
        os.kill(server.proc.pid, signal.SIGHUP)
        wait_for_log(server, "event=tls_reloaded", 1)
        assert served_certificate(server.port, ca2) == pem_to_der(cert2)
        assert "changed=True" in server.log_text()
        server.ca_file = ca2  # the harness's own requests now trust the renewed chain
        gpg_recv_over_hkps(server.port, ca2, tmp_path)  # GnuPG trusts the renewed chain
        # A half-written renewal: the key does not match the certificate, then a garbage file.
        shutil.copy(cert1, live_cert)
        os.kill(server.proc.pid, signal.SIGHUP)
        wait_for_log(server, "event=tls_reload_failed", 1)
        live_cert.write_text("not a certificate\n")
        os.kill(server.proc.pid, signal.SIGHUP)
        wait_for_log(server, "event=tls_reload_failed", 2)
        assert served_certificate(server.port, ca2) == pem_to_der(cert2)
        assert "action=kept_old_certificate" in server.log_text()
        assert server.lookup(op="get", search="0x" + ALICE).status == 200
    finally:
        server.stop()
    server.assert_no_bugs()
