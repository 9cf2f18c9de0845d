"""realsense_node: synchronized colour + aligned depth from a RealSense, a recording or the synthetic camera.

A thin shell: parameters -> `CapturePipeline` (core) -> messages. Topics are
relative to the node namespace (launch it in `camera`): colour, depth and
aligned depth images with their camera_info (reliable per REP-2003, overridable), `status`
(CaptureStatus, 1 Hz), `/diagnostics`, and a static TF from the depth to the
colour optical frame. Services `set_camera_info` (colour) and
`depth/set_camera_info` replace the factory intrinsics.

`source`: `device` (a RealSense), `recording` (a RealSense SDK recording, .bag or
.db3, given by `bag_path`) or `synthetic`. `bag` is the deprecated name of
`recording` (in ROS "bag" means rosbag2): accepted with a warning.

Tunable with `ros2 param set` (validated, applied to the next frames, or refused with
the reason): the filter chain (`<name>_filter.enable`, `<name>_filter.<option>`) and,
on a device, exposure, gain and auto exposure under realsense-ros's names
(`depth_module.*`, `rgb_camera.*`). Every other parameter is read-only.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import TransformStamped
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import CameraInfo, Image
from sensor_msgs.srv import SetCameraInfo
from tf2_msgs.msg import TFMessage

from depth_annotation.capture import (
    FILTER_ORDER,
    FILTERS,
    CaptureConfig,
    CapturedFrame,
    CapturePipeline,
    CaptureState,
    ControlSettings,
    DeviceSource,
    FilterSettings,
    Profile,
    RecordingSource,
    SourceError,
    SourceFactory,
    SyntheticFaults,
    SyntheticSource,
    build_metadata,
    write_metadata,
)
from depth_annotation.common import Extrinsics, Intrinsics, atomic_io, from_camera_info_yaml, to_camera_info_yaml
from depth_annotation.msg import CaptureStatus, StreamStats

from .messages import camera_info_msg, diagnostic_array, diagnostic_status, image_msg, make_header, stamp_from_ns
from .params import StartupError, declare, declare_renamed
from .qos import stream_publisher
from .runtime import check_parameters, run_node

NODE_NAME = "realsense_node"
SOURCES = ("device", "recording", "synthetic")
DEPRECATED_SOURCES = {"bag": "recording"}  # old value -> new, accepted with a warning for one release
# body (x forward, y left, z up) -> optical (z forward, x right, y down), as xyzw
OPTICAL_ROTATION = (-0.5, 0.5, -0.5, 0.5)
# Sensor controls, tunable at run time, under realsense-ros's names:
# name -> (sensor, SDK option, our old name, default, description, low, high)
CONTROL_PARAMS: dict[str, tuple[str, str, str | None, bool | int, str, int | None, int | None]] = {
    "depth_module.enable_auto_exposure": (
        "depth",
        "enable_auto_exposure",
        "auto_exposure",
        False,
        "depth sensor auto exposure (off locks exposure and gain: AE shifts the IR pattern)",
        None,
        None,
    ),
    "depth_module.exposure": ("depth", "exposure", "depth_exposure_us", 8500, "depth exposure (µs)", 1, 200000),
    "depth_module.gain": ("depth", "gain", "depth_gain", 16, "depth sensor gain", 16, 248),
    "depth_module.emitter_enabled": (
        "depth",
        "emitter_enabled",
        "emitter_enabled",
        1,
        "IR projector: 0 off, 1 on, 2 auto where the camera has it",
        0,
        2,
    ),
    "depth_module.laser_power": ("depth", "laser_power", "laser_power_mw", 150, "IR projector power (mW)", 0, 360),
    "rgb_camera.enable_auto_exposure": (
        "color",
        "enable_auto_exposure",
        None,
        False,
        "colour auto exposure",
        None,
        None,
    ),
    "rgb_camera.exposure": ("color", "exposure", "color_exposure_us", 166, "colour exposure (device units)", 1, 10000),
    "rgb_camera.gain": ("color", "gain", "color_gain", 64, "colour sensor gain", 0, 128),
}


class RealSenseNode(Node):
    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        p = self._declare_parameters()
        self.camera_name: str = p["camera_name"]
        self.color_frame = f"{self.camera_name}_color_optical_frame"
        self.depth_frame = f"{self.camera_name}_depth_optical_frame"
        self.session_id = p["session_id"] or dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.output_dir = Path(p["output_dir"]).expanduser()
        self.session_dir = self.output_dir / self.session_id
        self.publish_depth = p["publish_depth"]
        self._runtime_changes: list[dict[str, Any]] = []  # accepted `param set`s, for capture_metadata.json
        self._stopped_ns: int | None = None
        self._override: dict[str, Intrinsics] = {}

        # REP-2003: reliable publishers (rviz2, depth_image_proc and `ros2 bag record` subscribe
        # reliably), overridable per topic with qos_overrides (nodes/qos.py).
        self.pub_color = stream_publisher(self, Image, "color/image_raw")
        self.pub_color_info = stream_publisher(self, CameraInfo, "color/camera_info")
        self.pub_depth = stream_publisher(self, Image, "depth/image_raw")
        self.pub_depth_info = stream_publisher(self, CameraInfo, "depth/camera_info")
        self.pub_aligned = stream_publisher(self, Image, "aligned_depth_to_color/image_raw")
        self.pub_aligned_info = stream_publisher(self, CameraInfo, "aligned_depth_to_color/camera_info")
        self.pub_status = self.create_publisher(CaptureStatus, "status", 10)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub_tf_static = self.create_publisher(TFMessage, "/tf_static", latched)
        self.create_service(SetCameraInfo, "set_camera_info", lambda req, res: self._set_camera_info("color", req, res))
        self.create_service(
            SetCameraInfo, "depth/set_camera_info", lambda req, res: self._set_camera_info("depth", req, res)
        )
        if p["use_saved_camera_info"]:
            self._load_saved_camera_info()

        # Everything a user can get wrong is refused here, before the camera starts or a file is written.
        check_parameters(self)
        self.pipeline = CapturePipeline(source_factory(p), self._capture_config(p), self._publish_frame)
        try:
            self.pipeline.start()
        except SourceError as exc:
            raise StartupError(str(exc)) from None
        if self.pipeline.state == CaptureState.RECONNECTING:  # no device (yet): say so where a person looks
            self.get_logger().error(
                f"{self.pipeline.message}; retrying with exponential backoff "
                f"({self.pipeline.config.reconnect_initial_s:g} s doubling to {p['reconnect_max_backoff_s']:g} s) "
                "until one is connected or the node is stopped"
            )
        info = self.pipeline.info
        if info is not None:
            for w in info.warnings:
                self.get_logger().warning(w)
            self._publish_static_tf(info.depth_to_color)
        on = [f.name for f in self.pipeline.filter_settings if f.enabled]
        self.get_logger().info(
            f"source={p['source']} color={p['color_profile']} depth={p['depth_profile']} align={p['align_depth']} "
            f"filters={'+'.join(on) or 'none'} warmup={self.pipeline.config.warmup_s:.0f}s "
            f"metadata={self.session_dir / 'capture_metadata.json'}"
        )
        self._write_metadata()
        self._tf_sent = info is not None
        self.create_timer(p["status_period_s"], self._on_status_timer)
        self.create_timer(p["metadata_period_s"], self._write_metadata)

    # --- parameters -------------------------------------------------------------------------
    def _declare_parameters(self) -> dict[str, Any]:
        d = partial(declare, self)
        self._accept_deprecated_source()
        p = {
            "source": d(
                "source",
                "synthetic",
                "where frames come from: a RealSense device, a RealSense SDK recording, or the synthetic camera",
                choices=SOURCES,
            ),
            "serial_no": d("serial_no", "", "device serial number to open (empty: the first one found)"),
            "bag_path": d("bag_path", "", "RealSense SDK recording (.bag / .db3) to play when source=recording"),
            "bag_real_time": d(
                "bag_real_time",
                True,
                "play the recording at its recorded rate (false: as fast as the pipeline goes, skipping no frame)",
            ),
            "camera_name": d("camera_name", "camera", "prefix of the TF frame ids (<name>_color_optical_frame, ...)"),
            "color_profile": d("color_profile", "640x480x30", "colour stream WIDTHxHEIGHTxFPS"),
            "depth_profile": d("depth_profile", "640x480x30", "depth stream WIDTHxHEIGHTxFPS"),
            "align_depth": d("align_depth", True, "publish depth aligned to colour (SDK align block)"),
            "publish_depth": d("publish_depth", True, "also publish the unaligned depth stream"),
            "disparity_domain": d(
                "disparity_domain", True, "run spatial/temporal filters on disparity (librealsense recommendation)"
            ),
            "sdk_processes": d(
                "sdk_processes",
                True,
                "run the SDK filter and align blocks in worker processes "
                "(uses every core; off: threads of this process)",
            ),
            "warmup_s": d(
                "warmup_s",
                -1.0,
                "seconds before frames are published as data (-1: 30 for a device, 0 otherwise)",
                low=-1.0,
                high=600.0,
            ),
            "output_dir": d("output_dir", "captures", "directory for <session_id>/capture_metadata.json"),
            "session_id": d("session_id", "", "session directory name (empty: UTC start time)"),
            "use_saved_camera_info": d(
                "use_saved_camera_info", True, "publish intrinsics saved by set_camera_info in output_dir/camera_info/"
            ),
            "status_period_s": d("status_period_s", 1.0, "CaptureStatus and /diagnostics period", low=0.1, high=60.0),
            "metadata_period_s": d(
                "metadata_period_s", 10.0, "how often capture_metadata.json is refreshed", low=1.0, high=3600.0
            ),
            "frame_timeout_ms": d(
                "frame_timeout_ms", 1000, "wait per frame before counting a timeout", low=50, high=60000
            ),
            "reconnect_max_backoff_s": d(
                "reconnect_max_backoff_s", 8.0, "longest wait between reconnect attempts", low=0.1, high=300.0
            ),
            "synthetic_timestamp_domain": d(
                "synthetic_timestamp_domain",
                "hardware_clock",
                "timestamp domain of the synthetic camera's frames (a D4xx defaults to global_time)",
                choices=("hardware_clock", "global_time", "system_time"),
            ),
            "synthetic_seed": d("synthetic_seed", 0, "synthetic scene layout and noise seed", low=0, high=2**31 - 1),
            "synthetic_motion": d("synthetic_motion", False, "move the synthetic camera along a smooth orbit"),
            "synthetic_poses": d(
                "synthetic_poses", 30, "poses ray-cast for a moving synthetic camera", low=2, high=600
            ),
            "synthetic_drop_frames": d(
                "synthetic_drop_frames", [], "fault injection: hardware frame numbers never delivered"
            ),
            "synthetic_hole_frames": d(
                "synthetic_hole_frames", [], "fault injection: frames whose depth gets a large central hole"
            ),
            "synthetic_disconnect_at_frame": d(
                "synthetic_disconnect_at_frame",
                -1,
                "fault injection: device vanishes after this frame (-1 off)",
                low=-1,
                high=2**31 - 1,
            ),
            "synthetic_disconnect_s": d(
                "synthetic_disconnect_s", 3.0, "fault injection: how long it stays away", low=0.0, high=600.0
            ),
        }
        p.update(self._declare_controls())
        for name in FILTER_ORDER:
            spec = FILTERS[name]
            p[f"{name}_filter.enable"] = d(
                f"{name}_filter.enable",
                spec.enabled,
                f"{spec.description} (tunable)",
                on_change=partial(self._set_filter, name, None),
            )
            for opt in spec.options:
                default = int(opt.default) if opt.integer else float(opt.default)
                p[f"{name}_filter.{opt.name}"] = d(
                    f"{name}_filter.{opt.name}",
                    default,
                    f"{opt.description} (tunable)",
                    low=opt.low,
                    high=opt.high,
                    on_change=partial(self._set_filter, name, opt.name),
                )
        for key in ("color_profile", "depth_profile"):
            try:
                Profile.parse(p[key])
            except ValueError as exc:
                raise StartupError(f"parameter {key!r}: {exc}") from None
        if p["source"] == "recording" and not p["bag_path"]:
            raise StartupError("source=recording needs parameter 'bag_path'")
        if p["warmup_s"] < 0:
            p["warmup_s"] = 30.0 if p["source"] == "device" else 0.0
        return p

    def _declare_controls(self) -> dict[str, Any]:
        """Exposure, gain, auto exposure and the projector under realsense-ros's names; our old names
        still work (a warning).

        The old `auto_exposure` set both sensors; the old exposure, gain and laser power were floats
        and `emitter_enabled` a bool (now integers, as realsense-ros declares them).
        """
        overrides = getattr(self, "_parameter_overrides", {})
        old_auto = overrides.get("auto_exposure")
        if old_auto is not None and "rgb_camera.enable_auto_exposure" not in overrides:
            overrides["rgb_camera.enable_auto_exposure"] = Parameter(
                "rgb_camera.enable_auto_exposure", value=old_auto.value
            )
        out: dict[str, Any] = {}
        for name, (sensor, option, old, default, description, low, high) in CONTROL_PARAMS.items():
            given = overrides.get(old) if old else None
            if old and given is not None and type(default) is int and isinstance(given.value, (float, bool)):
                overrides[old] = Parameter(old, value=round(given.value))  # whole device units now (True: 1)
            on_change = partial(self._set_control, name, sensor, option)
            text = f"{description} (tunable on a device)"
            if old:
                out[name] = declare_renamed(self, name, old, default, text, low=low, high=high, on_change=on_change)
            else:
                out[name] = declare(self, name, default, text, low=low, high=high, on_change=on_change)
        return out

    def _set_filter(self, name: str, option: str | None, value: Any) -> None:
        """On-set callback of a filter parameter: the pipeline validates and applies it from the next frame."""
        if option is None:
            self.pipeline.update_filter(name, enabled=bool(value))
        else:
            self.pipeline.update_filter(name, options={option: value})
        self._note_change(f"{name}_filter.{option or 'enable'}", value)

    def _set_control(self, name: str, sensor: str, option: str, value: Any) -> None:
        """On-set callback of a sensor control: set through the SDK now, or refused (ControlError) with why."""
        read_back = self.pipeline.set_control(sensor, option, float(value))
        self._note_change(name, value, f" (the camera reads back {read_back:g})")

    def _note_change(self, name: str, value: Any, detail: str = "") -> None:
        self.get_logger().info(f"{name} set to {value!r}{detail}")
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        self._runtime_changes.append({"utc": now, "parameter": name, "value": value})
        self._write_metadata()

    def _accept_deprecated_source(self) -> None:
        """`source:=bag` still works for one release: mapped to `recording` before declaring, with one warning."""
        overrides = getattr(self, "_parameter_overrides", {})
        given = overrides.get("source")
        old = given.value if given is not None else None
        new = DEPRECATED_SOURCES.get(old) if isinstance(old, str) else None
        if new is not None:
            self.get_logger().warning(
                f"source {old!r} is deprecated: use source:={new} (a RealSense SDK recording, not a rosbag2)"
            )
            overrides["source"] = Parameter("source", value=new)

    def _capture_config(self, p: dict[str, Any]) -> CaptureConfig:
        filters = [
            FilterSettings(
                name,
                p[f"{name}_filter.enable"],
                {opt.name: p[f"{name}_filter.{opt.name}"] for opt in FILTERS[name].options},
            )
            for name in FILTER_ORDER
        ]
        return CaptureConfig(
            align=p["align_depth"],
            filters=filters,
            disparity_domain=p["disparity_domain"],
            sdk_processes=p["sdk_processes"],
            warmup_s=p["warmup_s"],
            frame_timeout_ms=p["frame_timeout_ms"],
            reconnect_max_s=p["reconnect_max_backoff_s"],
        )

    # --- publishing (called from the pipeline's align thread) ---------------------------------
    def _publish_frame(self, f: CapturedFrame) -> None:
        color_intr = self._override.get("color", f.color_intrinsics)
        depth_intr = self._override.get("depth", f.depth_intrinsics)
        color_header = make_header(f.stamp_ns, self.color_frame)
        self.pub_color.publish(image_msg(f.color, "rgb8", color_header))
        self.pub_color_info.publish(camera_info_msg(color_intr, color_header))
        if self.publish_depth:
            depth_header = make_header(f.stamp_ns, self.depth_frame)
            self.pub_depth.publish(image_msg(f.depth_mm, "16UC1", depth_header))
            self.pub_depth_info.publish(camera_info_msg(depth_intr, depth_header))
        if f.aligned_depth_mm is not None:
            self.pub_aligned.publish(image_msg(f.aligned_depth_mm, "16UC1", color_header))
            self.pub_aligned_info.publish(camera_info_msg(color_intr, color_header))

    def _publish_static_tf(self, depth_to_color: Extrinsics) -> None:
        now = stamp_from_ns(self.get_clock().now().nanoseconds)  # /clock under use_sim_time

        def tf(parent: str, child: str, xyz, q) -> TransformStamped:
            t = TransformStamped()
            t.header.stamp, t.header.frame_id, t.child_frame_id = now, parent, child
            t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (float(v) for v in xyz)
            (t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z, t.transform.rotation.w) = (
                float(v) for v in q
            )
            return t

        # TF parent->child is the pose of the child in the parent: the colour frame's pose in the
        # depth frame is the inverse of depth_to_color (which maps depth-frame points into colour).
        color_in_depth = depth_to_color.inverse()
        self.pub_tf_static.publish(
            TFMessage(
                transforms=[
                    tf(f"{self.camera_name}_link", self.depth_frame, (0, 0, 0), OPTICAL_ROTATION),
                    tf(
                        self.depth_frame, self.color_frame, color_in_depth.translation, color_in_depth.quaternion_xyzw()
                    ),
                ]
            )
        )

    # --- status, diagnostics, metadata ---------------------------------------------------------
    def _on_status_timer(self) -> None:
        pl = self.pipeline
        if not self._tf_sent and pl.info is not None:
            self._publish_static_tf(pl.info.depth_to_color)
            self._tf_sent = True
        info = pl.info
        proc_ms = pl.take_processing_ms()
        now_ns = self.get_clock().now().nanoseconds
        state = pl.state
        msg = CaptureStatus()
        msg.header = make_header(now_ns, self.color_frame)
        msg.state, msg.message = state.value, pl.message
        msg.source = info.source if info else ""
        msg.serial_no = info.serial if info else ""
        msg.firmware_version = info.firmware if info else ""
        msg.warmup_remaining_s = float(pl.warmup_remaining_s())
        msg.depth_scale_m = float(info.depth_scale_m) if info else 0.0
        msg.processing_ms = proc_ms
        values: dict[str, object] = {"state": state.value, "processing_ms": proc_ms}
        for name, c in pl.counters.items():
            fps = c.take_rate()
            msg.streams.append(
                StreamStats(
                    name=name,
                    frames_received=c.received,
                    frames_published=c.published,
                    frames_dropped=c.dropped,
                    frames_skipped=c.skipped,
                    last_frame_number=max(c.last_frame_number, 0),
                    last_hw_timestamp_ms=float(c.last_hw_timestamp_ms),
                    fps=float(fps),
                )
            )
            values.update(
                {
                    f"{name}.fps": fps,
                    f"{name}.received": c.received,
                    f"{name}.published": c.published,
                    f"{name}.dropped": c.dropped,
                    f"{name}.skipped": c.skipped,
                }
            )
        self.pub_status.publish(msg)

        level = DiagnosticStatus.OK
        if state in (CaptureState.RECONNECTING, CaptureState.WARMING_UP):
            level = DiagnosticStatus.WARN
        if state == CaptureState.ERROR:
            level = DiagnosticStatus.ERROR
        if state == CaptureState.STREAMING and any(c.dropped for c in pl.counters.values()):
            level = max(level, DiagnosticStatus.WARN)
        status = diagnostic_status(
            level,
            f"{self.get_fully_qualified_name()}: capture",
            pl.message or state.value,
            values,
            hardware_id=msg.serial_no,
        )
        self.pub_diag.publish(diagnostic_array(now_ns, [status]))

    def _write_metadata(self) -> None:
        pl = self.pipeline
        temps = pl.source.temperatures() if pl.source is not None else {}
        data = build_metadata(
            session_id=self.session_id,
            info=pl.info,
            filters=pl.filter_settings,
            align=pl.config.align,
            warmup_s=pl.config.warmup_s,
            counters=pl.counters,
            started_ns=pl.started_at_ns,
            stopped_ns=self._stopped_ns,
            temperatures=temps,
            timestamp_domain=pl.timestamp_domain,
            sdk_work={
                "sdk_work_in": "processes" if pl.workers is not None else "threads",
                "sdk_worker_restarts": pl.workers.restarts if pl.workers is not None else 0,
            },
            extra={
                "camera_info_overrides": {k: v.to_dict() for k, v in self._override.items()},
                "reconnects": pl.reconnects,
                "final_state": pl.state.value if self._stopped_ns is not None else None,
                "parameter_changes": self._runtime_changes,
            },
        )
        try:
            write_metadata(self.session_dir, data)
        except OSError as exc:
            self.get_logger().error(f"cannot write capture metadata to {self.session_dir}: {exc}")

    # --- camera_info overrides ------------------------------------------------------------------
    def _camera_info_path(self, stream: str) -> Path:
        return self.output_dir / "camera_info" / f"{stream}.yaml"

    def _load_saved_camera_info(self) -> None:
        for stream in ("color", "depth"):
            path = self._camera_info_path(stream)
            if path.exists():
                try:
                    self._override[stream] = from_camera_info_yaml(path.read_text())
                    self.get_logger().info(f"{stream} intrinsics from {path}")
                except Exception as exc:
                    self.get_logger().error(f"ignoring {path}: {exc}")

    def _set_camera_info(
        self, stream: str, req: SetCameraInfo.Request, res: SetCameraInfo.Response
    ) -> SetCameraInfo.Response:
        try:
            intr = Intrinsics.from_camera_info(req.camera_info)
            info = self.pipeline.info
            if info is not None:
                current = info.color_intrinsics if stream == "color" else info.depth_intrinsics
                if (intr.width, intr.height) != (current.width, current.height):
                    raise ValueError(
                        f"size {intr.width}x{intr.height} does not match the {stream} stream "
                        f"{current.width}x{current.height}"
                    )
            atomic_io.write_text(
                self._camera_info_path(stream), to_camera_info_yaml(intr, f"{self.camera_name}_{stream}")
            )
            self._override[stream] = intr
            self._write_metadata()
        except Exception as exc:
            res.success, res.status_message = False, str(exc)
            return res
        res.success = True
        res.status_message = f"{stream} intrinsics replaced; saved to {self._camera_info_path(stream)}"
        self.get_logger().info(res.status_message)
        return res

    def shutdown(self) -> None:
        self.pipeline.stop()
        self._stopped_ns = time.time_ns()
        self._write_metadata()


def source_factory(p: dict[str, Any]) -> SourceFactory:
    """What opens the configured source (the pipeline calls it again to reconnect).

    Building it imports only what the chosen source needs: no synthetic scene (Open3D) for a device.
    """
    color, depth = Profile.parse(p["color_profile"]), Profile.parse(p["depth_profile"])
    if p["source"] == "synthetic":
        faults = SyntheticFaults(
            drop_frames=frozenset(int(n) for n in p["synthetic_drop_frames"]),
            hole_frames=frozenset(int(n) for n in p["synthetic_hole_frames"]),
            disconnect_at_frame=p["synthetic_disconnect_at_frame"],
            disconnect_s=p["synthetic_disconnect_s"],
        )
        return lambda: SyntheticSource(
            color,
            depth,
            seed=p["synthetic_seed"],
            motion=p["synthetic_motion"],
            poses=p["synthetic_poses"],
            faults=faults,
            timestamp_domain=p["synthetic_timestamp_domain"],
        )
    if p["source"] == "recording":
        return lambda: RecordingSource(p["bag_path"], real_time=p["bag_real_time"])
    controls = ControlSettings(
        depth_auto_exposure=p["depth_module.enable_auto_exposure"],
        color_auto_exposure=p["rgb_camera.enable_auto_exposure"],
        depth_exposure_us=float(p["depth_module.exposure"]),
        depth_gain=float(p["depth_module.gain"]),
        color_exposure_us=float(p["rgb_camera.exposure"]),
        color_gain=float(p["rgb_camera.gain"]),
        emitter_enabled=p["depth_module.emitter_enabled"],
        laser_power_mw=float(p["depth_module.laser_power"]),
    )
    return lambda: DeviceSource(color, depth, serial_no=p["serial_no"], controls=controls)


def main(args: list[str] | None = None) -> int:
    return run_node(RealSenseNode, args, name=NODE_NAME)


if __name__ == "__main__":
    sys.exit(main())
