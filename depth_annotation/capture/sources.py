"""Where RealSense frames come from: a device, a recording, or the synthetic camera.

Each source opens through the real SDK and yields `rs.composite_frame`s (colour +
depth) from `wait()`; `info` describes the camera (serial, firmware, profiles,
depth scale, intrinsics, depth-to-colour extrinsics) for the metadata file and
camera_info. `FrameSource` is what the capture pipeline relies on. Errors are
`SourceError` with one line a person can act on.

The synthetic camera (and, through its scene, Open3D) is imported only when a
`SyntheticSource` is created: a node on a real camera never loads it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyrealsense2 as rs

from depth_annotation.common import Extrinsics, Intrinsics

from .errors import ControlError, SourceError, SourceUnavailable
from .source_settings import ControlSettings, Profile, SyntheticFaults

if TYPE_CHECKING:
    from .synthetic_camera import SyntheticCamera

log = logging.getLogger(__name__)

MIN_FIRMWARE = (5, 14)


@dataclass
class DeviceInfo:
    """The camera behind a source, as the SDK describes it (for camera_info, TF and capture_metadata.json)."""

    source: str  # "device", "recording" or "synthetic"
    name: str
    serial: str
    firmware: str
    product_line: str
    depth_scale_m: float
    color_profile: Profile
    depth_profile: Profile
    color_intrinsics: Intrinsics
    depth_intrinsics: Intrinsics
    depth_to_color: Extrinsics
    controls: dict[str, Any] = field(default_factory=dict)  # what was applied, as read back
    warnings: list[str] = field(default_factory=list)


class FrameSource(Protocol):
    """What the capture pipeline needs from a source of RealSense framesets."""

    info: DeviceInfo
    # True: frames come at the camera's rate whether the pipeline keeps up or not, so a pipeline that falls
    # behind drops the oldest frame. False: the source waits for the pipeline (a recording played as fast as
    # it is read), so no frame may be dropped.
    real_time: bool

    def wait(self, timeout_ms: int) -> rs.composite_frame | None:
        """The next frameset, or None after `timeout_ms`. Raises RuntimeError if the device is lost mid-stream."""
        ...

    def finished(self) -> bool:
        """True once a finite source (a recording) has played to its end."""
        ...

    def temperatures(self) -> dict[str, float]:
        """Sensor temperatures (°C) by name, where the camera reports them."""
        ...

    def set_control(self, sensor: str, option: str, value: float) -> float:
        """Set `option` (one of CONTROLS) on the `sensor` ("depth" or "color"); the value read back.

        Raises ControlError where the source has no such control or the camera refuses the value.
        """
        ...

    def close(self) -> None: ...


SourceFactory = Callable[[], FrameSource]
"""Opens a source; the pipeline calls it again to reconnect (it may raise SourceUnavailable)."""


# Sensor options a running source can change, with the ControlSettings field that keeps each per sensor
# (so a reconnected device gets the value set last).
CONTROLS = ("exposure", "gain", "enable_auto_exposure", "emitter_enabled", "laser_power")
_CONTROL_FIELDS = {
    ("depth", "exposure"): "depth_exposure_us",
    ("depth", "gain"): "depth_gain",
    ("depth", "enable_auto_exposure"): "depth_auto_exposure",
    ("depth", "emitter_enabled"): "emitter_enabled",
    ("depth", "laser_power"): "laser_power_mw",
    ("color", "exposure"): "color_exposure_us",
    ("color", "gain"): "color_gain",
    ("color", "enable_auto_exposure"): "color_auto_exposure",
}


def control_sensors(device: Any) -> dict[str, Any]:
    """The device's depth sensor and colour sensor (the one streaming colour), by "depth" / "color"."""
    out: dict[str, Any] = {}
    for sensor in device.query_sensors():
        if sensor.is_depth_sensor():
            out.setdefault("depth", sensor)
        elif any(p.stream_type() == rs.stream.color for p in sensor.get_stream_profiles()):
            out.setdefault("color", sensor)
    return out


