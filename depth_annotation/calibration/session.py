"""The calibration session: everything a calibration node remembers between service calls, without ROS.

image_pipeline's camera_calibration keeps its calibrator (the views, the maths) apart from
the node (messages in, results out); so do we. A `CalibrationSession` holds

* the views kept for intrinsics (chosen by a `ViewSelector`, or on request),
* the stereo pairs, matched by stamp between the left and right streams,
* a short `StampBuffer` per stream, so frames of different streams that belong together
  (left/right images, a board pose and the aligned depth or relative disparity of the
  same instant) are matched by `common.nearest_index` however they interleave,
* the board depth checks and the monocular-scale samples,

and answers the services from them. Inputs are numpy arrays, stamps in nanoseconds and
`Intrinsics`; outputs are the result dataclasses of `solver` and `scale_fit`.
`calibration_node` converts messages and forwards them here; the offline
`depth-annotation calibrate` feeds files through the same session.

Thread-safe: one lock guards the state; board detection runs outside it.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from depth_annotation.common import Extrinsics, ImageConversionError, Intrinsics, StampBuffer, mad_sigma

from .board import BoardDetection, BoardDetector, BoardSpec
from .errors import CalibrationError, ScaleFitError
from .scale_fit import ScaleShift, fit_scale_shift, fit_scale_shift_to_distances
from .solver import (
    CalibrationGates,
    DepthCheck,
    IntrinsicsResult,
    StereoResult,
    ViewSelector,
    board_mask,
    calibrate_intrinsics,
    calibrate_stereo,
    estimate_board_pose,
    expected_plane_depth,
    verify_depth,
)

NAN = float("nan")
MONO_REFERENCES = ("board_plane", "board_size", "points")


def gray_image(image: np.ndarray, encoding: str) -> np.ndarray:
    """The grayscale image the board detector wants, from an rgb8, bgr8 or mono8 image."""
    if encoding == "rgb8":
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    if encoding == "bgr8":
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    if encoding in ("mono8", "8UC1"):
        return image
    raise ImageConversionError(f"calibration needs rgb8, bgr8 or mono8 images, got {encoding!r}")


def image_digest(gray: np.ndarray) -> bytes:
    """What identifies an image's content: a view is one frame, however often it is sent."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.asarray(gray.shape, np.int64).tobytes())
    h.update(np.ascontiguousarray(gray).tobytes())
    return h.digest()


def pixel_rays(intr: Intrinsics, px: np.ndarray) -> np.ndarray:
    """(N, 3) rays (z = 1) through pixels, undistorted with the camera's model."""
    pts = np.asarray(px, np.float64).reshape(-1, 1, 2)
    if len(pts) == 0:
        return np.zeros((0, 3))
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 1e-9)
    norm = cv2.undistortPoints(pts, intr.k, intr.dist_coeffs, R=None, P=None, criteria=criteria).reshape(-1, 2)
    return np.column_stack([norm, np.ones(len(norm))])


