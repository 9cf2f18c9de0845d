"""Camera calibration math: view selection, intrinsics, stereo extrinsics, depth check.

Everything image_pipeline's camera_calibration computes, with every number it
computes reported: the RMS and per-view reprojection errors, which views are
worst, how well the views cover the image. OpenCV 5 (`calibrateCamera`,
`stereoCalibrate`, `solvePnP`) does the solving.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from depth_annotation.common import Extrinsics, Intrinsics, mad_sigma

from .board import BoardDetection, BoardSpec
from .errors import CalibrationError

SCHEMA_VERSION = 1


# --- view selection ------------------------------------------------------------------------


@dataclass(frozen=True)
class ViewParams:
    """Where and how the board sits in the image, each in [0, 1]: like camera_calibration's X, Y, size, skew."""

    x: float
    y: float
    size: float
    skew: float

    def vector(self) -> np.ndarray:
        return np.array([self.x, self.y, self.size, self.skew])


def view_params(det: BoardDetection, image_size: tuple[int, int]) -> ViewParams:
    """Board centre (x, y), its area relative to the image (sqrt), and its skew from a rectangle."""
    w, h = image_size
    pts = det.corners_px.astype(np.float64)
    hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2)
    area = cv2.contourArea(hull.astype(np.float32))
    rect = cv2.minAreaRect(pts.astype(np.float32))
    (rw, rh) = rect[1]
    rect_area = max(rw * rh, 1e-9)
    skew = float(np.clip(1.0 - area / rect_area, 0.0, 1.0) * 2.0)  # a perspective view fills less of its box
    cx, cy = pts.mean(axis=0)
    return ViewParams(float(cx / w), float(cy / h), float(np.sqrt(area / (w * h))), min(skew, 1.0))


def sharpness(gray: np.ndarray, det: BoardDetection) -> float:
    """Variance of the Laplacian inside the board's bounding box (blurred views score low)."""
    x, y, w, h = cv2.boundingRect(det.corners_px.astype(np.float32))
    roi = gray[max(y, 0) : y + h, max(x, 0) : x + w]
    if roi.size == 0:
        return 0.0
    return float(cv2.Laplacian(roi, cv2.CV_64F).var())


@dataclass
class ViewSelector:
    """Keeps a detected view only if it is sharp and unlike the views already kept."""

    min_corners: int = 8
    min_sharpness: float = 20.0
    min_distance: float = 0.1  # in (x, y, size, skew) space
    params: list[ViewParams] = field(default_factory=list)

    def consider(
        self, gray: np.ndarray, det: BoardDetection | None, image_size: tuple[int, int], *, force: bool = False
    ) -> tuple[bool, str]:
        """(kept, why). `force` keeps any usable view (the capture_view service)."""
        if det is None:
            return False, "no board detected"
        if det.count < self.min_corners:
            return False, f"only {det.count} corners (need {self.min_corners})"
        s = sharpness(gray, det)
        if s < self.min_sharpness:
            return False, f"too blurred (sharpness {s:.0f} < {self.min_sharpness:.0f})"
        p = view_params(det, image_size)
        if not force and self.params:
            dist = min(np.linalg.norm(p.vector() - q.vector()) for q in self.params)
            if dist < self.min_distance:
                return False, f"too similar to a kept view (distance {dist:.2f} < {self.min_distance})"
        self.params.append(p)
        return True, "kept"

    def coverage(self) -> dict[str, float]:
        """Span of each parameter over the kept views (1 = the whole useful range seen)."""
        if not self.params:
            return {"x": 0.0, "y": 0.0, "size": 0.0, "skew": 0.0}
        arr = np.array([p.vector() for p in self.params])
        span = arr.max(axis=0) - arr.min(axis=0)
        # a full x/y sweep moves the centre ~0.7 of the image; size 0.3..0.8; skew 0..0.5
        useful = np.array([0.7, 0.7, 0.5, 0.5])
        return {k: float(min(v, 1.0)) for k, v in zip(("x", "y", "size", "skew"), span / useful, strict=True)}

    def reset(self) -> None:
        self.params.clear()


# --- intrinsics -----------------------------------------------------------------------------


