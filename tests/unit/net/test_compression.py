"""Marked and compressed frames (meshkp/net/compression.py): codec, bounds, negotiation over sockets."""

from __future__ import annotations

import os
import zlib

import pytest

from meshkp.errors import FrameTooLarge, UnsupportedWireVersion, WireError
from meshkp.net.codec import SealedCodec
from meshkp.net.compression import (
    MIN_COMPRESS_BYTES,
    PLAIN_MARK,
    ZLIB_MARK,
    CompressionStats,
    mark,
    unmark,
)
from meshkp.net.crypto import Keyring, generate_key
from meshkp.net.frameauth import FrameAuth
from meshkp.net.identity import NodeIdentity
from meshkp.net.stats import NetStats
from meshkp.net.tcp import TcpLimits, TcpTransport
from meshkp.net.wire import Frame, decode_frame, encode_frame

LOOP = ("127.0.0.1", 0)
TEXTY = {"rows": [b"user id <someone@example.org> " * 20 for _ in range(40)]}


def codec(key: bytes, compression: str = "none", stats: CompressionStats | None = None) -> SealedCodec:
    return SealedCodec(Keyring([key]), TcpLimits().frame_bytes,
                       auth=FrameAuth(NodeIdentity.generate()), compression=compression,
                       compression_stats=stats)


def test_mark_round_trips_and_only_compresses_what_pays() -> None:
    stats = CompressionStats()
    plain = encode_frame(Frame(3, TEXTY), 1 << 20)
    packed = mark(plain, True, stats)
    assert packed[0] == ZLIB_MARK and len(packed) < len(plain) // 4
    assert unmark(packed, 1 << 20, stats) == (plain, True)
    small = encode_frame(Frame(3, {"n": 1}), 1 << 20)
    assert len(small) < MIN_COMPRESS_BYTES and mark(small, True, stats)[0] == PLAIN_MARK
    noise = encode_frame(Frame(3, {"b": os.urandom(8192)}), 1 << 20)
    assert mark(noise, True, stats) == bytes((PLAIN_MARK,)) + noise  # zlib made it bigger
    assert mark(plain, False, stats)[0] == PLAIN_MARK
    assert unmark(plain, 1 << 20, stats) == (plain, False)  # an unmarked frame passes through
    assert stats.frames_compressed == 1 and stats.frames_not_smaller == 1
    assert stats.bytes_after == len(packed) and stats.frames_inflated == 1


def test_inflation_stops_at_the_frame_bound() -> None:
    bomb = bytes((ZLIB_MARK,)) + zlib.compress(b"\x00" * (4 << 20), 9)  # 4 MiB from ~4 KB
    assert len(bomb) < 8192
    with pytest.raises(FrameTooLarge):
        unmark(bomb, 1 << 20, CompressionStats())


@pytest.mark.parametrize("damage", [b"\x00garbage", b""])
def test_a_frame_that_does_not_inflate_is_a_wire_error(damage: bytes) -> None:
    good = zlib.compress(b"x" * 5000)
    data = bytes((ZLIB_MARK,)) + (damage or good[: len(good) // 2])
    with pytest.raises(WireError):
        unmark(data, 1 << 20, CompressionStats())


def test_an_older_node_would_drop_a_marked_frame_so_only_announcing_peers_get_them() -> None:
    # Why marks are sent only to peers that announce META_KEY: an older decoder reads the mark
    # as a wire version it does not speak.
    marked = mark(encode_frame(Frame(3, TEXTY), 1 << 20), True, CompressionStats())
    with pytest.raises(UnsupportedWireVersion):
        decode_frame(marked, 1 << 20)


def test_the_codec_compresses_before_sealing_and_inflates_after_verifying() -> None:
    key = generate_key()
    stats = CompressionStats()
    sender, receiver = codec(key, "zlib", stats), codec(key)
    big = sender.pack(Frame(3, TEXTY), marked=True)
    plain_size = len(sender.pack(Frame(3, TEXTY)))
    assert len(big) < plain_size // 4
    frame, _stamp, marked = receiver.open_marked(big)
    assert frame.body == TEXTY and marked
    unmarked = receiver.open_marked(sender.pack(Frame(3, TEXTY)))
    assert unmarked[0].body == TEXTY and not unmarked[2]
    tampered = bytearray(big)
    tampered[-1] ^= 1
    with pytest.raises(WireError):
        receiver.open(bytes(tampered))


async def test_a_marked_request_gets_a_compressed_reply_and_an_unmarked_one_a_plain_reply() -> None:
    key = generate_key()
    server_stats, client_stats = NetStats(), NetStats()

    async def echo(addr: object, frame: Frame) -> Frame | None:
        return Frame(1, {"echo": frame.body})

    server = TcpTransport(LOOP, codec(key, "zlib", server_stats.compression), echo, server_stats)
    client = TcpTransport(LOOP, codec(key, "zlib", client_stats.compression), echo, client_stats)
    addr = await server.start()
    try:
        reply = await client.request(addr, Frame(1, TEXTY), timeout=5, marked=True)
        assert reply.body["echo"] == TEXTY
        assert client_stats.compression.frames_compressed == 1  # the request
        assert server_stats.compression.frames_inflated == 1
        assert server_stats.compression.frames_compressed == 1  # the reply
        assert client_stats.compression.frames_inflated == 1
        # A peer that did not mark its request (an older node) gets a plain frame back.
        reply = await client.request(addr, Frame(1, TEXTY), timeout=5)
        assert reply.body["echo"] == TEXTY
        assert server_stats.compression.frames_compressed == 1
        assert client_stats.compression.frames_inflated == 1
    finally:
        await client.stop()
        await server.stop()
