"""Pixel arrays back into SDK frames: a software_device with a real camera's stream geometry.

The driver runs its SDK filter and align blocks in worker processes (see
`sdk_workers`). A worker has no camera: it receives pixel arrays and needs SDK
frames that carry the same intrinsics, distortion model, depth units, stereo
baseline and depth-to-colour extrinsics as the camera's, so the SDK blocks
compute exactly what they would have on the original frames (the tests check
this bit for bit).

`StreamGeometry` is that description, read from one frameset and small enough to
pickle; `SoftwareReplay` is the software_device built from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyrealsense2 as rs

from .errors import ReplayError


@dataclass(frozen=True)
class VideoGeometry:
    """One video stream's size, rate and SDK intrinsics (distortion model kept as the SDK's enum value)."""

    width: int
    height: int
    fps: int
    fx: float
    fy: float
    ppx: float
    ppy: float
    model: int
    coeffs: tuple[float, ...]

    @classmethod
    def from_profile(cls, profile: rs.stream_profile) -> VideoGeometry:
        vsp = profile.as_video_stream_profile()
        ri = vsp.get_intrinsics()
        return cls(ri.width, ri.height, vsp.fps(), ri.fx, ri.fy, ri.ppx, ri.ppy, int(ri.model), tuple(ri.coeffs))

    def to_rs(self) -> rs.intrinsics:
        ri = rs.intrinsics()
        ri.width, ri.height = self.width, self.height
        ri.fx, ri.fy, ri.ppx, ri.ppy = self.fx, self.fy, self.ppx, self.ppy
        ri.model = rs.distortion(self.model)
        ri.coeffs = list(self.coeffs)
        return ri


@dataclass(frozen=True)
class StreamGeometry:
    """Everything the SDK's filter and align blocks read from a depth + colour frameset besides the pixels."""

    depth: VideoGeometry
    color: VideoGeometry
    color_format: int  # rs.format value
    color_bpp: int
    depth_units: float  # metres per depth unit, as the depth sensor reports it
    stereo_baseline_mm: float | None  # the disparity transform needs it; None if the sensor has none
    rotation: tuple[float, ...]  # depth -> colour, the SDK's column-major 3x3
    translation: tuple[float, ...]

    @classmethod
    def from_frames(cls, frames: rs.composite_frame) -> StreamGeometry:
        depth, color = frames.get_depth_frame(), frames.get_color_frame()
        dp, cp = depth.get_profile(), color.get_profile()
        ext = dp.get_extrinsics_to(cp)
        sensor = rs.sensor.from_frame(depth)
        units = (
            sensor.get_option(rs.option.depth_units) if sensor.supports(rs.option.depth_units) else depth.get_units()
        )
        baseline = sensor.get_option(rs.option.stereo_baseline) if sensor.supports(rs.option.stereo_baseline) else None
        return cls(
            depth=VideoGeometry.from_profile(dp),
            color=VideoGeometry.from_profile(cp),
            color_format=int(cp.format()),
            color_bpp=color.get_bytes_per_pixel(),
            depth_units=float(units),
            stereo_baseline_mm=None if baseline is None else float(baseline),
            rotation=tuple(ext.rotation),
            translation=tuple(ext.translation),
        )

    def with_depth(self, depth: VideoGeometry) -> StreamGeometry:
        """The same camera with another depth stream geometry (after decimation)."""
        return dataclasses.replace(self, depth=depth)


def _video_stream(kind: Any, uid: int, g: VideoGeometry, bpp: int, fmt: Any) -> rs.video_stream:
    vs = rs.video_stream()
    vs.type, vs.index, vs.uid = kind, 0, uid
    vs.width, vs.height, vs.fps = g.width, g.height, g.fps
    vs.bpp, vs.fmt = bpp, fmt
    vs.intrinsics = g.to_rs()
    return vs


