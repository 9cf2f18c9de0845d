"""calibration_node: ChArUco / checkerboard calibration as ROS services.

Watches a colour (or IR) image, detects the board at a bounded rate (by image stamp) and
keeps the views that are sharp and new; one frame is one view, however often it is sent.
Services (relative to the node namespace):

* `capture_view` (std_srvs/Trigger): keep the newest image as a view even if similar
  (refused when it is a view already, or no new image arrived since the last capture);
* `calibrate` (Calibrate): intrinsics, refused when the RMS reprojection error, the coverage
  (x, y, size, skew) or the uncertainty of fx, fy, cx, cy fails its gate, unless `force`;
* `calibrate_stereo` (CalibrateStereo): extrinsics to a second camera from synchronized pairs;
* `verify_depth` (VerifyDepth): sensor depth against the board plane;
* `calibrate_mono_scale` (CalibrateMonoScale): metric scale for monocular disparity, from the
  board plane, the board's known size, or pairs of points a known distance apart;
* `reset` (std_srvs/Trigger).

Image inputs (`color/image_raw`, `right/image_raw`) are subscribed **reliable, keep last 10**:
a person holds each view up once, so a lost image is a lost view (a best-effort subscription
lost most 1280x720 views in a stock environment); 10 frames absorb a detection falling behind
a 30 fps stream without ever holding stale views. A best-effort camera publisher does not
match a reliable subscription: set `qos_overrides./<ns>/color/image_raw.subscription.reliability:
best_effort` for one. Depth, disparity and camera_info stay best effort (sensor data).

The views, pairs, stamp buffers, samples and maths live in `calibration.CalibrationSession`
(as image_pipeline's camera_calibration keeps its calibrator apart from its node): this node
converts messages to arrays and stamps, forwards them and the service calls, and converts the
results back.

A one-line status (std_msgs/String, 1 Hz) goes to `~/status` (`<ns>/calibration_node/status`):
`<ns>/status` is the driver's CaptureStatus, and one topic name carries one type.

Results go to `<dataset_dir>/calibration/calibration.json` (one versioned
document with a section per result), a history copy of each, and a
camera_info YAML; the intrinsics are published on `camera_info` and, when
`push_to_driver` is set, sent to the driver's `set_camera_info`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.client import Client
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, Image
from sensor_msgs.srv import SetCameraInfo
from std_msgs.msg import String
from std_srvs.srv import Trigger

from depth_annotation.calibration import (
    ARUCO_DICTIONARIES,
    BoardError,
    BoardSpec,
    CalibrationError,
    CalibrationGates,
    CalibrationSession,
    SessionConfig,
    gray_image,
    save_camera_info_yaml,
    save_section,
)
from depth_annotation.common import CameraModelError, ImageConversionError, Intrinsics, image_to_array
from depth_annotation.srv import Calibrate, CalibrateMonoScale, CalibrateStereo, VerifyDepth

from .faults import FaultGuard
from .messages import camera_info_msg, make_header, stamp_to_ns
from .params import StartupError, declare, declare_renamed
from .runtime import run_node

NODE_NAME = "calibration_node"


def _checked_dictionary(name: str) -> str:
    if name not in ARUCO_DICTIONARIES:
        raise BoardError(f"unknown ArUco dictionary {name!r}: one of {', '.join(ARUCO_DICTIONARIES)}")
    return name


def _gray(msg: Image) -> np.ndarray:
    return gray_image(image_to_array(msg), msg.encoding)


class CalibrationNode(Node):
    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        d = partial(declare, self)
        try:
            spec = BoardSpec(
                kind=d("board_type", "charuco", "calibration target", choices=("charuco", "checkerboard")),
                squares_x=d("squares_x", 7, "squares along x (inner corners + 1 for a checkerboard)", low=3, high=100),
                squares_y=d("squares_y", 5, "squares along y", low=3, high=100),
                square_length_m=d("square_length_m", 0.04, "printed square size", low=0.001, high=1.0),
                marker_length_m=d("marker_length_m", 0.03, "printed ArUco marker size (ChArUco)", low=0.001, high=1.0),
                dictionary=_checked_dictionary(
                    d("dictionary", "DICT_5X5_100", "ArUco dictionary (ChArUco)", choices=ARUCO_DICTIONARIES)
                ),
            )
        except BoardError as exc:
            raise StartupError(str(exc)) from None
        detect_rate = d("detect_rate_hz", 5.0, "board detections per second at most", low=0.1, high=100.0)
        gate = CalibrationGates()
        self.session = CalibrationSession(
            SessionConfig(
                spec=spec,
                min_views=d("min_views", 20, "views needed for calibrate", low=3, high=1000),
                max_rms_px=d("max_rms_px", 0.5, "RMS reprojection error gate", low=0.01, high=10.0),
                reject_outliers=d("reject_outliers", True, "drop outlier views once and recalibrate"),
                detect_period_ns=int(1e9 / detect_rate),
                min_pairs=d("min_stereo_pairs", 10, "pairs needed for calibrate_stereo", low=3, high=1000),
                stereo_tolerance_ns=int(
                    1e9
                    * d("stereo_sync_tolerance_s", 0.005, "max stamp difference of a stereo pair", low=0.0, high=1.0)
                ),
                min_mono_frames=d("min_mono_frames", 50, "frames needed for calibrate_mono_scale", low=2, high=10000),
                verify_frames=d("verify_frames", 10, "frames averaged by verify_depth", low=1, high=1000),
                min_sharpness=d(
                    "min_sharpness", 20.0, "Laplacian variance below which a view is too blurred", low=0.0, high=1e6
                ),
                min_view_distance=d(
                    "min_view_distance", 0.1, "how different a new view must be (x, y, size, skew)", low=0.0, high=2.0
                ),
                gates=CalibrationGates(
                    min_coverage_x=d(
                        "min_coverage_x", gate.min_coverage_x, "calibrate refuses below", low=0.0, high=1.0
                    ),
                    min_coverage_y=d(
                        "min_coverage_y", gate.min_coverage_y, "calibrate refuses below", low=0.0, high=1.0
                    ),
                    min_coverage_size=d(
                        "min_coverage_size", gate.min_coverage_size, "calibrate refuses below", low=0.0, high=1.0
                    ),
                    min_coverage_skew=d(
                        "min_coverage_skew", gate.min_coverage_skew, "calibrate refuses below", low=0.0, high=1.0
                    ),
                    max_std_fraction=d(
                        "max_std_fraction",
                        gate.max_std_fraction,
                        "calibrate refuses when std(fx, fy, cx or cy) exceeds this fraction of the value",
                        low=0.0,
                        high=1.0,
                    ),
                ),
            )
        )
        self.dataset_dir = Path(
            declare_renamed(
                self, "output_dir", "dataset_dir", "dataset", "calibration results go to <output_dir>/calibration/"
            )
        ).expanduser()
        self.camera_name = d("camera_name", "camera_color", "camera name in the YAML and JSON")
        self.push_to_driver = d("push_to_driver", False, "send calibrated intrinsics to the driver's set_camera_info")

        # one bad message or request is reported on `status` and the log; the views survive
        self.guard = FaultGuard(self, lambda where, text: self.session.note(f"{where}: {text}"))
        g = self.guard
        # The main camera's images one at a time, in arrival order (views, the status line and the
        # image capture_view keeps follow the stream, never whichever detection finished last). Right
        # images (every one detected, only paired by stamp) and the other streams run side by side.
        streams = ReentrantCallbackGroup()
        image_groups = {"color/image_raw": MutuallyExclusiveCallbackGroup(), "right/image_raw": streams}
        services = MutuallyExclusiveCallbackGroup()
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
        views = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
        overridable = QoSOverridingOptions.with_default_policies()
        for topic, cb in (("color/image_raw", self._on_image), ("right/image_raw", self._on_right)):
            self.create_subscription(
                Image,
                topic,
                g.callback(topic, cb),
                views,
                callback_group=image_groups[topic],
                qos_overriding_options=overridable,
            )
        for topic, msg_type, cb in (
            ("color/camera_info", CameraInfo, self._on_info),
            ("right/camera_info", CameraInfo, self._on_right_info),
            ("aligned_depth_to_color/image_raw", Image, self._on_depth),
            ("mono/disparity", Image, self._on_relative),
        ):
            self.create_subscription(msg_type, topic, g.callback(topic, cb), qos, callback_group=streams)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub_info = self.create_publisher(CameraInfo, "camera_info", latched)
        self.pub_status = self.create_publisher(String, "~/status", 10)  # the driver owns <ns>/status
        handlers: tuple[tuple[str, Any, Callable[[Any, Any], Any]], ...] = (
            ("capture_view", Trigger, self._srv_capture),
            ("reset", Trigger, self._srv_reset),
            ("calibrate", Calibrate, self._srv_calibrate),
            ("calibrate_stereo", CalibrateStereo, self._srv_stereo),
            ("verify_depth", VerifyDepth, self._srv_verify),
            ("calibrate_mono_scale", CalibrateMonoScale, self._srv_mono),
        )
        for name, srv, handler in handlers:
            self.create_service(srv, name, g.service(name, handler), callback_group=services)
        self.driver_client: Client[Any, Any] = self.create_client(
            SetCameraInfo, d("driver_service", "set_camera_info", "the driver's SetCameraInfo service")
        )
        self.create_timer(1.0, self._publish_status)

    # --- streams: messages in, arrays to the session ---------------------------------------------
    def _on_info(self, msg: CameraInfo) -> None:
        try:
            self.session.set_camera_info(Intrinsics.from_camera_info(msg))
        except CameraModelError:
            pass

    def _on_right_info(self, msg: CameraInfo) -> None:
        try:
            self.session.set_right_camera_info(Intrinsics.from_camera_info(msg))
        except CameraModelError:
            pass

    def _on_image(self, msg: Image) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        if not self.session.wants_image(stamp):
            return
        try:
            gray = _gray(msg)
        except ImageConversionError as exc:
            self.session.note(str(exc))
            return
        self.session.add_image(stamp, gray)

    def _on_right(self, msg: Image) -> None:
        try:
            gray = _gray(msg)
        except ImageConversionError:
            return
        self.session.add_right_image(stamp_to_ns(msg.header.stamp), gray)

    def _on_depth(self, msg: Image) -> None:
        if self._expect(msg, "16UC1"):
            self.session.add_depth(stamp_to_ns(msg.header.stamp), image_to_array(msg))

    def _on_relative(self, msg: Image) -> None:
        if self._expect(msg, "32FC1"):
            self.session.add_relative(stamp_to_ns(msg.header.stamp), image_to_array(msg))

    def _expect(self, msg: Image, encoding: str) -> bool:
        if msg.encoding != encoding:  # say so on the status topic, as for every other input problem
            self.session.note(f"ignored a {msg.encoding!r} frame where {encoding} was expected")
            return False
        return True

    def _publish_status(self) -> None:
        self.pub_status.publish(String(data=self.session.status()))

    # --- services: requests to the session, results to responses -----------------------------------
    def _srv_capture(self, req, res):
        result = self.session.capture_view()
        res.success, res.message = result.success, result.message
        return res

    def _srv_reset(self, req, res):
        self.session.reset()
        res.success, res.message = True, "views, pairs and samples cleared"
        return res

    def _save(self, section: str, payload: dict) -> Path:
        return save_section(self.dataset_dir / "calibration", section, payload, camera=self.camera_name)

    def _srv_calibrate(self, req: Calibrate.Request, res: Calibrate.Response) -> Calibrate.Response:
        board = None
        if req.board_type:
            try:
                board = BoardSpec.from_counts(  # a checkerboard by its inner corners, as the srv says
                    req.board_type,
                    int(req.squares_x),
                    int(req.squares_y),
                    float(req.square_length_m),
                    float(req.marker_length_m),
                    _checked_dictionary(req.dictionary or self.session.spec.dictionary),
                )
            except BoardError as exc:
                res.success, res.message = False, f"board override rejected: {exc}"
                return res
        result = self.session.calibrate(board=board, min_views=int(req.min_views), force=bool(req.force))
        res.success, res.message = result.success, result.message
        if result.image_size is None:
            return res
        res.rms_px = result.rms_px
        res.per_view_error_px = result.per_view_error_px
        res.views_used = result.views_used
        res.view_stamps_ns = result.view_stamps_ns
        res.image_width, res.image_height = result.image_size
        res.failed_gates, res.forced = result.failed_gates, result.forced
        cov = result.coverage
        if cov:
            res.coverage_x, res.coverage_y = cov["x"], cov["y"]
            res.coverage_size, res.coverage_skew = cov["size"], cov["skew"]
        res.corner_coverage = result.corner_coverage
        if result.std_dev:
            res.std_fx, res.std_fy = result.std_dev["fx"], result.std_dev["fy"]
            res.std_cx, res.std_cy = result.std_dev["cx"], result.std_dev["cy"]
            res.std_d = result.std_dev_d
        if result.intrinsics is not None:
            intr = result.intrinsics
            res.k = intr.k.ravel().tolist()
            res.d = list(intr.d)
            res.camera_info = camera_info_msg(intr, make_header(self.get_clock().now().nanoseconds, ""))
        if not result.success or result.intrinsics is None:
            return res  # nothing saved
        try:
            path = self._save("intrinsics", {**result.to_dict(), "source": "calibration_node"})
            save_camera_info_yaml(path.parent, result.intrinsics, self.camera_name)
        except (OSError, CalibrationError) as exc:
            res.success, res.message = False, f"{result.message}; could not save: {exc}"
            return res
        res.saved_path = str(path)
        self.pub_info.publish(res.camera_info)
        if self.push_to_driver:
            if self.driver_client.service_is_ready():
                self.driver_client.call_async(SetCameraInfo.Request(camera_info=res.camera_info))
                res.message += f"; sent to {self.driver_client.srv_name}"
            else:
                res.message += f"; driver service {self.driver_client.srv_name} not available"
        self.get_logger().info(f"calibrated: {res.message}; saved {path}")
        return res

    def _srv_stereo(self, req: CalibrateStereo.Request, res: CalibrateStereo.Response) -> CalibrateStereo.Response:
        result = self.session.calibrate_stereo(min_pairs=int(req.min_pairs))
        res.success, res.message, res.rms_px, res.pairs_used = (
            result.success,
            result.message,
            result.rms_px,
            result.pairs_used,
        )
        res.per_view_error_px = result.per_view_error_px
        if result.left_to_right is not None:
            res.r = result.left_to_right.rotation.ravel().tolist()
            res.t = result.left_to_right.translation.tolist()
            res.baseline_m, res.rotation_deg = result.baseline_m, result.rotation_deg
        if result.success:
            res.saved_path = str(self._save("stereo", {"board": self.session.spec.to_dict(), **result.to_dict()}))
        return res

    def _srv_verify(self, req: VerifyDepth.Request, res: VerifyDepth.Response) -> VerifyDepth.Response:
        summary = self.session.verify_depth(frames=int(req.frames))
        res.success, res.message = summary.success, summary.message
        if not summary.success:
            return res
        res.bias_mm, res.bias_percent, res.spread_mm = summary.bias_mm, summary.bias_percent, summary.spread_mm
        res.plane_residual_mm, res.board_distance_m = summary.plane_residual_mm, summary.board_distance_m
        res.pixels, res.frames_used = summary.pixels, summary.frames_used
        res.saved_path = str(self._save("depth_check", summary.to_dict()))
        return res

    def _srv_mono(
        self, req: CalibrateMonoScale.Request, res: CalibrateMonoScale.Response
    ) -> CalibrateMonoScale.Response:
        result = self.session.calibrate_mono_scale(
            min_frames=int(req.min_frames),
            reference=str(req.reference),
            points_px=np.asarray(req.points_px, np.float64),
            distances_m=np.asarray(req.distances_m, np.float64),
        )
        res.success, res.message, res.reference = result.success, result.message, result.reference
        if not result.success:
            return res
        res.scale, res.shift, res.scale_spread, res.frames_used = (
            result.scale,
            result.shift,
            result.scale_spread,
            result.frames_used,
        )
        res.pairs_used = result.pairs_used
        res.shift_fitted = bool(result.fit.shift_fitted) if result.fit else False
        res.saved_path = str(self._save("mono_scale", result.to_dict()))
        return res


def main(args: list[str] | None = None) -> int:
    return run_node(CalibrationNode, args, name=NODE_NAME, threads=4)


if __name__ == "__main__":
    sys.exit(main())
