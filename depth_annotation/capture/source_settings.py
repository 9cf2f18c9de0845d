"""How a frame source is opened: stream profiles, exposure controls, injected faults.

Plain dataclasses with no SDK or scene import, so a node can turn its parameters
into settings without loading what the other sources need (a real camera never
loads Open3D, which only the synthetic camera's scene uses).
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """One video stream: width x height at fps."""

    width: int
    height: int
    fps: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}x{self.fps}"

    @classmethod
    def parse(cls, text: str) -> Profile:
        try:
            w, h, f = (int(p) for p in str(text).lower().split("x"))
        except ValueError:
            raise ValueError(f"profile must look like 640x480x30 (width x height x fps), got {text!r}") from None
        return cls(w, h, f)


@dataclass
class ControlSettings:
    """Exposure and projector controls; None leaves the device's value."""

    depth_auto_exposure: bool = False
    color_auto_exposure: bool = False
    depth_exposure_us: float | None = 8500.0
    depth_gain: float | None = 16.0
    color_exposure_us: float | None = 166.0
    color_gain: float | None = 64.0
    emitter_enabled: int | None = 1  # the SDK's values: 0 off, 1 on, 2 auto (where the camera has it)
    laser_power_mw: float | None = 150.0


@dataclass
class SyntheticFaults:
    """Faults to inject into the synthetic camera, for tests: lost frames and a device that disappears for a while.

    Shared by every (re)opened camera of one node, so a disconnect happens once.
    """

    drop_frames: frozenset[int] = frozenset()  # hardware frame numbers never delivered
    hole_frames: frozenset[int] = frozenset()  # frames whose depth loses its central 60 % x 60 % (a glare hole)
    disconnect_at_frame: int = -1  # after sending this frame, the device vanishes
    disconnect_s: float = 0.0  # ... for this long
    outage_until: float = 0.0  # monotonic time the device is back
    disconnect_done: bool = False

    def device_present(self) -> bool:
        return time.monotonic() >= self.outage_until