class SoftwareReplay:
    """A software_device streaming `geometry`'s depth and colour; arrays in, SDK frames out.

    Frames go through the software sensors into frame queues, the way a camera's
    frames reach the application, so they carry the stream profiles, depth units
    and sensor options the SDK blocks look up.
    """

    TIMEOUT_MS = 2000

    def __init__(self, geometry: StreamGeometry) -> None:
        self.geometry = g = geometry
        self.device = rs.software_device()
        self._depth_sensor = self.device.add_sensor("Stereo Module")
        self._color_sensor = self.device.add_sensor("RGB Camera")
        self.depth_profile = self._depth_sensor.add_video_stream(
            _video_stream(rs.stream.depth, 0, g.depth, 2, rs.format.z16)
        ).as_video_stream_profile()
        self.color_profile = self._color_sensor.add_video_stream(
            _video_stream(rs.stream.color, 1, g.color, g.color_bpp, rs.format(g.color_format))
        ).as_video_stream_profile()
        self._depth_sensor.add_read_only_option(rs.option.depth_units, g.depth_units)
        if g.stereo_baseline_mm is not None:
            self._depth_sensor.add_read_only_option(rs.option.stereo_baseline, g.stereo_baseline_mm)
        ext = rs.extrinsics()
        ext.rotation, ext.translation = list(g.rotation), list(g.translation)
        self.depth_profile.register_extrinsics_to(self.color_profile, ext)
        self._depth_q, self._color_q = rs.frame_queue(2, True), rs.frame_queue(2, True)
        for sensor, profile, q in (
            (self._depth_sensor, self.depth_profile, self._depth_q),
            (self._color_sensor, self.color_profile, self._color_q),
        ):
            sensor.open(profile)
            sensor.start(q)
        self._blank_color: rs.frame | None = None
        self._composed: list[rs.frame] = []
        self._compose = rs.processing_block(self._compose_with_color)
        self._compose.start(self._composed.append)

    def depth_frame(self, pixels: np.ndarray, frame_number: int, timestamp_ms: float) -> rs.frame:
        """`pixels` (uint16 depth units, the geometry's size) as an SDK depth frame."""
        g = self.geometry.depth
        if pixels.shape != (g.height, g.width) or pixels.dtype != np.uint16:
            raise ReplayError(f"depth must be uint16 {g.height}x{g.width}, got {pixels.dtype} {pixels.shape}")
        return self._inject(
            self._depth_sensor, self.depth_profile, self._depth_q, pixels, 2, frame_number, timestamp_ms
        )

    def frameset(self, depth_pixels: np.ndarray, frame_number: int, timestamp_ms: float) -> rs.frameset:
        """A depth + colour frameset for `rs.align(rs.stream.color)`.

        The colour frame is one blank frame made once: aligning depth to colour
        reads the colour stream's calibration, never its pixels (the equality
        test against aligning the camera's own frames guards this).
        """
        depth = self.depth_frame(depth_pixels, frame_number, timestamp_ms)
        if self._blank_color is None:
            g = self.geometry
            blank = np.zeros((g.color.height, g.color.width * g.color_bpp), np.uint8)
            self._blank_color = self._inject(
                self._color_sensor, self.color_profile, self._color_q, blank, g.color_bpp, 0, 0.0
            )
        self._compose.invoke(depth)
        return self._composed.pop().as_frameset()

    def close(self) -> None:
        for sensor in (self._depth_sensor, self._color_sensor):
            try:
                sensor.stop()
                sensor.close()
            except RuntimeError:
                pass
        self._blank_color = None

    def _compose_with_color(self, frame: rs.frame, source: rs.frame_source) -> None:
        source.frame_ready(source.allocate_composite_frame([frame, self._blank_color]))

    def _inject(
        self, sensor: Any, profile: Any, q: Any, pixels: np.ndarray, bpp: int, frame_number: int, timestamp_ms: float
    ) -> rs.frame:
        f = rs.software_video_frame()
        f.pixels = np.ascontiguousarray(pixels)  # the SDK copies the buffer
        f.bpp = bpp
        f.stride = profile.width() * bpp
        f.timestamp = timestamp_ms
        f.domain = rs.timestamp_domain.hardware_clock
        f.frame_number = frame_number
        f.profile = profile
        if bpp == 2 and profile.stream_type() == rs.stream.depth:
            f.depth_units = self.geometry.depth_units
        sensor.on_video_frame(f)
        ok, frame = q.try_wait_for_frame(self.TIMEOUT_MS)
        if not ok:
            raise ReplayError(f"the SDK did not return injected frame {frame_number} within {self.TIMEOUT_MS} ms")
        return frame