def sample_bilinear(image: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Values of a float image at sub-pixel positions (NaN outside it or where a neighbour is NaN)."""
    pts = np.asarray(px, np.float32).reshape(-1, 1, 2)
    if len(pts) == 0:
        return np.zeros(0)
    out = cv2.remap(
        np.asarray(image, np.float32),
        pts[..., 0],
        pts[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=float("nan"),
    )
    return np.asarray(out, np.float64).ravel()


@dataclass(frozen=True)
class SessionConfig:
    """What a session needs to know before the first image (the node's parameters)."""

    spec: BoardSpec = field(default_factory=BoardSpec)
    min_views: int = 20
    max_rms_px: float = 0.5
    reject_outliers: bool = True
    min_sharpness: float = 20.0
    min_view_distance: float = 0.1
    detect_period_ns: int = 0  # at most one board detection per period of image stamps (0: every image)
    min_pairs: int = 10
    stereo_tolerance_ns: int = 5_000_000
    min_mono_frames: int = 50
    verify_frames: int = 10
    buffer_size: int = 12  # frames kept per stream for stamp matching
    max_depth_checks: int = 100
    max_mono_frames: int = 1000
    mono_samples_per_frame: int = 400
    gates: CalibrationGates = field(default_factory=CalibrationGates)


@dataclass(frozen=True)
class KeptView:
    """One image kept for intrinsics: its stamp, the image and the corners found in it."""

    stamp_ns: int
    gray: np.ndarray
    detection: BoardDetection
    digest: bytes = b""


@dataclass(frozen=True)
class KeptPair:
    """One stereo pair: the left and right detections of the same instant."""

    left_stamp_ns: int
    right_stamp_ns: int
    left: BoardDetection
    right: BoardDetection


@dataclass(frozen=True)
class CaptureResult:
    """Answer to `capture_view`: whether a view was added, and why (not)."""

    success: bool
    message: str
    views: int


@dataclass(frozen=True)
class DepthCheckSummary:
    """The median of the recent per-frame depth checks (what `verify_depth` answers)."""

    success: bool
    message: str
    bias_mm: float = NAN
    bias_percent: float = NAN
    spread_mm: float = NAN
    plane_residual_mm: float = NAN
    pixels: int = 0
    board_distance_m: float = NAN
    frames_used: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The `depth_check` section of the calibration JSON."""
        keys = ("bias_mm", "bias_percent", "spread_mm", "plane_residual_mm", "pixels", "board_distance_m")
        return {**{k: getattr(self, k) for k in keys}, "frames_used": self.frames_used}


@dataclass(frozen=True)
class MonoSample:
    """Relative disparity on one frame's board: on the board plane, and at the detected corners."""

    stamp_ns: int
    disparity: np.ndarray  # (N,) relative disparity on board pixels
    depth_m: np.ndarray  # (N,) the board plane's depth Z at the same pixels (from the board pose)
    corner_rays: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (M, 3) rays of the corners
    corner_disparity: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (M,) at the corners
    corner_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (M, 3) on the board (m)

    def corner_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every pair of corners with its known metric distance: (rays a, rays b, d a, d b, distance)."""
        ok = np.flatnonzero(np.isfinite(self.corner_disparity))
        i, j = np.triu_indices(len(ok), k=1)
        i, j = ok[i], ok[j]
        dist = np.linalg.norm(self.corner_points[i] - self.corner_points[j], axis=1)
        return self.corner_rays[i], self.corner_rays[j], self.corner_disparity[i], self.corner_disparity[j], dist


@dataclass(frozen=True)
class MonoScaleResult:
    """Answer to `calibrate_mono_scale`: 1/Z = scale * d_rel + shift, and how stable the scale is."""

    success: bool
    message: str
    fit: ScaleShift | None = None
    scale_spread: float = NAN  # robust std of the per-frame scales, relative to the scale
    frames_used: int = 0
    reference: str = "board_plane"
    pairs_used: int = 0  # known-size references (corner pairs, point pairs)

    @property
    def scale(self) -> float:
        return self.fit.scale if self.fit else NAN

    @property
    def shift(self) -> float:
        return self.fit.shift if self.fit else NAN

    def to_dict(self) -> dict[str, Any]:
        """The `mono_scale` section of the calibration JSON."""
        fit = self.fit.to_dict() if self.fit else {}
        return {
            **fit,
            "scale_spread": self.scale_spread,
            "frames": self.frames_used,
            "reference": self.reference,
            "reference_pairs": self.pairs_used,
        }


def median_check(checks: list[DepthCheck]) -> DepthCheckSummary:
    """Per-field median over depth checks: one bad frame (a hand over the board) does not move it."""

    def med(key: str) -> float:
        return float(np.median([getattr(c, key) for c in checks]))

    bias_mm, bias_percent, z = med("bias_mm"), med("bias_percent"), med("board_distance_m")
    return DepthCheckSummary(
        True,
        f"depth bias {bias_mm:+.1f} mm ({bias_percent:+.2f} %) at {z:.2f} m over {len(checks)} frames",
        bias_mm,
        bias_percent,
        med("spread_mm"),
        med("plane_residual_mm"),
        int(med("pixels")),
        z,
        len(checks),
    )


class CalibrationSession:
    """Views, pairs, stamp buffers and samples of one calibration session, and the services over them.

    One frame, one view: a view (and a stereo pair) is identified by its image stamp and by
    its content, so a frame sent twice, a frame kept by the selector and then captured on
    request, or a capture when no new image has arrived never counts twice.
    """

    def __init__(self, config: SessionConfig | None = None) -> None:
        self.config = config or SessionConfig()
        self.detector = BoardDetector(self.config.spec)
        self._lock = threading.Lock()
        self.selector = self._new_selector()
        self.pair_selector = self._new_selector()
        self.views: list[KeptView] = []
        self.pairs: list[KeptPair] = []
        self.image_size: tuple[int, int] | None = None
        self.calibrated: Intrinsics | None = None
        self.factory: Intrinsics | None = None
        self.right_intrinsics: Intrinsics | None = None
        self.depth_checks: list[DepthCheck] = []
        self.mono_samples: list[MonoSample] = []
        self.status_text = "waiting for images"
        n = self.config.buffer_size
        self._latest: tuple[int, np.ndarray, BoardDetection | None, bytes] | None = None
        self._last_capture_stamp: int | None = None
        self._last_detect_ns: int | None = None
        self._view_stamps: dict[int, int] = {}  # stamp -> view index
        self._view_digests: dict[bytes, int] = {}
        self._pair_keys: set[int | bytes] = set()  # left stamps and left image digests of the kept pairs
        self._left: StampBuffer[tuple[np.ndarray, BoardDetection | None, bytes]] = StampBuffer(n)
        self._right: StampBuffer[BoardDetection | None] = StampBuffer(n)
        self._poses: StampBuffer[tuple[BoardDetection, Extrinsics]] = StampBuffer(n)
        self._depth: StampBuffer[np.ndarray] = StampBuffer(n)
        self._relative: StampBuffer[np.ndarray] = StampBuffer(n)
        self._newest_relative: tuple[int, np.ndarray] | None = None

    def _new_selector(self) -> ViewSelector:
        return ViewSelector(min_sharpness=self.config.min_sharpness, min_distance=self.config.min_view_distance)

    # --- state -----------------------------------------------------------------------------------
    @property
    def spec(self) -> BoardSpec:
        return self.config.spec

    @property
    def intrinsics(self) -> Intrinsics | None:
        """The calibrated intrinsics, else the camera's own (camera_info), else None."""
        return self.calibrated or self.factory

    def set_camera_info(self, intrinsics: Intrinsics) -> None:
        """The camera's own intrinsics (used for board poses until a calibration replaces them)."""
        self.factory = intrinsics

    def set_right_camera_info(self, intrinsics: Intrinsics) -> None:
        self.right_intrinsics = intrinsics

    def note(self, text: str) -> None:
        """Report an input problem on the status line."""
        self.status_text = text

    def coverage(self) -> dict[str, float]:
        return self.selector.coverage()

    def status(self) -> str:
        """One line for the status topic: progress, coverage and the sample counts."""
        cov = self.coverage()
        return (
            f"{self.status_text}; coverage x {cov['x']:.2f} y {cov['y']:.2f} size {cov['size']:.2f} "
            f"skew {cov['skew']:.2f}; stereo pairs {len(self.pairs)}; depth checks {len(self.depth_checks)}; "
            f"mono frames {len(self.mono_samples)}"
        )

    def reset(self) -> None:
        """Forget the views, pairs and samples (the intrinsics stay)."""
        with self._lock:
            self.views.clear()
            self.pairs.clear()
            self._view_stamps.clear()
            self._view_digests.clear()
            self._pair_keys.clear()
            self.selector.reset()
            self.pair_selector.reset()
            self.depth_checks.clear()
            self.mono_samples.clear()
            self.image_size = None

    # --- streams ---------------------------------------------------------------------------------
    def wants_image(self, stamp_ns: int) -> bool:
        """Whether an image with this stamp gets a board detection (bounded rate; stamps going back restart it)."""
        last, period = self._last_detect_ns, self.config.detect_period_ns
        return period <= 0 or last is None or stamp_ns < last or stamp_ns - last >= period

    def add_image(self, stamp_ns: int, gray: np.ndarray) -> BoardDetection | None:
        """A left (main) camera image: detect the board, maybe keep the view, match other streams."""
        with self._lock:  # checked and claimed in one step: two images at once never both pass the rate limit
            if not self.wants_image(stamp_ns):
                return None
            self._last_detect_ns = stamp_ns
        det = self.detector.detect(gray)
        digest = image_digest(gray)
        size = (int(gray.shape[1]), int(gray.shape[0]))
        with self._lock:
            self._latest = (stamp_ns, gray, det, digest)
            self._left.put(stamp_ns, (gray, det, digest))
            if self.image_size is not None and size != self.image_size:
                self.status_text = (
                    f"image size {size[0]}x{size[1]} differs from the {self.image_size[0]}x{self.image_size[1]} "
                    "views kept so far: call reset to start over at the new size"
                )
                return det
            seen = self._already_a_view(stamp_ns, digest)
            if seen:
                why = seen
            else:
                kept, why = self.selector.consider(gray, det, size)
                if kept and det is not None:
                    self._keep(KeptView(stamp_ns, gray, det, digest))
            self.status_text = f"{len(self.views)}/{self.config.min_views} views (frame {stamp_ns}: {why})"
            self._pair_left(stamp_ns)
            intr = self.intrinsics
            if det is not None and intr is not None and intr.width == size[0]:
                try:
                    self._poses.put(stamp_ns, (det, estimate_board_pose(det, self.spec, intr)))
                except CalibrationError:
                    return det
                self._match_depth(stamp_ns)
                self._match_relative(stamp_ns)
        return det

    def add_right_image(self, stamp_ns: int, gray: np.ndarray) -> BoardDetection | None:
        """A right camera image: detect the board and pair it with the left image of the same instant."""
        det = self.detector.detect(gray)
        with self._lock:
            self._right.put(stamp_ns, det)
            self._pair_right(stamp_ns)
        return det

    def add_depth(self, stamp_ns: int, depth_mm: np.ndarray) -> None:
        """Aligned sensor depth (uint16 mm): checked against the board plane of the same stamp."""
        with self._lock:
            self._depth.put(stamp_ns, depth_mm)
            self._match_depth(stamp_ns)

    def add_relative(self, stamp_ns: int, disparity: np.ndarray) -> None:
        """Relative (monocular) disparity: sampled on the board of the same stamp; the newest serves `points`."""
        with self._lock:
            self._newest_relative = (stamp_ns, disparity)
            self._relative.put(stamp_ns, disparity)
            self._match_relative(stamp_ns)

    # --- views and matching (called with the lock held) ------------------------------------------
    def _already_a_view(self, stamp_ns: int, digest: bytes) -> str:
        """Why this frame is a view already ('' when it is not)."""
        if stamp_ns in self._view_stamps:
            return f"frame {stamp_ns} is view {self._view_stamps[stamp_ns]} already"
        if digest in self._view_digests:
            return f"the same image as view {self._view_digests[digest]} (sent again with stamp {stamp_ns})"
        return ""

    def _keep(self, view: KeptView) -> None:
        self._view_stamps[view.stamp_ns] = len(self.views)
        self._view_digests[view.digest] = len(self.views)
        self.views.append(view)
        self.image_size = (int(view.gray.shape[1]), int(view.gray.shape[0]))

    def _pair_left(self, stamp_ns: int) -> None:
        hit = self._right.nearest(stamp_ns, self.config.stereo_tolerance_ns)
        if hit is not None:
            self._make_pair(stamp_ns, hit[0])

    def _pair_right(self, stamp_ns: int) -> None:
        hit = self._left.nearest(stamp_ns, self.config.stereo_tolerance_ns)
        if hit is not None:
            self._make_pair(hit[0], stamp_ns)

    def _make_pair(self, left_stamp: int, right_stamp: int) -> None:
        """Both frames leave their buffers (each pairs once); the pair is kept if both see the board."""
        gray, det_l, digest = self._left.pop(left_stamp)
        det_r = self._right.pop(right_stamp)
        if det_l is None or det_r is None or left_stamp in self._pair_keys or digest in self._pair_keys:
            return
        kept, _ = self.pair_selector.consider(gray, det_l, (int(gray.shape[1]), int(gray.shape[0])))
        if kept:
            self._pair_keys.update((left_stamp, digest))
            self.pairs.append(KeptPair(left_stamp, right_stamp, det_l, det_r))

    def _match_depth(self, stamp_ns: int) -> None:
        pose_hit = self._poses.nearest(stamp_ns)
        depth_hit = self._depth.nearest(stamp_ns)
        intr = self.intrinsics
        if pose_hit is None or depth_hit is None or intr is None:
            return
        depth = self._depth.pop(depth_hit[0])
        try:
            check = verify_depth(depth, intr, pose_hit[1][1], self.spec)
        except CalibrationError as exc:
            self.status_text = str(exc)
            return
        if check.success:
            self.depth_checks = (self.depth_checks + [check])[-self.config.max_depth_checks :]

    def _match_relative(self, stamp_ns: int) -> None:
        pose_hit = self._poses.nearest(stamp_ns)
        rel_hit = self._relative.nearest(stamp_ns)
        intr = self.intrinsics
        if pose_hit is None or rel_hit is None or intr is None:
            return
        rel = self._relative.pop(rel_hit[0])
        if rel.shape != (intr.height, intr.width):
            self.status_text = f"relative depth is {rel.shape[1]}x{rel.shape[0]}, the camera {intr.width}x{intr.height}"
            return
        det, pose = pose_hit[1]
        mask = board_mask(self.spec, intr, pose)
        z = expected_plane_depth(intr, pose, mask)
        d = rel[mask]
        pick = np.linspace(0, len(z) - 1, min(len(z), self.config.mono_samples_per_frame)).astype(int)
        sample = MonoSample(
            rel_hit[0],
            d[pick],
            z[pick],
            corner_rays=pixel_rays(intr, det.corners_px),
            corner_disparity=sample_bilinear(rel, det.corners_px),
            corner_points=det.object_points(self.spec),
        )
        self.mono_samples = (self.mono_samples + [sample])[-self.config.max_mono_frames :]

    # --- services --------------------------------------------------------------------------------
    def capture_view(self) -> CaptureResult:
        """Keep the newest detected image as a view even if it resembles a kept one.

        Refused when that image is a view already (kept by the selector, captured before, or the
        same content under another stamp) or when no new image arrived since the last capture.
        """
        with self._lock:
            n = len(self.views)
            if self._latest is None:
                return CaptureResult(False, "no image received yet", n)
            stamp, gray, det, digest = self._latest
            if stamp == self._last_capture_stamp:
                return CaptureResult(False, f"no new image since the last capture_view (frame {stamp}); {n} views", n)
            self._last_capture_stamp = stamp
            seen = self._already_a_view(stamp, digest)
            if seen:
                return CaptureResult(False, f"{seen}; {n} views", n)
            size = (int(gray.shape[1]), int(gray.shape[0]))
            if self.image_size is not None and size != self.image_size:
                return CaptureResult(False, f"image size {size} differs from the kept views {self.image_size}", n)
            kept, why = self.selector.consider(gray, det, size, force=True)
            if kept and det is not None:
                self._keep(KeptView(stamp, gray, det, digest))
            return CaptureResult(kept, f"{why}; {len(self.views)} views", len(self.views))

    def calibrate(self, *, board: BoardSpec | None = None, min_views: int = 0, force: bool = False) -> IntrinsicsResult:
        """Intrinsics from the kept views (re-detected first when `board` differs from the session's).

        Gated on RMS, coverage and uncertainty (`SessionConfig.gates`) unless `force`. On success
        the result becomes the session's intrinsics (board poses use it from then on).
        """
        with self._lock:
            views = list(self.views)
            size = self.image_size
        spec = board or self.spec
        need = min_views or self.config.min_views
        if size is None:
            return IntrinsicsResult(
                False, f"no views captured yet (need {need}); show the board to the camera", NAN, [], None, 0
            )
        if spec == self.spec:
            dets: list[BoardDetection | None] = [v.detection for v in views]
        else:
            detector = BoardDetector(spec)
            dets = [detector.detect(v.gray) for v in views]  # re-detect the kept images with the new board
        result = calibrate_intrinsics(
            dets,
            spec,
            size,
            min_views=need,
            max_rms_px=self.config.max_rms_px,
            reject_outliers=self.config.reject_outliers,
            gates=self.config.gates,
            force=force,
        )
        result.view_stamps_ns = [views[i].stamp_ns for i in result.used_views]
        if result.success:
            self.calibrated = result.intrinsics
        return result

    def calibrate_stereo(self, *, min_pairs: int = 0) -> StereoResult:
        """Extrinsics from the left to the right camera over the kept pairs (both intrinsics needed)."""
        left, right = self.intrinsics, self.right_intrinsics
        if left is None or right is None:
            return StereoResult(
                False, "both cameras need intrinsics (calibrate, or publish right/camera_info)", NAN, None, [], 0
            )
        with self._lock:
            pairs = [(p.left, p.right) for p in self.pairs]
        return calibrate_stereo(
            pairs,
            self.spec,
            left,
            right,
            min_pairs=min_pairs or self.config.min_pairs,
            max_rms_px=self.config.max_rms_px,
        )

    def verify_depth(self, *, frames: int = 0) -> DepthCheckSummary:
        """Sensor depth against the board plane, the median over the last `frames` matched frames."""
        n = frames or self.config.verify_frames
        with self._lock:
            checks = list(self.depth_checks[-n:])
        if self.intrinsics is None:
            return DepthCheckSummary(False, "no intrinsics yet: calibrate, or publish color/camera_info")
        if not checks:
            return DepthCheckSummary(
                False,
                "no frame with both the board and aligned depth yet: show the board "
                "and publish aligned_depth_to_color/image_raw",
            )
        return median_check(checks)

    def calibrate_mono_scale(
        self,
        *,
        min_frames: int = 0,
        reference: str = "board_plane",
        points_px: np.ndarray | None = None,
        distances_m: np.ndarray | None = None,
    ) -> MonoScaleResult:
        """1/Z = scale * d_rel + shift for monocular disparity, from one of three references.

        * `board_plane`: the board's plane from its pose (solvePnP) on every matched frame;
        * `board_size`: the board as an object of known size at an unknown pose: the metric
          distances between its corners (no board pose, only the rays through the corners);
        * `points`: pairs of pixels (u1, v1, u2, v2 per row of `points_px`) in the newest
          relative-disparity frame and their metric distance apart (`distances_m`): a ruler,
          a table edge, any object of known size. Given with `board_size`, they are added to it.
        """
        reference = reference or "board_plane"
        if reference not in MONO_REFERENCES:
            return MonoScaleResult(False, f"unknown reference {reference!r}: one of {', '.join(MONO_REFERENCES)}")
        pts = np.zeros((0, 4)) if points_px is None else np.asarray(points_px, np.float64).reshape(-1, 4)
        lengths = np.zeros(0) if distances_m is None else np.asarray(distances_m, np.float64).ravel()
        if len(pts) != len(lengths):
            return MonoScaleResult(
                False, f"{len(pts)} point pairs but {len(lengths)} distances: give u1 v1 u2 v2 and one distance each"
            )
        if reference == "board_plane" and len(pts):
            return MonoScaleResult(False, "point pairs need reference 'points' or 'board_size'")
        if reference == "points" and not len(pts):
            return MonoScaleResult(False, "reference 'points' needs at least one pair of points and its distance")
        with self._lock:
            samples = list(self.mono_samples)
            newest = self._newest_relative
        if reference == "board_plane":
            return self._mono_from_plane(samples, min_frames or self.config.min_mono_frames)
        intr = self.intrinsics
        if intr is None:
            return MonoScaleResult(
                False, "no intrinsics yet: calibrate, or publish color/camera_info", reference=reference
            )
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        if reference == "board_size":
            need = min_frames or self.config.min_mono_frames
            if len(samples) < need:
                return MonoScaleResult(
                    False,
                    f"have {len(samples)} of {need} frames with the board and relative depth; "
                    "keep the board in view at several distances",
                    reference=reference,
                )
            parts += [s.corner_pairs() for s in samples]
        if len(pts):
            if newest is None:
                return MonoScaleResult(False, "no relative-disparity frame received yet", reference=reference)
            rel = newest[1]
            if rel.shape != (intr.height, intr.width):
                return MonoScaleResult(
                    False,
                    f"relative depth is {rel.shape[1]}x{rel.shape[0]}, the camera {intr.width}x{intr.height}",
                    reference=reference,
                )
            a, b = pts[:, :2], pts[:, 2:]
            parts.append(
                (pixel_rays(intr, a), pixel_rays(intr, b), sample_bilinear(rel, a), sample_bilinear(rel, b), lengths)
            )
        ra, rb, da, db, dist = (np.concatenate(x) for x in zip(*parts, strict=True))
        try:
            fit = fit_scale_shift_to_distances(ra, rb, da, db, dist)
        except ScaleFitError as exc:
            return MonoScaleResult(False, str(exc), reference=reference)
        spread = NAN
        if reference == "board_size":  # per-frame scale with the pooled shift held
            per_frame = []
            for s in samples:
                pairs = s.corner_pairs()
                if len(pairs[4]):
                    try:
                        per_frame.append(fit_scale_shift_to_distances(*pairs, shift=fit.shift).scale)
                    except ScaleFitError:
                        continue
            spread = mad_sigma(per_frame, fit.scale) / abs(fit.scale) if per_frame else NAN
        held = "" if fit.shift_fitted else " (shift held at 0: every reference at one depth; add others to fit it)"
        frames = len(samples) if reference == "board_size" else 1
        what = "board corner spacing" if reference == "board_size" else "known distances"
        return MonoScaleResult(
            True,
            f"1/Z = {fit.scale:.5g} * d_rel + {fit.shift:.5g} from {fit.n_pixels} {what} pairs over {frames} "
            f"frame(s){held}" + (f" (scale spread {spread * 100:.2f} %)" if np.isfinite(spread) else ""),
            fit,
            spread,
            frames,
            reference,
            fit.n_pixels,
        )

    def _mono_from_plane(self, samples: list[MonoSample], need: int) -> MonoScaleResult:
        if len(samples) < need:
            return MonoScaleResult(
                False,
                f"have {len(samples)} of {need} frames with the board and relative depth; "
                "keep the board in view at several distances",
            )
        d = np.concatenate([s.disparity for s in samples])
        z = np.concatenate([s.depth_m for s in samples])
        try:
            fit = fit_scale_shift(d, z, max_samples=len(d))
        except ScaleFitError as exc:
            return MonoScaleResult(False, str(exc))
        # per-frame scale with the pooled shift: how stable the scale is across frames
        per_frame = [
            float(np.median((1.0 / s.depth_m - fit.shift) / s.disparity)) for s in samples if np.all(s.disparity != 0)
        ]
        spread = mad_sigma(per_frame, fit.scale) / abs(fit.scale) if per_frame else NAN
        return MonoScaleResult(
            True,
            f"1/Z = {fit.scale:.5g} * d_rel + {fit.shift:.5g} over {len(samples)} frames "
            f"(scale spread {spread * 100:.2f} %)",
            fit,
            spread,
            len(samples),
        )
