"""The machine-readable index format (draft-shaw-openpgp-hkp §5.2)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from meshkp.http.mr import escape_uid, index_document, key_block, key_field
from meshkp.openpgp.keyview import KeyView, Revocation, UserIdView

NOW = 1_700_000_000


def view(**changes: object) -> KeyView:
    fields: dict[str, object] = dict(
        fingerprint=bytes.fromhex("10FE8CF1B483F7525039AA2A361BC1F023E0DCCA"), version=4,
        key_id=bytes.fromhex("361BC1F023E0DCCA"), algorithm=1, bits=2048, created=1345589945,
        expires=None, revocation=None,
        user_ids=(UserIdView(b"alice <alice@example.com>", 1345589945, None, False),),
    )
    fields.update(changes)
    return KeyView(**fields)  # type: ignore[arg-type]


def unescape(text: str) -> bytes:
    """What gpg's parse_keyrec does to a uid field: undo every %XX."""
    out, i = bytearray(), 0
    while i < len(text):
        if text[i] == "%":
            out.append(int(text[i + 1 : i + 3], 16))
            i += 3
        else:
            out += text[i].encode()
            i += 1
    return bytes(out)


def test_plain_key_block() -> None:
    assert key_block(view(), NOW) == (
        b"pub:10FE8CF1B483F7525039AA2A361BC1F023E0DCCA:1:2048:1345589945::\n"
        b"uid:alice <alice@example.com>:1345589945::\n"
    )


def test_flags_and_expiry() -> None:
    block = key_block(view(expires=NOW - 1, revocation=Revocation(NOW - 5, None, ""), user_ids=(
        UserIdView(b"a", 5, NOW + 10, True), UserIdView(b"b", 5, NOW - 10, False))), NOW)
    lines = block.decode().splitlines()
    assert lines[0].endswith(f":{NOW - 1}:re")
    assert lines[1] == f"uid:a:5:{NOW + 10}:r"
    assert lines[2] == f"uid:b:5:{NOW - 10}:e"


def test_v3_keys_are_listed_by_key_id_and_v6_by_full_fingerprint() -> None:
    assert key_field(view(version=3, fingerprint=b"\x01" * 16, key_id=b"\xab" * 8)) == "AB" * 8
    assert key_field(view(version=6, fingerprint=b"\xcd" * 32)) == "CD" * 32


def test_escaping_of_separator_percent_controls_and_non_ascii() -> None:
    assert escape_uid("Jörg: 100%\n".encode()) == "J%C3%B6rg%3A 100%25%0A"


@given(st.binary(max_size=200))
def test_escaped_uid_is_one_7bit_field_and_round_trips(raw: bytes) -> None:
    escaped = escape_uid(raw)
    assert ":" not in escaped and "\n" not in escaped and "\r" not in escaped
    assert escaped.isascii()
    assert unescape(escaped) == raw


def test_document_has_info_line_and_final_newline() -> None:
    doc = index_document([key_block(view(), NOW)], 1)
    assert doc.startswith(b"info:1:1\n") and doc.endswith(b"\n")
    assert index_document([], 0) == b"info:1:0\n"
