"""Map the camera's hardware clock to ROS time, one documented and monotonic way.

stamp = hw_time + offset, with `offset = host_time - hw_time` fixed at the first
frame of a connection. Frame-to-frame spacing is then exactly the hardware
spacing (no host jitter), and stamps stay comparable to the host clock. The
anchor is renewed only when it must be:

* the hardware clock went backwards (device reset, reconnect, bag restart), or
* the mapped stamp runs ahead of the host clock: a frame arrived with less
  transport latency than the anchor frame did, so the offset moves down to it
  (over a session the offset converges on the minimum latency), or
* the mapped stamp lags the host clock by more than `max_lag_ns` (clock drift
  over hours, or a stall).

Whatever happens, the output strictly increases: a re-anchor that would go back
in time is clamped to 1 ns after the previous stamp.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class HardwareClockMapper:
    max_lag_ns: int = 1_000_000_000
    offset_ns: int | None = None
    last_hw_ns: int | None = None
    last_stamp_ns: int | None = None
    anchors: int = 0

    def map(self, hw_timestamp_ms: float, host_now_ns: int) -> int:
        """ROS-time nanoseconds for a frame with hardware timestamp `hw_timestamp_ms`."""
        hw_ns = int(round(hw_timestamp_ms * 1e6))
        offset = self.offset_ns
        if offset is not None and self.last_hw_ns is not None and hw_ns < self.last_hw_ns:
            offset = None  # the hardware clock went backwards
        if offset is not None:
            stamp = hw_ns + offset
            if stamp > host_now_ns or host_now_ns - stamp > self.max_lag_ns:
                offset = None
        if offset is None:
            offset = self.offset_ns = host_now_ns - hw_ns
            self.anchors += 1
        stamp = hw_ns + offset
        if self.last_stamp_ns is not None and stamp <= self.last_stamp_ns:
            stamp = self.last_stamp_ns + 1
        self.last_hw_ns, self.last_stamp_ns = hw_ns, stamp
        return stamp

    def reset(self) -> None:
        """Forget the anchor (keep monotonicity): call on reconnect."""
        self.offset_ns = None
        self.last_hw_ns = None