def set_device_control(device: Any, controls: ControlSettings, sensor: str, option: str, value: float) -> float:
    """Set one sensor option through the SDK and keep it in `controls`; returns what the sensor reads back.

    Raises:
        ControlError: unknown sensor or option, an option this camera lacks, or a value it refuses.
    """
    field_name = _CONTROL_FIELDS.get((sensor, option))
    if field_name is None:
        known = ", ".join(f"{s}.{o}" for s, o in _CONTROL_FIELDS)
        raise ControlError(f"no control {sensor}.{option}; known: {known}")
    target = control_sensors(device).get(sensor)
    opt = getattr(rs.option, option)
    if target is None or not target.supports(opt):
        raise ControlError(f"this camera's {sensor} sensor has no {option} option")
    try:
        target.set_option(opt, float(value))
    except RuntimeError as exc:
        raise ControlError(f"the camera refused {sensor} {option}={value:g}: {exc}") from None
    emitter = rs.option.emitter_enabled
    if option == "laser_power" and controls.emitter_enabled is not None and target.supports(emitter):
        # a D400 switches the emitter on when its laser power is set: keep the emitter as it was asked
        if round(target.get_option(emitter)) != controls.emitter_enabled:
            target.set_option(emitter, float(controls.emitter_enabled))
    read_back = float(target.get_option(opt))
    kept: float | int | bool = read_back
    if option == "enable_auto_exposure":
        kept = bool(read_back)
    elif option == "emitter_enabled":
        kept = round(read_back)
    setattr(controls, field_name, kept)
    return read_back


def intrinsics_from_rs(ri: rs.intrinsics) -> Intrinsics:
    model = {
        rs.distortion.none: "plumb_bob",
        rs.distortion.brown_conrady: "plumb_bob",
        rs.distortion.inverse_brown_conrady: "plumb_bob",
        rs.distortion.modified_brown_conrady: "plumb_bob",
    }.get(ri.model, "plumb_bob")
    coeffs = list(ri.coeffs)[:5] if ri.model != rs.distortion.none else [0.0] * 5
    return Intrinsics(ri.width, ri.height, ri.fx, ri.fy, ri.ppx, ri.ppy, model, tuple(coeffs))


def extrinsics_from_rs(ext: rs.extrinsics, source: str, target: str) -> Extrinsics:
    r = np.asarray(ext.rotation, dtype=np.float64).reshape(3, 3).T  # column-major in the SDK
    # The SDK keeps the rotation in float32, orthonormal only to ~1e-7; the nearest rotation (SVD) makes the
    # inverse (the transpose) and the TF quaternion exact: the quaternion of the raw matrix is off by ~1e-5.
    u, _, vt = np.linalg.svd(r)
    return Extrinsics(u @ vt, np.asarray(ext.translation, dtype=np.float64), source, target)


def firmware_warning(firmware: str) -> str | None:
    try:
        version = tuple(int(p) for p in firmware.split(".")[:2])
    except ValueError:
        return None
    if version < MIN_FIRMWARE:
        return f"firmware {firmware} is older than 5.14: update it (rs-fw-update) before recording data"
    return None


def _stream_info(frames_profile_depth: Any, frames_profile_color: Any) -> tuple[Intrinsics, Intrinsics, Extrinsics]:
    dv = frames_profile_depth.as_video_stream_profile()
    cv = frames_profile_color.as_video_stream_profile()
    return (
        intrinsics_from_rs(cv.get_intrinsics()),
        intrinsics_from_rs(dv.get_intrinsics()),
        extrinsics_from_rs(dv.get_extrinsics_to(cv), "depth", "color"),
    )


