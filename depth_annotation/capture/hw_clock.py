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
from typing import Any

# librealsense timestamp domains whose stamps are already on the host clock (milliseconds since
# the epoch): used as-is, as realsense-ros does. D4xx cameras default to global_time (the SDK
# maps the hardware clock to the host clock itself); system_time is the host's arrival time.
HOST_CLOCK_DOMAINS = ("global_time", "system_time")
HARDWARE_DOMAIN = "hardware_clock"


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


def domain_name(domain: Any) -> str:
    """`rs.timestamp_domain.global_time` -> "global_time" (what the metadata records)."""
    name = getattr(domain, "name", None)
    return str(name) if name else str(domain).rsplit(".", 1)[-1]


def frame_stamp_ns(domain: str, timestamp_ms: float, mapper: HardwareClockMapper, host_now_ns: int) -> int:
    """The ROS stamp of a frame whose SDK timestamp is `timestamp_ms` in `domain`.

    Host-clock domains pass through unchanged; the hardware clock (and anything unknown) goes
    through `mapper`, which anchors it to the host clock.
    """
    if domain in HOST_CLOCK_DOMAINS:
        return int(round(timestamp_ms * 1e6))
    return mapper.map(timestamp_ms, host_now_ns)
