"""A RealSense camera made of the synthetic scene: `pyrealsense2.software_device`.

Frames from `SyntheticScene` are injected into real SDK software sensors at the
configured rate, so everything downstream (syncer, post-processing filters,
align) is the real librealsense code path, with no camera attached.

Each camera pose is ray-cast once (for a moving camera, a loop of poses along
the scene's smooth orbit, played back and forth), and its sensor depth is drawn
ahead of time: a static camera cycles through `noise_frames` independent noisy
depth frames, so frame-to-frame noise is real (temporal filtering behaves as on
a real static scene) while the feeder's per-frame work is only the SDK copy,
which keeps even 1280x720 at 30 fps on two cores.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pyrealsense2 as rs

from depth_annotation.common import (
    DEFAULT_DEPTH_TO_COLOR,
    Extrinsics,
    Intrinsics,
    SyntheticScene,
    default_intrinsics,
    orbit_pose,
)

from .source_settings import Profile, SyntheticFaults

SYNTHETIC_DEPTH_PROFILES = tuple(
    Profile(w, h, f)
    for (w, h) in ((424, 240), (480, 270), (640, 480), (848, 480), (1280, 720))
    for f in (6, 15, 30, 60, 90)
    if not (w == 1280 and f > 30)
)
SYNTHETIC_COLOR_PROFILES = tuple(
    Profile(w, h, f)
    for (w, h) in ((424, 240), (640, 480), (848, 480), (1280, 720), (1920, 1080))
    for f in (6, 15, 30, 60)
    if not (w >= 1280 and f > 30)
)


def synthetic_depth_intrinsics(width: int, height: int) -> Intrinsics:
    """A wider field of view than the colour camera (87 x 58 deg on a D435), so aligned depth covers colour."""
    f = 0.598 * width
    return Intrinsics(width, height, f, f, 0.4995 * width, 0.5008 * height)


def _rs_intrinsics(intr: Intrinsics) -> rs.intrinsics:
    ri = rs.intrinsics()
    ri.width, ri.height = intr.width, intr.height
    ri.fx, ri.fy, ri.ppx, ri.ppy = intr.fx, intr.fy, intr.cx, intr.cy
    ri.model = rs.distortion.none
    ri.coeffs = [0.0] * 5
    return ri


def _video_stream(kind: Any, uid: int, profile: Profile, bpp: int, fmt: Any, intr: Intrinsics) -> rs.video_stream:
    vs = rs.video_stream()
    vs.type, vs.index, vs.uid = kind, 0, uid
    vs.width, vs.height, vs.fps = profile.width, profile.height, profile.fps
    vs.bpp, vs.fmt = bpp, fmt
    vs.intrinsics = _rs_intrinsics(intr)
    return vs


class SyntheticCamera:
    """A software_device streaming the synthetic scene at `fps` into an SDK syncer."""

    SERIAL = "SYN000000001"
    FIRMWARE = "5.16.0.1"

    def __init__(
        self,
        color: Profile,
        depth: Profile,
        *,
        seed: int = 0,
        motion: bool = False,
        poses: int = 30,
        noise_frames: int = 16,
        depth_to_color: Extrinsics = DEFAULT_DEPTH_TO_COLOR,
        faults: SyntheticFaults | None = None,
        depth_units: float = 0.001,
        record_to: str | None = None,
        timestamp_domain: str = "hardware_clock",
    ) -> None:
        if timestamp_domain not in ("hardware_clock", "global_time", "system_time"):
            raise ValueError(f"unknown timestamp domain {timestamp_domain!r}")
        self._domain = getattr(rs.timestamp_domain, timestamp_domain)  # the frames' domain, as a camera sets it
        if color not in SYNTHETIC_COLOR_PROFILES:
            raise ValueError(
                f"unsupported color profile {color}; supported: {', '.join(map(str, SYNTHETIC_COLOR_PROFILES))}"
            )
        if depth not in SYNTHETIC_DEPTH_PROFILES:
            raise ValueError(
                f"unsupported depth profile {depth}; supported: {', '.join(map(str, SYNTHETIC_DEPTH_PROFILES))}"
            )
        if color.fps != depth.fps:
            raise ValueError(
                f"the synthetic camera streams colour and depth at one rate; got {color.fps} and {depth.fps} fps"
            )
        self.color_profile_cfg, self.depth_profile_cfg = color, depth
        self.fps = color.fps
        self.faults = faults or SyntheticFaults()
        self.depth_units = depth_units
        self.color_intrinsics = default_intrinsics(color.width, color.height)
        self.depth_intrinsics = synthetic_depth_intrinsics(depth.width, depth.height)
        self.depth_to_color = depth_to_color
        self.scene = SyntheticScene(seed)
        self._rng = np.random.default_rng(seed + 1000)

        # Ray-cast the poses once: colour image and depth-camera ground truth per pose.
        n_poses = max(1, poses) if motion else 1
        color_to_depth = depth_to_color.inverse()
        self._poses: list[tuple[np.ndarray, list[np.ndarray]]] = []
        for i in range(n_poses):
            world_to_color = orbit_pose(i / self.fps)
            frame = self.scene.render(self.color_intrinsics, world_to_color, frame_seed=i)
            depth_gt, gid, _, _ = self.scene.raycast(self.depth_intrinsics, world_to_color.then(color_to_depth))
            per_pose = max(1, noise_frames) if n_poses == 1 else 1
            noisy = [self._to_units(self.scene.sensor_depth(depth_gt, gid, self._rng)) for _ in range(per_pose)]
            self._poses.append((np.ascontiguousarray(frame.color), noisy))

        self.device = rs.software_device()
        self.device.register_info(rs.camera_info.name, "Synthetic RealSense (depth_annotation)")
        self.device.register_info(rs.camera_info.serial_number, self.SERIAL)
        self.device.register_info(rs.camera_info.firmware_version, self.FIRMWARE)
        self.device.register_info(rs.camera_info.product_line, "D400")
        self._depth_sensor = self.device.add_sensor("Stereo Module")
        self._color_sensor = self.device.add_sensor("RGB Camera")
        self.depth_profile = self._depth_sensor.add_video_stream(
            _video_stream(rs.stream.depth, 0, depth, 2, rs.format.z16, self.depth_intrinsics)
        )
        self.color_profile = self._color_sensor.add_video_stream(
            _video_stream(rs.stream.color, 1, color, 3, rs.format.rgb8, self.color_intrinsics)
        )
        self._depth_sensor.add_read_only_option(rs.option.depth_units, depth_units)
        self._depth_sensor.add_read_only_option(rs.option.stereo_baseline, 50.0)  # mm, for disparity filters
        ext = rs.extrinsics()
        ext.rotation = depth_to_color.rotation.T.ravel().tolist()  # librealsense stores column-major
        ext.translation = depth_to_color.translation.tolist()
        self.depth_profile.register_extrinsics_to(self.color_profile, ext)
        self.device.create_matcher(rs.matchers.default)

        self._recorder = rs.recorder(record_to, self.device) if record_to else None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._open: list[tuple[Any, Any]] = []
        self.frames_sent = 0

    def start(self, sink: Any) -> None:
        """Open both sensors into `sink` (an rs.syncer or frame_queue) and start streaming."""
        sensors = self._recorder.query_sensors() if self._recorder else (self._depth_sensor, self._color_sensor)
        self._open = list(zip(sensors, (self.depth_profile, self.color_profile), strict=True))
        for sensor, profile in self._open:
            sensor.open(profile)
            sensor.start(sink)
        self._thread = threading.Thread(target=self._feed, name="synthetic-camera", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        for sensor, _ in self._open:
            try:
                sensor.stop()
                sensor.close()
            except RuntimeError:
                pass
        self._open = []
        self._recorder = None  # finalises a recording

    def _to_units(self, mm: np.ndarray) -> np.ndarray:
        if self.depth_units == 0.001:
            return mm
        return np.clip(np.rint(mm * (0.001 / self.depth_units)), 0, 65535).astype(np.uint16)

    def _depth_frame(self, n: int) -> np.ndarray:
        noisy = self._poses[self._pose_index(n)][1]
        return noisy[(n - 1) % len(noisy)]

    def _pose_index(self, n: int) -> int:
        k = len(self._poses)
        if k == 1:
            return 0
        period = 2 * (k - 1)  # back and forth: smooth at the turning points
        i = (n - 1) % period
        return i if i < k else period - i

    def _feed(self) -> None:
        period = 1.0 / self.fps
        t0 = time.monotonic()
        n = 0
        faults = self.faults
        while not self._stop.is_set():
            n += 1
            deadline = t0 + n * period
            delay = deadline - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            if not faults.device_present():
                continue
            if n in faults.drop_frames:
                continue
            hw_ms = n * 1000.0 / self.fps
            if self._domain != rs.timestamp_domain.hardware_clock:  # a D4xx in global time: host-clock ms
                hw_ms = time.time_ns() / 1e6
            depth = self._depth_frame(n)
            if n in faults.hole_frames:
                depth = depth.copy()
                h, w = depth.shape
                depth[int(0.2 * h) : int(0.8 * h), int(0.2 * w) : int(0.8 * w)] = 0
            color = self._poses[self._pose_index(n)][0]
            for (sensor, profile), pixels, bpp in zip(self._sensors_for_inject(), (depth, color), (2, 3), strict=True):
                f = rs.software_video_frame()
                f.pixels = pixels
                f.bpp = bpp
                f.stride = pixels.shape[1] * bpp
                f.timestamp = hw_ms
                f.domain = self._domain
                f.frame_number = n
                f.profile = profile.as_video_stream_profile()
                if bpp == 2:
                    f.depth_units = self.depth_units
                sensor.on_video_frame(f)
            self.frames_sent += 1
            if n == faults.disconnect_at_frame and not faults.disconnect_done:
                faults.disconnect_done = True
                faults.outage_until = time.monotonic() + faults.disconnect_s
                return  # this device is gone; a reconnect makes a new one

    def _sensors_for_inject(self) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
        return ((self._depth_sensor, self.depth_profile), (self._color_sensor, self.color_profile))