class SyntheticSource:
    """The synthetic camera behind an SDK syncer."""

    real_time = True  # frames come at the camera's rate whether we keep up or not

    def __init__(
        self,
        color: Profile,
        depth: Profile,
        *,
        seed: int = 0,
        motion: bool = False,
        poses: int = 30,
        faults: SyntheticFaults | None = None,
        record_to: str | None = None,
        timestamp_domain: str = "hardware_clock",
    ) -> None:
        faults = faults or SyntheticFaults()
        if not faults.device_present():
            raise SourceUnavailable("synthetic camera is disconnected (injected fault)")
        from .synthetic_camera import SyntheticCamera  # here, not at the top: it loads the scene (Open3D)

        try:
            self.camera: SyntheticCamera = SyntheticCamera(
                color,
                depth,
                seed=seed,
                motion=motion,
                poses=poses,
                faults=faults,
                record_to=record_to,
                timestamp_domain=timestamp_domain,
            )
        except ValueError as exc:
            raise SourceError(str(exc)) from None
        # Framesets queued ahead of the capture thread, as many as the SDK's frame pool holds per
        # stream (16): a loaded host's stall of up to ~0.5 s then delays the synthetic stream instead
        # of dropping frames (measured: a 0.45 s stall lost 0 frames, 9 with a queue of 4), so the
        # drops it reports are the injected ones. A device's SDK queue drops under load: real gaps.
        self._sync = rs.syncer(16)
        cam = self.camera
        c_intr, d_intr, d2c = _stream_info(cam.depth_profile, cam.color_profile)
        self.info = DeviceInfo(
            source="synthetic",
            name="Synthetic RealSense (depth_annotation)",
            serial=cam.SERIAL,
            firmware=cam.FIRMWARE,
            product_line="D400",
            depth_scale_m=cam.depth_units,
            color_profile=color,
            depth_profile=depth,
            color_intrinsics=c_intr,
            depth_intrinsics=d_intr,
            depth_to_color=d2c,
            controls={"note": "synthetic camera: no exposure controls"},
        )
        cam.start(self._sync)

    def wait(self, timeout_ms: int) -> rs.composite_frame | None:
        ok, frames = self._sync.try_wait_for_frames(timeout_ms)
        return frames if ok else None

    def finished(self) -> bool:
        return False

    def temperatures(self) -> dict[str, float]:
        return {}

    def set_control(self, sensor: str, option: str, value: float) -> float:
        raise ControlError(f"the synthetic camera has no {option} control: setting it would have no effect")

    def close(self) -> None:
        self.camera.stop()


class _PipelineSource:
    """Device and recording sources share rs.pipeline."""

    real_time = True
    info: DeviceInfo
    pipeline: rs.pipeline
    profile: rs.pipeline_profile

    def wait(self, timeout_ms: int) -> rs.composite_frame | None:
        ok, frames = self.pipeline.try_wait_for_frames(timeout_ms)
        return frames if ok else None

    def close(self) -> None:
        try:
            self.pipeline.stop()
        except RuntimeError:
            pass

    def _describe(self, source: str, color: Profile, depth: Profile) -> DeviceInfo:
        dev = self.profile.get_device()

        def info(key: Any) -> str:
            return str(dev.get_info(key)) if dev.supports(key) else ""

        c_prof = self.profile.get_stream(rs.stream.color)
        d_prof = self.profile.get_stream(rs.stream.depth)
        c_intr, d_intr, d2c = _stream_info(d_prof, c_prof)
        depth_sensor = dev.first_depth_sensor()
        firmware = info(rs.camera_info.firmware_version)
        warnings = [w for w in [firmware_warning(firmware)] if w]
        return DeviceInfo(
            source=source,
            name=info(rs.camera_info.name),
            serial=info(rs.camera_info.serial_number),
            firmware=firmware,
            product_line=info(rs.camera_info.product_line),
            depth_scale_m=float(depth_sensor.get_depth_scale()),
            color_profile=color,
            depth_profile=depth,
            color_intrinsics=c_intr,
            depth_intrinsics=d_intr,
            depth_to_color=d2c,
            warnings=warnings,
        )

    def temperatures(self) -> dict[str, float]:
        out: dict[str, float] = {}
        try:
            sensor = self.profile.get_device().first_depth_sensor()
            for name, opt in (("asic_c", rs.option.asic_temperature), ("projector_c", rs.option.projector_temperature)):
                if sensor.supports(opt):
                    out[name] = float(sensor.get_option(opt))
        except RuntimeError:
            pass
        return out


def _supported_profiles(device: Any, stream: Any, fmt: Any) -> list[Profile]:
    out: set[Profile] = set()
    for sensor in device.query_sensors():
        for p in sensor.get_stream_profiles():
            if p.stream_type() == stream and p.format() == fmt:
                v = p.as_video_stream_profile()
                out.add(Profile(v.width(), v.height(), p.fps()))
    return sorted(out, key=lambda p: (p.width, p.height, p.fps))


