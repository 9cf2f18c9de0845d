"""Per-stream frame bookkeeping: every frame the sensor numbered is received, dropped or skipped.

* dropped: the hardware frame counter jumped (the frame never reached us);
* skipped: received, but not published (warm-up excluded, or processing fell behind
  and the pipeline discarded it to stay at the latest frame);
* published: went out.

A counter that goes backwards means the device restarted its numbering (a
reconnect): bookkeeping continues from the new number without counting a drop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StreamCounter:
    name: str
    received: int = 0
    published: int = 0
    dropped: int = 0
    skipped: int = 0
    duplicates: int = 0
    restarts: int = 0
    last_frame_number: int = -1
    last_hw_timestamp_ms: float = 0.0
    _period_published: int = field(default=0, repr=False)
    _period_start: float = field(default_factory=time.monotonic, repr=False)

    def on_received(self, frame_number: int, hw_timestamp_ms: float) -> int:
        """Record a frame from the sensor; returns how many frames were lost just before it.

        A repeated frame number is counted as a duplicate and not as received.
        """
        gap = 0
        if self.last_frame_number >= 0:
            if frame_number == self.last_frame_number:
                self.duplicates += 1
                return 0
            if frame_number < self.last_frame_number:
                self.restarts += 1  # numbering restarted (device reset / reconnect / bag loop)
            else:
                gap = frame_number - self.last_frame_number - 1
        self.dropped += gap
        self.received += 1
        self.last_frame_number = frame_number
        self.last_hw_timestamp_ms = hw_timestamp_ms
        return gap

    def on_published(self) -> None:
        self.published += 1
        self._period_published += 1

    def on_skipped(self, count: int = 1) -> None:
        self.skipped += count

    def take_rate(self) -> float:
        """Publish rate (Hz) since the previous call."""
        now = time.monotonic()
        dt = now - self._period_start
        rate = self._period_published / dt if dt > 0 else 0.0
        self._period_published, self._period_start = 0, now
        return rate

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames_received": self.received,
            "frames_published": self.published,
            "frames_dropped": self.dropped,
            "frames_skipped": self.skipped,
            "duplicates": self.duplicates,
            "counter_restarts": self.restarts,
            "last_frame_number": self.last_frame_number,
            "last_hw_timestamp_ms": self.last_hw_timestamp_ms,
        }
