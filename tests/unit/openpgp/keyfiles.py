"""Loading corpus keys (tests/fixtures, copied from ../shared/corpus) for the OpenPGP tests."""

from __future__ import annotations

from pathlib import Path

from meshkp.openpgp.certificate import Certificate
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.keytext import TransferableKey, split_stream, streams
from meshkp.openpgp.normalise import normalise
from meshkp.openpgp.packet import Packet

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-keyring.gpg")


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def raw_keys(name: str) -> list[tuple[Packet, ...]]:
    """The packets of each transferable key in a fixture, exactly as stored in the file."""
    found = []
    for stream in streams(fixture(name)):
        for item in split_stream(parse_packets(stream)):
            if isinstance(item, TransferableKey):
                found.append(item.packets)
    return found


def raw_key(name: str) -> tuple[Packet, ...]:
    (only,) = raw_keys(name)
    return only


def all_packets(name: str) -> list[Packet]:
    return [p for stream in streams(fixture(name)) for p in parse_packets(stream)]


def cert(name: str) -> Certificate:
    return normalise(raw_key(name))
