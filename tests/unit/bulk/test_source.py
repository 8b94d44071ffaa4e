"""Input files are recognised by content: binary keyrings/dumps, armored files, empty files."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.keygen import generate_key
from meshkp.bulk.source import InputError, InputKind, detect, open_pieces
from meshkp.openpgp.armor import armor


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x99\x01\x0d", InputKind.BINARY),
        (b"\xc6\x33", InputKind.BINARY),
        (b"-----BEGIN PGP PUBLIC KEY BLOCK-----", InputKind.ARMORED),
        (b"Some mail text\n-----BEGIN PGP", InputKind.ARMORED),
        (b"\xef\xbb\xbf-----BEGIN PGP PUBLIC KEY BLOCK-----", InputKind.ARMORED),
        (b"", InputKind.EMPTY),
        (b" \n\t", InputKind.EMPTY),
    ],
)
def test_detect(head: bytes, kind: InputKind) -> None:
    assert detect(head) is kind


def test_binary_file_is_one_piece_weighing_the_file(tmp_path: Path) -> None:
    data = generate_key(0).data + generate_key(1).data
    path = tmp_path / "hkp-dump-0000.pgp"
    path.write_bytes(data)
    with open_pieces(path) as (kind, pieces):
        assert kind is InputKind.BINARY
        assert [bytes(p.data[:]) for p in pieces] == [data]
        assert pieces[0].weight == len(data)


def test_armored_file_gives_each_block(tmp_path: Path) -> None:
    first, second = generate_key(0).data, generate_key(1).data
    path = tmp_path / "keys.txt"
    path.write_text("header text\n" + armor(first) + "between\n" + armor(second))
    with open_pieces(path) as (kind, pieces):
        assert kind is InputKind.ARMORED
        assert [p.data for p in pieces] == [first, second]
        assert sum(p.weight for p in pieces) <= path.stat().st_size


def test_armored_file_with_a_byte_order_mark(tmp_path: Path) -> None:
    key = generate_key(0).data
    path = tmp_path / "windows.asc"
    path.write_bytes(b"\xef\xbb\xbf" + armor(key).replace("\n", "\r\n").encode())
    with open_pieces(path) as (kind, pieces):
        assert kind is InputKind.ARMORED
        assert [p.data for p in pieces] == [key]


def test_text_without_armor_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("just some text\n")
    with pytest.raises(InputError, match="not valid ASCII armor"), open_pieces(path):
        pass


def test_bad_crc_is_an_input_error(tmp_path: Path) -> None:
    text = armor(generate_key(0).data)
    lines = text.splitlines()
    crc_line = next(i for i, line in enumerate(lines) if line.startswith("="))
    lines[crc_line] = "=AAAA"
    path = tmp_path / "bad.asc"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="CRC24"), open_pieces(path):
        pass
