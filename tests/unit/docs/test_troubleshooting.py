"""docs/troubleshooting.md lists every operator-facing error message of the code (messages.py)."""

from __future__ import annotations

from tests.unit.docs.messages import DOC, missing_from, normalise, operator_messages


def test_every_operator_facing_message_is_in_the_troubleshooting_doc() -> None:
    lacking = missing_from(DOC.read_text())
    assert not lacking, (
        f"{len(lacking)} operator-facing message(s) are missing from docs/troubleshooting.md; "
        "add each (as written, with … for the values it fills in), what it means and what to "
        "do:\n" + "\n".join(f"  {m.where} ({m.kind}): {m.key!r}" for m in lacking))


def test_the_scan_finds_the_messages_of_each_kind() -> None:
    # So that the doc check cannot pass by reading nothing.
    keys = {normalise(m.key): m for m in operator_messages()}
    kinds = {m.kind for m in keys.values()}
    assert {"ClickException", "UsageError", "BackupError", "ConfigError", "HTTPUnauthorized",
            "InvalidRequest", "StoreError"} <= kinds
    assert any("is the node running, and is --node its http address" in k for k in keys)
    assert any("is not empty: restore into a new directory" in k for k in keys)
    assert len(keys) > 150


def test_a_doc_without_a_message_names_it() -> None:
    text = DOC.read_text()
    gone = "too many uploads are being received right now"
    start = text.lower().index(gone)
    lacking = missing_from(text[:start] + text[start + len(gone):])
    assert [m.where.split(":")[0] for m in lacking] == ["meshkp/http/uploads.py"]