@dataclass
class IntrinsicsResult:
    success: bool
    message: str
    rms_px: float
    per_view_error_px: list[float]
    intrinsics: Intrinsics | None
    views_used: int
    rejected_views: list[int] = field(default_factory=list)  # indices into the input views
    worst_views: list[int] = field(default_factory=list)
    image_size: tuple[int, int] | None = None
    board: BoardSpec | None = None
    coverage: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The `intrinsics` section of the calibration JSON."""
        return {
            "board": self.board.to_dict() if self.board else None,
            "image_size": list(self.image_size) if self.image_size else None,
            "coverage": self.coverage,
            "success": self.success,
            "message": self.message,
            "rms_px": self.rms_px,
            "per_view_error_px": self.per_view_error_px,
            "views_used": self.views_used,
            "rejected_views": self.rejected_views,
            "worst_views": self.worst_views,
            "intrinsics": self.intrinsics.to_dict() if self.intrinsics else None,
        }


def _per_view_errors(
    obj: Sequence[np.ndarray],
    img: Sequence[np.ndarray],
    rvecs: Sequence[np.ndarray],
    tvecs: Sequence[np.ndarray],
    k: np.ndarray,
    d: np.ndarray,
) -> np.ndarray:
    errs = []
    for o, i, r, t in zip(obj, img, rvecs, tvecs, strict=True):
        proj, _ = cv2.projectPoints(o, r, t, k, d)
        errs.append(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - i.reshape(-1, 2)) ** 2, axis=1))))
    return np.asarray(errs)


def calibrate_intrinsics(
    views: Sequence[BoardDetection | None],
    spec: BoardSpec,
    image_size: tuple[int, int],
    *,
    min_views: int = 20,
    max_rms_px: float = 0.5,
    reject_outliers: bool = True,
    distortion_model: str = "plumb_bob",
) -> IntrinsicsResult:
    """Intrinsics from board views (`calibrateCamera`), gated on RMS reprojection error.

    With `reject_outliers`, views whose error is far above the others
    (> max(2 x median, median + 3 MAD) and above the gate) are dropped once and
    the solve repeated, so one bad view does not spoil a good calibration.
    """
    usable = [i for i, v in enumerate(views) if v is not None and v.count >= 6]
    if len(usable) < min_views:
        return IntrinsicsResult(
            False,
            f"need at least {min_views} views with a board, have {len(usable)}",
            float("nan"),
            [],
            None,
            len(usable),
        )
    flags = cv2.CALIB_RATIONAL_MODEL if distortion_model == "rational_polynomial" else 0

    found = {i: v for i, v in enumerate(views) if v is not None}

    def solve(idx: list[int]) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        obj = [found[i].object_points(spec).astype(np.float32) for i in idx]
        img = [found[i].corners_px.reshape(-1, 1, 2).astype(np.float32) for i in idx]
        rms, k, d, rvecs, tvecs = cv2.calibrateCamera(obj, img, image_size, None, None, flags=flags)
        return float(rms), np.asarray(k), np.asarray(d).ravel(), _per_view_errors(obj, img, rvecs, tvecs, k, d)

    try:
        rms, k, d, errs = solve(usable)
    except cv2.error as exc:
        return IntrinsicsResult(
            False,
            f"calibrateCamera failed: {exc.msg if hasattr(exc, 'msg') else exc}",
            float("nan"),
            [],
            None,
            len(usable),
        )
    rejected: list[int] = []
    if reject_outliers and len(usable) > min_views:
        med = float(np.median(errs))
        limit = max(2.0 * med, med + 3.0 * mad_sigma(errs, med), max_rms_px)
        bad = [usable[i] for i in np.flatnonzero(errs > limit)]
        keep = [i for i in usable if i not in bad]
        if bad and len(keep) >= min_views:
            rejected = bad
            rms, k, d, errs = solve(keep)
            usable = keep
    n_d = 8 if distortion_model == "rational_polynomial" else 5
    intr = Intrinsics(
        image_size[0],
        image_size[1],
        float(k[0, 0]),
        float(k[1, 1]),
        float(k[0, 2]),
        float(k[1, 2]),
        distortion_model,
        tuple(float(v) for v in d[:n_d]),
    )
    order = np.argsort(errs)[::-1]
    worst = [usable[i] for i in order[:3]]
    per_view = [float(e) for e in errs]
    if rms > max_rms_px:
        listed = ", ".join(f"view {usable[i]} ({errs[i]:.2f} px)" for i in order[:3])
        return IntrinsicsResult(
            False,
            f"RMS reprojection error {rms:.3f} px exceeds {max_rms_px} px; worst: {listed}",
            float(rms),
            per_view,
            intr,
            len(usable),
            rejected,
            worst,
        )
    msg = f"RMS {rms:.3f} px over {len(usable)} views"
    if rejected:
        msg += f" (rejected outlier views {rejected})"
    return IntrinsicsResult(True, msg, float(rms), per_view, intr, len(usable), rejected, worst)


# --- stereo ----------------------------------------------------------------------------------------


@dataclass
class StereoResult:
    success: bool
    message: str
    rms_px: float
    left_to_right: Extrinsics | None  # maps left-camera points into the right camera
    per_view_error_px: list[float]
    pairs_used: int

    @property
    def baseline_m(self) -> float:
        return float(np.linalg.norm(self.left_to_right.translation)) if self.left_to_right else float("nan")

    @property
    def rotation_deg(self) -> float:
        if not self.left_to_right:
            return float("nan")
        rvec, _ = cv2.Rodrigues(self.left_to_right.rotation)
        return float(np.degrees(np.linalg.norm(rvec)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "message": self.message,
            "rms_px": self.rms_px,
            "baseline_m": self.baseline_m,
            "rotation_deg": self.rotation_deg,
            "per_view_error_px": self.per_view_error_px,
            "pairs_used": self.pairs_used,
            "left_to_right": self.left_to_right.to_dict() if self.left_to_right else None,
        }


def calibrate_stereo(
    pairs: list[tuple[BoardDetection, BoardDetection]],
    spec: BoardSpec,
    left: Intrinsics,
    right: Intrinsics,
    *,
    min_pairs: int = 10,
    max_rms_px: float = 0.5,
) -> StereoResult:
    """Extrinsics between two calibrated cameras (`stereoCalibrate` with fixed intrinsics).

    Only corners seen in both images of a pair are used.
    """
    obj, img_l, img_r = [], [], []
    for dl, dr in pairs:
        common, il, ir = np.intersect1d(dl.ids, dr.ids, return_indices=True)
        if common.size < 6:
            continue
        obj.append(spec.corner_points()[common].astype(np.float32))
        img_l.append(dl.corners_px[il].reshape(-1, 1, 2).astype(np.float32))
        img_r.append(dr.corners_px[ir].reshape(-1, 1, 2).astype(np.float32))
    if len(obj) < min_pairs:
        return StereoResult(
            False,
            f"need at least {min_pairs} synchronized pairs with the board in both images, have {len(obj)}",
            float("nan"),
            None,
            [],
            len(obj),
        )
    size = (left.width, left.height)  # only used for initialisation: the intrinsics stay fixed
    rms, _, _, _, _, r, t, _, _, _, _, per_view = cv2.stereoCalibrateExtended(
        obj,
        img_l,
        img_r,
        left.k,
        left.dist_coeffs,
        right.k,
        right.dist_coeffs,
        size,
        np.eye(3),
        np.zeros((3, 1)),
        flags=cv2.CALIB_FIX_INTRINSIC,
    )
    ext = Extrinsics(r, t.ravel(), "left", "right")
    per = [float(np.sqrt((a * a + b * b) / 2)) for a, b in np.asarray(per_view).reshape(-1, 2)]
    ok = rms <= max_rms_px
    msg = (
        f"RMS {rms:.3f} px over {len(obj)} pairs, baseline {np.linalg.norm(t) * 1000:.2f} mm"
        if ok
        else f"stereo RMS {rms:.3f} px exceeds {max_rms_px} px"
    )
    return StereoResult(bool(ok), msg, float(rms), ext, per, len(obj))


# --- board pose and depth verification -----------------------------------------------------------------


def estimate_board_pose(det: BoardDetection, spec: BoardSpec, intr: Intrinsics) -> Extrinsics:
    """Board -> camera pose from the detected corners (`solvePnP`, iterative)."""
    ok, rvec, tvec = cv2.solvePnP(
        det.object_points(spec).astype(np.float64),
        det.corners_px.astype(np.float64),
        intr.k,
        intr.dist_coeffs,
        flags=cv2.SOLVEPNP_ITERATIVE,
    )
    if not ok:
        raise CalibrationError("solvePnP found no board pose")
    r, _ = cv2.Rodrigues(rvec)
    return Extrinsics(r, tvec.ravel(), "board", "camera_optical")


def board_mask(spec: BoardSpec, intr: Intrinsics, pose: Extrinsics, *, inset_squares: float = 0.5) -> np.ndarray:
    """Pixels on the board's squared area (inset a little from its edge, away from depth edges)."""
    w, h = spec.size_m
    m = inset_squares * spec.square_length_m
    outline = np.array([[m, m, 0], [w - m, m, 0], [w - m, h - m, 0], [m, h - m, 0]], np.float64)
    rvec, _ = cv2.Rodrigues(pose.rotation)
    px, _ = cv2.projectPoints(outline, rvec, pose.translation, intr.k, intr.dist_coeffs)
    mask = np.zeros((intr.height, intr.width), np.uint8)
    cv2.fillConvexPoly(mask, np.round(px.reshape(-1, 2) * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def expected_plane_depth(intr: Intrinsics, pose: Extrinsics, mask: np.ndarray) -> np.ndarray:
    """Depth Z (m) of the board plane at each masked pixel (rays undistorted with the camera's model)."""
    v, u = np.nonzero(mask)
    pts = np.stack([u, v], axis=1).astype(np.float64).reshape(-1, 1, 2)
    if intr.is_distorted:
        norm = cv2.undistortPoints(
            pts,
            intr.k,
            intr.dist_coeffs,
            R=None,
            P=None,
            criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 1e-9),
        ).reshape(-1, 2)
    else:
        norm = (pts.reshape(-1, 2) - [intr.cx, intr.cy]) / [intr.fx, intr.fy]
    rays = np.column_stack([norm, np.ones(len(norm))])
    n = pose.rotation[:, 2]
    return np.asarray((n @ pose.translation) / (rays @ n), dtype=np.float64)


@dataclass
class DepthCheck:
    success: bool
    message: str
    bias_mm: float  # median(sensor - expected)
    bias_percent: float
    spread_mm: float  # robust std (scaled MAD) of sensor - expected
    plane_residual_mm: float  # RMS distance of the sensor points to their own best-fit plane
    pixels: int
    board_distance_m: float

    def to_dict(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in (
                "success",
                "message",
                "bias_mm",
                "bias_percent",
                "spread_mm",
                "plane_residual_mm",
                "pixels",
                "board_distance_m",
            )
        }


def verify_depth(
    depth_mm: np.ndarray, intr: Intrinsics, pose: Extrinsics, spec: BoardSpec, *, min_pixels: int = 500
) -> DepthCheck:
    """Compare sensor depth (aligned to this camera) with the board plane seen by PnP."""
    if depth_mm.shape != (intr.height, intr.width):
        raise CalibrationError(
            f"depth is {depth_mm.shape[1]}x{depth_mm.shape[0]} but the camera is {intr.width}x{intr.height}: "
            "use depth aligned to this camera"
        )
    mask = board_mask(spec, intr, pose) & (depth_mm > 0)
    n = int(mask.sum())
    nan = float("nan")
    if n < min_pixels:
        return DepthCheck(False, f"only {n} board pixels have depth (need {min_pixels})", nan, nan, nan, nan, n, nan)
    expected = expected_plane_depth(intr, pose, mask)
    sensor = depth_mm[mask].astype(np.float64) / 1000.0
    diff = sensor - expected
    bias = float(np.median(diff))
    spread = mad_sigma(diff, bias)
    v, u = np.nonzero(mask)
    pts = intr.backproject(u, v, sensor)
    centred = pts - pts.mean(axis=0)
    normal = np.linalg.svd(centred, full_matrices=False)[2][-1]
    residual = float(np.sqrt(np.mean((centred @ normal) ** 2)))
    z = float(np.median(expected))
    return DepthCheck(
        True,
        f"bias {bias * 1000:+.1f} mm ({bias / z * 100:+.2f} %) at {z:.2f} m over {n} px",
        bias * 1000,
        bias / z * 100,
        spread * 1000,
        residual * 1000,
        n,
        z,
    )


# --- calibration file ----------------------------------------------------------------------------------


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def calibration_document(
    existing: dict[str, Any] | None, section: str, payload: dict[str, Any], *, camera: str
) -> dict[str, Any]:
    """The calibration JSON with `section` replaced: intrinsics, stereo, depth_check or mono_scale."""
    doc = dict(existing or {})
    doc.update({"schema_version": SCHEMA_VERSION, "camera": camera, "updated_utc": utc_now()})
    doc[section] = {"created_utc": utc_now(), **payload}
    return doc
