"""calibration_node: ChArUco / checkerboard calibration as ROS services.

Watches a colour (or IR) image, detects the board at a bounded rate and keeps the
views that are sharp and new. Services (relative to the node namespace):

* `capture_view` (std_srvs/Trigger): keep the current view even if similar;
* `calibrate` (Calibrate): intrinsics, gated on RMS reprojection error;
* `calibrate_stereo` (CalibrateStereo): extrinsics to a second camera from synchronized pairs;
* `verify_depth` (VerifyDepth): sensor depth against the board plane;
* `calibrate_mono_scale` (CalibrateMonoScale): metric scale for monocular disparity;
* `reset` (std_srvs/Trigger).

Results go to `<dataset_dir>/calibration/calibration.json` (one versioned
document with a section per result), a history copy of each, and a
camera_info YAML; the intrinsics are published on `camera_info` and, when
`push_to_driver` is set, sent to the driver's `set_camera_info`.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from sensor_msgs.srv import SetCameraInfo
from std_msgs.msg import String
from std_srvs.srv import Trigger

from depth_annotation.calibration import (
    BoardDetector,
    BoardError,
    BoardSpec,
    CalibrationError,
    ScaleFitError,
    ViewSelector,
    board_mask,
    calibrate_intrinsics,
    calibrate_stereo,
    calibration_document,
    estimate_board_pose,
    expected_plane_depth,
    fit_scale_shift,
    verify_depth,
)
from depth_annotation.common import (
    ImageConversionError,
    Intrinsics,
    atomic_io,
    image_to_array,
    mad_sigma,
    to_camera_info_yaml,
)
from depth_annotation.srv import Calibrate, CalibrateMonoScale, CalibrateStereo, VerifyDepth

from .messages import camera_info_msg, make_header, stamp_to_ns
from .params import StartupError, declare
from .runtime import run_node

NODE_NAME = "calibration_node"
RECENT = 12  # frames kept per stream for stamp matching


class _Recent(OrderedDict):
    """stamp -> item, bounded."""

    def put(self, stamp: int, item) -> None:
        self[stamp] = item
        while len(self) > RECENT:
            self.popitem(last=False)


def _gray(msg: Image) -> np.ndarray:
    arr = image_to_array(msg)
    if msg.encoding == "rgb8":
        return cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
    if msg.encoding == "bgr8":
        return cv2.cvtColor(arr, cv2.COLOR_BGR2GRAY)
    if msg.encoding in ("mono8", "8UC1"):
        return arr
    raise ImageConversionError(f"calibration needs rgb8, bgr8 or mono8 images, got {msg.encoding!r}")


class CalibrationNode(Node):
    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        d = partial(declare, self)
        try:
            self.spec = BoardSpec(
                kind=d("board_type", "charuco", "calibration target", choices=("charuco", "checkerboard")),
                squares_x=d("squares_x", 7, "squares along x (inner corners + 1 for a checkerboard)", low=3, high=100),
                squares_y=d("squares_y", 5, "squares along y", low=3, high=100),
                square_length_m=d("square_length_m", 0.04, "printed square size", low=0.001, high=1.0),
                marker_length_m=d("marker_length_m", 0.03, "printed ArUco marker size (ChArUco)", low=0.001, high=1.0),
                dictionary=d("dictionary", "DICT_5X5_100", "ArUco dictionary (ChArUco)"),
            )
        except BoardError as exc:
            raise StartupError(str(exc)) from None
        self.min_views = d("min_views", 20, "views needed for calibrate", low=3, high=1000)
        self.max_rms_px = d("max_rms_px", 0.5, "RMS reprojection error gate", low=0.01, high=10.0)
        self.reject_outliers = d("reject_outliers", True, "drop outlier views once and recalibrate")
        self.detect_period = 1.0 / d("detect_rate_hz", 5.0, "board detections per second at most", low=0.1, high=100.0)
        self.min_pairs = d("min_stereo_pairs", 10, "pairs needed for calibrate_stereo", low=3, high=1000)
        self.stereo_tolerance_ns = int(
            1e9 * d("stereo_sync_tolerance_s", 0.005, "max stamp difference of a stereo pair", low=0.0, high=1.0)
        )
        self.min_mono_frames = d("min_mono_frames", 50, "frames needed for calibrate_mono_scale", low=2, high=10000)
        self.verify_frames = d("verify_frames", 10, "frames averaged by verify_depth", low=1, high=1000)
        self.dataset_dir = Path(
            d("dataset_dir", "dataset", "calibration results go to <dataset_dir>/calibration/")
        ).expanduser()
        self.camera_name = d("camera_name", "camera_color", "camera name in the YAML and JSON")
        self.push_to_driver = d("push_to_driver", False, "send calibrated intrinsics to the driver's set_camera_info")
        self.selector = ViewSelector(
            min_sharpness=d(
                "min_sharpness", 20.0, "Laplacian variance below which a view is too blurred", low=0.0, high=1e6
            ),
            min_distance=d(
                "min_view_distance", 0.1, "how different a new view must be (x, y, size, skew)", low=0.0, high=2.0
            ),
        )
        self.detector = BoardDetector(self.spec)

        self._lock = threading.Lock()
        self.views: list[tuple[np.ndarray, object]] = []  # (gray image, detection)
        self.image_size: tuple[int, int] | None = None
        self.pairs: list[tuple[object, object]] = []
        self.pair_selector = ViewSelector(
            min_sharpness=self.selector.min_sharpness, min_distance=self.selector.min_distance
        )
        self.calibrated: Intrinsics | None = None
        self.factory: Intrinsics | None = None
        self.right_intrinsics: Intrinsics | None = None
        self._last_detect = 0.0
        self._latest: tuple[np.ndarray, object] | None = None
        self._left_recent, self._right_recent = _Recent(), _Recent()
        self._pose_recent, self._depth_recent, self._rel_recent = _Recent(), _Recent(), _Recent()
        self.depth_checks: list = []
        self.mono_samples: list[tuple[np.ndarray, np.ndarray]] = []
        self.status_text = "waiting for images"

        streams = ReentrantCallbackGroup()
        services = MutuallyExclusiveCallbackGroup()
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(Image, "color/image_raw", self._on_image, qos, callback_group=streams)
        self.create_subscription(CameraInfo, "color/camera_info", self._on_info, qos, callback_group=streams)
        self.create_subscription(Image, "right/image_raw", self._on_right, qos, callback_group=streams)
        self.create_subscription(CameraInfo, "right/camera_info", self._on_right_info, qos, callback_group=streams)
        self.create_subscription(Image, "aligned_depth_to_color/image_raw", self._on_depth, qos, callback_group=streams)
        self.create_subscription(Image, "mono/disparity", self._on_relative, qos, callback_group=streams)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub_info = self.create_publisher(CameraInfo, "camera_info", latched)
        self.pub_status = self.create_publisher(String, "status", 10)
        for name, srv, cb in (
            ("capture_view", Trigger, self._srv_capture),
            ("reset", Trigger, self._srv_reset),
            ("calibrate", Calibrate, self._srv_calibrate),
            ("calibrate_stereo", CalibrateStereo, self._srv_stereo),
            ("verify_depth", VerifyDepth, self._srv_verify),
            ("calibrate_mono_scale", CalibrateMonoScale, self._srv_mono),
        ):
            self.create_service(srv, name, cb, callback_group=services)
        self.driver_client = self.create_client(
            SetCameraInfo, d("driver_service", "set_camera_info", "the driver's SetCameraInfo service")
        )
        self.create_timer(1.0, self._publish_status)

    # --- streams ---------------------------------------------------------------------------------
    @property
    def intrinsics(self) -> Intrinsics | None:
        return self.calibrated or self.factory

    def _on_info(self, msg: CameraInfo) -> None:
        try:
            self.factory = Intrinsics.from_camera_info(msg)
        except ValueError:
            pass

    def _on_right_info(self, msg: CameraInfo) -> None:
        try:
            self.right_intrinsics = Intrinsics.from_camera_info(msg)
        except ValueError:
            pass

    def _on_image(self, msg: Image) -> None:
        now = self.get_clock().now().nanoseconds / 1e9
        if now - self._last_detect < self.detect_period:
            return
        self._last_detect = now
        try:
            gray = _gray(msg)
        except ImageConversionError as exc:
            self.status_text = str(exc)
            return
        det = self.detector.detect(gray)
        stamp = stamp_to_ns(msg.header.stamp)
        size = (gray.shape[1], gray.shape[0])
        with self._lock:
            self._latest = (gray, det)
            self._left_recent.put(stamp, (gray, det))
            if self.image_size is not None and size != self.image_size:
                self.status_text = (
                    f"image size {size[0]}x{size[1]} differs from the {self.image_size[0]}x{self.image_size[1]} "
                    "views kept so far: call reset to start over at the new size"
                )
                return
            kept, why = self.selector.consider(gray, det, size)
            if kept:
                self.views.append((gray, det))
                self.image_size = size
            self.status_text = f"{len(self.views)}/{self.min_views} views ({why})"
            self._match_stereo(stamp)
            if det is not None and self.intrinsics is not None and self.intrinsics.width == size[0]:
                try:
                    self._pose_recent.put(stamp, estimate_board_pose(det, self.spec, self.intrinsics))
                except CalibrationError:
                    return
                self._match_depth(stamp)
                self._match_relative(stamp)

    def _on_right(self, msg: Image) -> None:
        try:
            gray = _gray(msg)
        except ImageConversionError:
            return
        stamp = stamp_to_ns(msg.header.stamp)
        with self._lock:
            self._right_recent.put(stamp, (gray, self.detector.detect(gray)))
            self._match_stereo(stamp)

    def _match_stereo(self, stamp: int) -> None:
        for s_left, (gray, det_l) in list(self._left_recent.items()):
            for s_right, (_, det_r) in list(self._right_recent.items()):
                if abs(s_left - s_right) <= self.stereo_tolerance_ns and det_l is not None and det_r is not None:
                    kept, _ = self.pair_selector.consider(gray, det_l, (gray.shape[1], gray.shape[0]))
                    if kept:
                        self.pairs.append((det_l, det_r))
                    del self._right_recent[s_right]
                    break

    def _on_depth(self, msg: Image) -> None:
        self._keep_for_pose(msg, "16UC1", self._depth_recent, self._match_depth)

    def _on_relative(self, msg: Image) -> None:
        self._keep_for_pose(msg, "32FC1", self._rel_recent, self._match_relative)

    def _keep_for_pose(self, msg: Image, encoding: str, recent: _Recent, match: Callable[[int], None]) -> None:
        """Buffer a frame by stamp until the board pose of the same stamp is known, then match it."""
        if msg.encoding != encoding:  # say so on the status topic, as for every other input problem
            self.status_text = f"ignored a {msg.encoding!r} frame where {encoding} was expected"
            return
        stamp = stamp_to_ns(msg.header.stamp)
        with self._lock:
            recent.put(stamp, image_to_array(msg))
            match(stamp)

    def _match_depth(self, stamp: int) -> None:
        if stamp in self._pose_recent and stamp in self._depth_recent:
            depth = self._depth_recent.pop(stamp)
            try:
                check = verify_depth(depth, self.intrinsics, self._pose_recent[stamp], self.spec)
            except CalibrationError as exc:
                self.status_text = str(exc)
                return
            if check.success:
                self.depth_checks = (self.depth_checks + [check])[-100:]

    def _match_relative(self, stamp: int) -> None:
        if stamp in self._pose_recent and stamp in self._rel_recent:
            rel = self._rel_recent.pop(stamp)
            intr = self.intrinsics
            if rel.shape != (intr.height, intr.width):
                self.status_text = (
                    f"relative depth is {rel.shape[1]}x{rel.shape[0]}, the camera {intr.width}x{intr.height}"
                )
                return
            pose = self._pose_recent[stamp]
            mask = board_mask(self.spec, intr, pose)
            z = expected_plane_depth(intr, pose, mask)
            d = rel[mask]
            pick = np.linspace(0, len(z) - 1, min(len(z), 400)).astype(int)
            self.mono_samples = (self.mono_samples + [(d[pick], z[pick])])[-1000:]

    def _publish_status(self) -> None:
        cov = self.selector.coverage()
        text = (
            f"{self.status_text}; coverage x {cov['x']:.2f} y {cov['y']:.2f} size {cov['size']:.2f} skew {cov['skew']:.2f}; "
            f"stereo pairs {len(self.pairs)}; depth checks {len(self.depth_checks)}; mono frames {len(self.mono_samples)}"
        )
        self.pub_status.publish(String(data=text))

    # --- services ------------------------------------------------------------------------------------
    def _srv_capture(self, req, res):
        with self._lock:
            if self._latest is None:
                res.success, res.message = False, "no image received yet"
                return res
            gray, det = self._latest
            size = (gray.shape[1], gray.shape[0])
            if self.image_size is not None and size != self.image_size:
                res.success, res.message = False, f"image size {size} differs from the kept views {self.image_size}"
                return res
            kept, why = self.selector.consider(gray, det, size, force=True)
            if kept:
                self.views.append((gray, det))
                self.image_size = size
            res.success, res.message = kept, f"{why}; {len(self.views)} views"
        return res

    def _srv_reset(self, req, res):
        with self._lock:
            self.views.clear()
            self.pairs.clear()
            self.selector.reset()
            self.pair_selector.reset()
            self.depth_checks.clear()
            self.mono_samples.clear()
            self.image_size = None
        res.success, res.message = True, "views, pairs and samples cleared"
        return res

    def _save(self, section: str, payload: dict) -> Path:
        cal_dir = self.dataset_dir / "calibration"
        path = cal_dir / "calibration.json"
        existing = json.loads(path.read_text()) if path.exists() else None
        doc = calibration_document(existing, section, payload, camera=self.camera_name)
        atomic_io.write_json(
            cal_dir / "history" / f"{doc['updated_utc'].replace(':', '')}_{section}.json", doc[section]
        )
        return atomic_io.write_json(path, doc)

    def _srv_calibrate(self, req: Calibrate.Request, res: Calibrate.Response) -> Calibrate.Response:
        with self._lock:
            views = list(self.views)
            size = self.image_size
        spec, min_views = self.spec, int(req.min_views) or self.min_views
        if req.board_type:
            try:
                spec = BoardSpec(
                    req.board_type,
                    int(req.squares_x),
                    int(req.squares_y),
                    float(req.square_length_m),
                    float(req.marker_length_m),
                    req.dictionary or self.spec.dictionary,
                )
            except BoardError as exc:
                res.success, res.message = False, f"board override rejected: {exc}"
                return res
            detector = BoardDetector(spec)
            views = [(g, detector.detect(g)) for g, _ in views]  # re-detect the kept images with the new board
        if size is None:
            res.success, res.message = False, f"no views captured yet (need {min_views}); show the board to the camera"
            return res
        result = calibrate_intrinsics(
            [d for _, d in views],
            spec,
            size,
            min_views=min_views,
            max_rms_px=self.max_rms_px,
            reject_outliers=self.reject_outliers,
        )
        res.success, res.message = result.success, result.message
        res.rms_px = result.rms_px
        res.per_view_error_px = result.per_view_error_px
        res.views_used = result.views_used
        res.image_width, res.image_height = size
        if result.intrinsics is not None:
            intr = result.intrinsics
            res.k = intr.k.ravel().tolist()
            res.d = list(intr.d)
            res.camera_info = camera_info_msg(intr, make_header(self.get_clock().now().nanoseconds, ""))
        if not result.success:
            return res  # nothing saved
        self.calibrated = result.intrinsics
        payload = {
            "board": spec.to_dict(),
            "image_size": list(size),
            "coverage": self.selector.coverage(),
            **result.to_dict(),
        }
        path = self._save("intrinsics", payload)
        atomic_io.write_text(
            path.parent / f"{self.camera_name}.yaml", to_camera_info_yaml(result.intrinsics, self.camera_name)
        )
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
        left, right = self.intrinsics, self.right_intrinsics
        if left is None or right is None:
            res.success, res.message = False, "both cameras need intrinsics (calibrate, or publish right/camera_info)"
            return res
        with self._lock:
            pairs = list(self.pairs)
        result = calibrate_stereo(
            pairs, self.spec, left, right, min_pairs=int(req.min_pairs) or self.min_pairs, max_rms_px=self.max_rms_px
        )
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
            res.saved_path = str(self._save("stereo", {"board": self.spec.to_dict(), **result.to_dict()}))
        return res

    def _srv_verify(self, req: VerifyDepth.Request, res: VerifyDepth.Response) -> VerifyDepth.Response:
        n = int(req.frames) or self.verify_frames
        with self._lock:
            checks = list(self.depth_checks[-n:])
        if self.intrinsics is None:
            res.success, res.message = False, "no intrinsics yet: calibrate, or publish color/camera_info"
            return res
        if not checks:
            res.success, res.message = (
                False,
                (
                    "no frame with both the board and aligned depth yet: show the board "
                    "and publish aligned_depth_to_color/image_raw"
                ),
            )
            return res
        med = lambda key: float(np.median([getattr(c, key) for c in checks]))  # noqa: E731
        res.bias_mm, res.bias_percent, res.spread_mm = med("bias_mm"), med("bias_percent"), med("spread_mm")
        res.plane_residual_mm, res.board_distance_m = med("plane_residual_mm"), med("board_distance_m")
        res.pixels, res.frames_used = int(med("pixels")), len(checks)
        res.success = True
        res.message = f"depth bias {res.bias_mm:+.1f} mm ({res.bias_percent:+.2f} %) at {res.board_distance_m:.2f} m over {len(checks)} frames"
        payload = {
            k: getattr(res, k)
            for k in (
                "bias_mm",
                "bias_percent",
                "spread_mm",
                "plane_residual_mm",
                "pixels",
                "board_distance_m",
                "frames_used",
            )
        }
        res.saved_path = str(self._save("depth_check", payload))
        return res

    def _srv_mono(
        self, req: CalibrateMonoScale.Request, res: CalibrateMonoScale.Response
    ) -> CalibrateMonoScale.Response:
        need = int(req.min_frames) or self.min_mono_frames
        with self._lock:
            samples = list(self.mono_samples)
        if len(samples) < need:
            res.success, res.message = (
                False,
                (
                    f"have {len(samples)} of {need} frames with the board and relative depth; "
                    "keep the board in view at several distances"
                ),
            )
            return res
        d = np.concatenate([s[0] for s in samples])
        z = np.concatenate([s[1] for s in samples])
        try:
            fit = fit_scale_shift(d, z, max_samples=len(d))
        except ScaleFitError as exc:
            res.success, res.message = False, str(exc)
            return res
        # per-frame scale with the pooled shift: how stable the scale is across frames
        per_frame = [float(np.median((1.0 / zz - fit.shift) / dd)) for dd, zz in samples if np.all(dd != 0)]
        spread = mad_sigma(per_frame, fit.scale) / abs(fit.scale) if per_frame else float("nan")
        res.success, res.scale, res.shift, res.scale_spread, res.frames_used = (
            True,
            fit.scale,
            fit.shift,
            spread,
            len(samples),
        )
        res.message = f"1/Z = {fit.scale:.5g} * d_rel + {fit.shift:.5g} over {len(samples)} frames (scale spread {spread * 100:.2f} %)"
        payload = {
            **fit.to_dict(),
            "scale_spread": spread,
            "frames": len(samples),
            "reference": "board plane (solvePnP)",
        }
        res.saved_path = str(self._save("mono_scale", payload))
        return res


def main(args: list[str] | None = None) -> int:
    return run_node(CalibrationNode, args, name=NODE_NAME, threads=4)


if __name__ == "__main__":
    sys.exit(main())
