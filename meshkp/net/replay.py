"""ReplayGuard: drop frames seen before, frames too old, and frames from too far in the future.

Every frame carries its sender's boot epoch (milliseconds of wall time when the sending
process started), a sequence number that the sender raises by one per frame, and its wall
time at sending (meshkp/net/frameauth.py). Per sender key, the guard keeps the newest epoch
and a sliding window of the sequence numbers seen in it (an IPsec-style anti-replay window,
RFC 4303 §3.4.3, here a Python int used as a bitmap):

- a frame whose send time is more than `max_skew` from our clock is dropped (reason "clock"):
  this is what stops a frame captured earlier and re-sent later, even by a receiver that
  restarted and forgot its windows;
- a frame of an older epoch than the newest seen from that key is a frame of an earlier life
  of the sender: dropped (reason "replay");
- a newer epoch is the sender's restart: its window starts over, so restarts never lock a node
  out (no sequence number needs to be persisted);
- in the current epoch, a sequence number already seen, or further behind the newest than the
  window, is dropped (reason "replay"). Frames may arrive out of order within the window (UDP,
  several TCP connections at once).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from meshkp.errors import ConfigError, FrameClockSkew, ReplayedFrame


@dataclass(frozen=True, slots=True)
class ReplayLimits:
    """Bounds of the replay check, each with what it trades."""

    # Seconds a frame's send time may differ from our clock, either way. The nodes' clocks must
    # agree within this (NTP keeps servers within milliseconds); a node further off has all its
    # frames dropped (reason "clock") and is soon declared dead. A frame captured and re-sent
    # later than this is dropped whatever the receiver remembers. 30 s: well above NTP-kept
    # skew plus a TCP frame's time in flight (TcpLimits.io_timeout, 10 s), and well below
    # SWIM's time to declare a node dead and forget it.
    max_skew: float = 30.0
    # Sequence numbers remembered per sender: how far out of order a frame may arrive. A sender
    # numbers the frames of one channel (e.g. its replication pushes to all peers) in one
    # sequence, so this must cover everything it sends to others in between (2 KiB per sender).
    window: int = 16384
    # Senders (keys) with a window; the least recently heard is forgotten beyond it. A
    # forgotten sender's frames are still bounded by max_skew. Above any planned mesh.
    max_senders: int = 4096

    def validate(self) -> ReplayLimits:
        """Self if every bound is positive; ConfigError otherwise."""
        if self.max_skew <= 0 or self.window <= 0 or self.max_senders <= 0:
            raise ConfigError("replay limits (max_skew, window, max_senders) must be positive")
        return self


@dataclass(slots=True)
class _Window:
    epoch: int
    top: int  # newest sequence number seen in this epoch
    seen: int  # bit i set: sequence number top - i was seen


class ReplayGuard:
    """Per-sender anti-replay windows of one receiving channel."""

    def __init__(self, limits: ReplayLimits | None = None) -> None:
        self.limits = (limits or ReplayLimits()).validate()
        self._windows: OrderedDict[bytes, _Window] = OrderedDict()

    def check(self, sender: bytes, epoch: int, seq: int, sent_at: float, now: float) -> None:
        """Record the frame, or raise ReplayedFrame / FrameClockSkew (the frame is dropped)."""
        limits = self.limits
        skew = sent_at - now
        if abs(skew) > limits.max_skew:
            where = "in the future" if skew > 0 else "old"
            raise FrameClockSkew(f"frame sent {abs(skew):.1f} s {where}; the skew bound is "
                                 f"{limits.max_skew:g} s (check the clocks of both nodes)")
        w = self._windows.get(sender)
        if w is None or epoch > w.epoch:
            self._windows[sender] = _Window(epoch, seq, 1)
            self._windows.move_to_end(sender)
            while len(self._windows) > limits.max_senders:
                self._windows.popitem(last=False)
            return
        self._windows.move_to_end(sender)
        if epoch < w.epoch:
            raise ReplayedFrame("frame from an earlier life of its sender (older boot epoch)")
        if seq > w.top:
            shift = seq - w.top
            if shift >= limits.window:
                w.seen = 1
            else:
                w.seen = ((w.seen << shift) | 1) & ((1 << limits.window) - 1)
            w.top = seq
            return
        behind = w.top - seq
        if behind >= limits.window:
            raise ReplayedFrame(f"frame {behind} behind its sender's newest, beyond the window")
        bit = 1 << behind
        if w.seen & bit:
            raise ReplayedFrame("frame seen already")
        w.seen |= bit
