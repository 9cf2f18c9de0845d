"""Approximate-time matching of recorded streams by header stamp.

A frame is the primary stream's message (aligned depth) plus, from each other
stream, the message whose stamp is nearest within `tolerance_ns`. A match is
decided only once it cannot improve: when every stream has seen a stamp past
`primary + tolerance`, or at `flush()`. Streams marked `sticky` (camera_info) may
instead reuse their latest earlier message: intrinsics do not change per frame.
Optional streams (DepthQuality) join when present and never hold a frame back.

The same object serves the offline exporter (messages in bag order) and the
live node (messages as they arrive); buffers are bounded and overflow is
counted, so every message ends up matched, unmatched or dropped.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from depth_annotation.common import nearest_index


@dataclass
class StreamCounts:
    received: int = 0
    matched: int = 0
    unmatched: int = 0
    dropped: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "received": self.received,
            "matched": self.matched,
            "unmatched": self.unmatched,
            "dropped": self.dropped,
        }


@dataclass
class SyncedFrame:
    stamp_ns: int
    items: dict[str, Any]  # stream name -> message (optional streams may be absent)


@dataclass
class _Stream:
    name: str
    required: bool
    sticky: bool
    stamps: list[int] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)
    used: list[bool] = field(default_factory=list)
    latest_seen: int = -1
    last_item: Any = None
    last_stamp: int = -1  # stamp of last_item


class StampSynchronizer:
    def __init__(
        self,
        primary: str,
        required: list[str],
        *,
        optional: Sequence[str] = (),
        sticky: Sequence[str] = (),
        tolerance_ns: int = 16_666_666,
        max_buffer: int = 300,
    ) -> None:
        self.primary = primary
        self.tolerance_ns = int(tolerance_ns)
        self.max_buffer = max_buffer
        self.streams: dict[str, _Stream] = {primary: _Stream(primary, True, False)}
        for name in required:
            self.streams[name] = _Stream(name, True, name in sticky)
        for name in optional:
            self.streams[name] = _Stream(name, False, name in sticky)
        self.counts = {name: StreamCounts() for name in self.streams}

    def add(self, stream: str, stamp_ns: int, item: Any) -> list[SyncedFrame]:
        """Add one message; returns the frames that became decidable (in stamp order)."""
        s = self.streams.get(stream)
        if s is None:
            raise KeyError(f"unknown stream {stream!r}")
        self.counts[stream].received += 1
        i = bisect.bisect_right(s.stamps, stamp_ns)
        s.stamps.insert(i, stamp_ns)
        s.items.insert(i, item)
        s.used.insert(i, False)
        s.latest_seen = max(s.latest_seen, stamp_ns)
        if len(s.stamps) > self.max_buffer:
            self._evict(s, 0, dropped=True)
        return self._emit(final=False)

    def flush(self) -> list[SyncedFrame]:
        """Decide everything still buffered (end of the bag / episode)."""
        out = self._emit(final=True)
        for s in self.streams.values():
            while s.stamps:
                self._evict(s, 0, dropped=False)
        return out

    def _evict(self, s: _Stream, i: int, *, dropped: bool) -> None:
        if not s.used[i]:
            if dropped:
                self.counts[s.name].dropped += 1
            else:
                self.counts[s.name].unmatched += 1
        if s.sticky:
            s.last_item, s.last_stamp = s.items[i], s.stamps[i]
        del s.stamps[i], s.items[i], s.used[i]

    def _nearest(self, s: _Stream, stamp: int) -> int | None:
        return nearest_index(s.stamps, stamp, self.tolerance_ns)

    def _emit(self, *, final: bool) -> list[SyncedFrame]:
        p = self.streams[self.primary]
        out: list[SyncedFrame] = []
        while p.stamps:
            stamp = p.stamps[0]
            horizon = stamp + self.tolerance_ns
            # Wait for required streams, and for optional ones that exist (have sent anything).
            waiting = [s for s in self.streams.values() if s is not p and (s.required or s.latest_seen >= 0)]
            if not final and any(s.latest_seen < horizon for s in waiting):
                break  # a better (or the first) match may still arrive
            items = {self.primary: p.items[0]}
            complete = True
            for s in self.streams.values():
                if s is p:
                    continue
                j = self._nearest(s, stamp)
                if j is not None:
                    items[s.name] = s.items[j]
                    if not s.used[j]:
                        s.used[j] = True
                        self.counts[s.name].matched += 1
                elif s.sticky and (
                    (s.last_item is not None and s.last_stamp <= stamp) or any(t <= stamp for t in s.stamps)
                ):
                    # the latest earlier message: never one newer than the frame (frames can arrive late)
                    k = bisect.bisect_right(s.stamps, stamp) - 1
                    items[s.name] = s.items[k] if k >= 0 else s.last_item
                elif s.required:
                    complete = False
            p.used[0] = complete
            if complete:
                self.counts[self.primary].matched += 1
                out.append(SyncedFrame(stamp, items))
            self._evict(p, 0, dropped=False)
            # Other streams: anything older than what a later primary could still use is finished.
            for s in self.streams.values():
                if s is p:
                    continue
                while s.stamps and s.stamps[0] < stamp - self.tolerance_ns and (len(s.stamps) > 1 or not s.sticky):
                    self._evict(s, 0, dropped=False)
        return out