class DeviceSource(_PipelineSource):
    """A connected RealSense, selected by serial number (or the first one found)."""

    def __init__(
        self, color: Profile, depth: Profile, *, serial_no: str = "", controls: ControlSettings | None = None
    ) -> None:
        ctx = rs.context()
        devices = list(ctx.query_devices())
        found = [d.get_info(rs.camera_info.serial_number) for d in devices]
        if serial_no:
            devices = [d for d in devices if d.get_info(rs.camera_info.serial_number) == serial_no]
        if not devices:
            wanted = f" with serial {serial_no}" if serial_no else ""
            raise SourceUnavailable(
                f"no RealSense device found{wanted} (serials found: {', '.join(found) if found else 'none'})"
            )
        device = devices[0]
        serial = device.get_info(rs.camera_info.serial_number)
        for stream, fmt, want, label in (
            (rs.stream.color, rs.format.rgb8, color, "color"),
            (rs.stream.depth, rs.format.z16, depth, "depth"),
        ):
            supported = _supported_profiles(device, stream, fmt)
            if want not in supported:
                raise SourceError(
                    f"unsupported {label} profile {want} on {serial}; supported: {', '.join(map(str, supported))}"
                )
        self.controls = controls or ControlSettings()
        applied = apply_device_controls(device, self.controls)
        cfg = rs.config()
        cfg.enable_device(serial)
        cfg.enable_stream(rs.stream.color, color.width, color.height, rs.format.rgb8, color.fps)
        cfg.enable_stream(rs.stream.depth, depth.width, depth.height, rs.format.z16, depth.fps)
        self.pipeline = rs.pipeline(ctx)
        try:
            self.profile = self.pipeline.start(cfg)
        except RuntimeError as exc:
            raise SourceUnavailable(f"could not start {serial}: {exc}") from None
        self.info = self._describe("device", color, depth)
        self.info.controls = applied

    def finished(self) -> bool:
        return False

    def set_control(self, sensor: str, option: str, value: float) -> float:
        return set_device_control(self.profile.get_device(), self.controls, sensor, option, value)


def apply_device_controls(device: Any, c: ControlSettings) -> dict[str, dict[str, float]]:
    """Lock exposure / gain (auto exposure off unless asked) and set the projector; read back what stuck."""
    applied: dict[str, dict[str, float]] = {}
    for key, sensor in control_sensors(device).items():
        is_depth = key == "depth"
        auto = c.depth_auto_exposure if is_depth else c.color_auto_exposure
        wanted = {rs.option.enable_auto_exposure: 1.0 if auto else 0.0}
        if not auto:
            exp, gain = (c.depth_exposure_us, c.depth_gain) if is_depth else (c.color_exposure_us, c.color_gain)
            if exp is not None:
                wanted[rs.option.exposure] = exp
            if gain is not None:
                wanted[rs.option.gain] = gain
        # laser power first: on a D400, setting it switches the emitter on (librealsense's
        # auto-disabling control), so the emitter setting must come after it
        if is_depth and c.laser_power_mw is not None:
            wanted[rs.option.laser_power] = c.laser_power_mw
        if is_depth and c.emitter_enabled is not None:
            wanted[rs.option.emitter_enabled] = float(c.emitter_enabled)
        applied[key] = {}
        supported = [opt for opt in wanted if sensor.supports(opt)]
        for opt in supported:
            try:
                sensor.set_option(opt, wanted[opt])
            except RuntimeError as exc:
                log.warning("could not set %s.%s=%s: %s", key, opt, wanted[opt], exc)
        for opt in supported:  # read back once all are set: one option can change another
            applied[key][str(opt).split(".")[-1]] = float(sensor.get_option(opt))
    return applied


class RecordingSource(_PipelineSource):
    """A RealSense recording (.bag, or .db3 from SDK 2.59+) played through the SDK."""

    def __init__(self, path: str, *, real_time: bool = True) -> None:
        if not os.path.isfile(path):
            raise SourceError(f"recording not found: {path}")
        cfg = rs.config()
        cfg.enable_device_from_file(path, repeat_playback=False)
        self.pipeline = rs.pipeline()
        try:
            self.profile = self.pipeline.start(cfg)
        except RuntimeError as exc:
            raise SourceError(f"cannot play {path}: {exc}") from None
        self.playback = self.profile.get_device().as_playback()
        self.playback.set_real_time(real_time)
        self.real_time = real_time  # False: the file waits for us, so the pipeline must not skip frames
        c = self.profile.get_stream(rs.stream.color).as_video_stream_profile()
        d = self.profile.get_stream(rs.stream.depth).as_video_stream_profile()
        self.info = self._describe(
            "recording", Profile(c.width(), c.height(), c.fps()), Profile(d.width(), d.height(), d.fps())
        )
        self.info.controls = {"note": f"recorded: {os.path.basename(path)}"}

    def finished(self) -> bool:
        return bool(self.playback.current_status() == rs.playback_status.stopped)

    def set_control(self, sensor: str, option: str, value: float) -> float:
        raise ControlError(f"a recording plays what was recorded: its {option} cannot change (no effect)")
