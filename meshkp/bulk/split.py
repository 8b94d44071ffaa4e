"""Cut a binary keyring into one byte span per transferable key, reading packet headers only.

The parent process of `meshkp load` does this cheaply and ships the spans' bytes to worker
processes, which do the expensive parsing and signature checks. A transferable key starts
at each public key (or secret key) packet (RFC 9580 §10.1, §10.2). Framing errors are
raised here, before any key of the file is stored, so a damaged file changes nothing.
"""

from __future__ import annotations

import mmap

from meshkp.openpgp.framing import packet_header

# Packet tags that open a new transferable key: public key (6) and secret key (5).
KEY_START_TAGS = frozenset({5, 6})


def key_spans(data: bytes | memoryview | mmap.mmap, max_packet_bytes: int) -> list[tuple[int, int]]:
    """(start, end) byte offsets of each key in a binary keyring; raise on a framing error.

    Packets before the first key packet form a span of their own, so that the worker
    rejects them with a reason instead of silently gluing them onto a key.
    """
    # Released on exit even when raising, so the caller's mmap can be closed afterwards.
    with memoryview(data) as view:
        return _walk(view, max_packet_bytes)


def _walk(view: memoryview, max_packet_bytes: int) -> list[tuple[int, int]]:
    end = len(view)
    spans: list[tuple[int, int]] = []
    key_start = 0
    pos = 0
    while pos < end:
        tag, header_len, length = packet_header(view, pos, max_packet_bytes)
        if tag in KEY_START_TAGS and pos > key_start:
            spans.append((key_start, pos))
            key_start = pos
        pos += header_len + length
    if end > key_start:
        spans.append((key_start, end))
    return spans
