"""Human-readable HTML for op=index, op=vindex and op=stats (without options=mr)."""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import quote

from meshkp.openpgp.keyview import KeyView, SignatureView
from meshkp.openpgp.pubkey import PublicKeyAlgorithm

_STYLE = (
    "body{font-family:sans-serif;margin:2em}pre{font-size:95%}"
    "table{border-collapse:collapse}td,th{padding:.2em .8em;text-align:left}"
    ".r{color:#a00}.e{color:#888}"
)

_SIG_NAMES = {
    0x10: "sig", 0x11: "sig1", 0x12: "sig2", 0x13: "sig3", 0x18: "sbind", 0x19: "bind",
    0x1F: "direct", 0x20: "revok", 0x28: "subrev", 0x30: "uidrev",
}


def page(title: str, body: str) -> bytes:
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    ).encode()


def _date(value: int | None) -> str:
    if not value:
        return ""
    return time.strftime("%Y-%m-%d", time.gmtime(value))


def _algorithm(algorithm: int, bits: int) -> str:
    try:
        name = PublicKeyAlgorithm(algorithm).name.replace("_", "-")
    except ValueError:
        name = f"algo{algorithm}"
    return f"{name}/{bits}" if bits else name


def _uid_text(raw: bytes) -> str:
    return html.escape(raw.decode("utf-8", errors="replace"))


def _signature(sig: SignatureView) -> str:
    name = _SIG_NAMES.get(sig.sig_type, f"sig{sig.sig_type:02x}")
    issuer = sig.issuer.hex().upper() if sig.issuer else "????????????????"
    link = f'<a href="/pks/lookup?op=vindex&amp;search=0x{issuer}">{issuer}</a>'
    note = " [selfsig]" if sig.self_signature else ""
    return f"sig  {name:<6} {link} {_date(sig.created)}{note}"


def _key(view: KeyView, now: float, verbose: bool) -> str:
    fpr = view.fingerprint.hex().upper()
    flags = []
    if view.revoked:
        flags.append('<span class="r">[revoked]</span>')
    if view.expired(now):
        flags.append('<span class="e">[expired]</span>')
    get = f"/pks/lookup?op=get&amp;search=0x{quote(fpr)}"
    lines = [
        f'<b>pub</b>  {_algorithm(view.algorithm, view.bits)}  <a href="{get}">{fpr}</a>  '
        f"{_date(view.created)}" + (f"  expires {_date(view.expires)}" if view.expires else "")
        + (" " + " ".join(flags) if flags else "")
    ]
    if verbose:
        lines.extend(_signature(sig) for sig in view.signatures)
    for uid in view.user_ids:
        marks = ' <span class="r">[revoked]</span>' if uid.revoked else ""
        lines.append(f"<b>uid</b>  {_uid_text(uid.user_id)}{marks}")
        if verbose:
            lines.extend(_signature(sig) for sig in uid.signatures)
    if view.user_attributes:
        lines.append(f"uat  [{view.user_attributes} user attribute(s), e.g. photo IDs]")
    for sub in view.subkeys:
        marks = ' <span class="r">[revoked]</span>' if sub.revoked else ""
        lines.append(
            f"sub  {_algorithm(sub.algorithm, sub.bits)}  {sub.fingerprint.hex().upper()}  "
            f"{_date(sub.created)}{marks}"
        )
    return "<pre>" + "\n".join(lines) + "</pre>"


def index_page(search: str, views: Sequence[KeyView], now: float, verbose: bool) -> bytes:
    title = f"Search results for '{search}'"
    body = f"<p>{len(views)} key(s) found.</p>\n<hr>\n" + "\n<hr>\n".join(
        _key(view, now, verbose) for view in views
    )
    return page(title, body)


def stats_page(stats: Mapping[str, object], rows: Iterable[tuple[str, object]] = ()) -> bytes:
    cells = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in [*stats.items(), *rows]
        if not isinstance(v, (dict, list))
    )
    return page("meshkp keyserver statistics", f"<table>{cells}</table>")


def message_page(title: str, message: str) -> bytes:
    return page(title, f"<pre>{html.escape(message)}</pre>")
