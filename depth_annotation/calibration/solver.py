"""Camera calibration math: view selection, intrinsics, stereo extrinsics, depth check.

Everything image_pipeline's camera_calibration computes, with every number it
computes reported: the RMS and per-view reprojection errors, which views are
worst, how well the views cover the image, and how sure the intrinsics are (the
standard deviation of each), with the gates that refuse a calibration a user
should not trust. OpenCV 5 (`calibrateCameraExtended`, `stereoCalibrateExtended`,
`solvePnP`) does the solving.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
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
    # clamp both ends: a box wholly above/left of the image would otherwise give a negative slice end
    roi = gray[max(y, 0) : max(y + h, 0), max(x, 0) : max(x + w, 0)]
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
        return coverage_of(self.params)

    def reset(self) -> None:
        self.params.clear()


# --- intrinsics -----------------------------------------------------------------------------

COVERAGE_KEYS = ("x", "y", "size", "skew")
# image_pipeline's camera_calibration: the board centre should sweep 0.7 of the image in x and y,
# the largest view reach size 0.4 and the most tilted skew 0.5 (size and skew count from 0: a
# small or flat view is no progress). 1.0 = that much seen.
USEFUL_RANGE = np.array([0.7, 0.7, 0.4, 0.5])
CORNER_GRID = (8, 6)  # cells across x, y for the corner coverage of the image


def coverage_of(params: Sequence[ViewParams]) -> dict[str, float]:
    """How much of each parameter's useful range the views cover (1 = all of it), as camera_calibration."""
    if not params:
        return dict.fromkeys(COVERAGE_KEYS, 0.0)
    arr = np.array([p.vector() for p in params])
    lo = arr.min(axis=0)
    lo[2:] = 0.0
    span = arr.max(axis=0) - lo
    return {k: float(min(v, 1.0)) for k, v in zip(COVERAGE_KEYS, span / USEFUL_RANGE, strict=True)}


def corner_coverage(corners_px: Sequence[np.ndarray], image_size: tuple[int, int]) -> float:
    """Share of the cells of an 8x6 grid over the image that hold at least one detected corner."""
    gx, gy = CORNER_GRID
    w, h = image_size
    seen = np.zeros((gy, gx), bool)
    for c in corners_px:
        c = np.asarray(c, np.float64).reshape(-1, 2)
        col = np.clip((c[:, 0] / w * gx).astype(int), 0, gx - 1)
        row = np.clip((c[:, 1] / h * gy).astype(int), 0, gy - 1)
        seen[row, col] = True
    return float(seen.mean())


@dataclass(frozen=True)
class CalibrationGates:
    """When `calibrate` refuses: too little coverage of the image, or intrinsics too uncertain.

    Defaults chosen from measurements (README, "Calibration"; `bench/bench_calibration.py`):
    20-25 rendered views spread as a person waves a board reach coverage x, y >= 0.53,
    size >= 0.87, skew >= 0.65 and std(fx, fy, cx, cy) <= 0.21 % of the value; the 12 real
    photographs of each camera in shared/data reach x >= 0.50, y >= 0.72, size 0.76, skew
    >= 0.38 and std <= 0.39 %. Six views in one image quadrant reach x, y <= 0.30 and
    std(cx or cy) >= 0.53 % (errors up to 3.7 %); frontal-only views skew 0.10 (fx off 2 %);
    boards only far away size 0.37 (cx, cy off 4-5 %).
    """

    min_coverage_x: float = 0.4
    min_coverage_y: float = 0.4
    min_coverage_size: float = 0.5
    min_coverage_skew: float = 0.3
    max_std_fraction: float = 0.005  # std of fx, fy, cx and cy from calibrateCameraExtended, over the value

    def failures(self, coverage: dict[str, float], std_dev: dict[str, float], intr: Intrinsics) -> list[str]:
        """What fails, one readable phrase each (empty: every gate passes)."""
        out = []
        for key in COVERAGE_KEYS:
            need = float(getattr(self, f"min_coverage_{key}"))
            if coverage.get(key, 0.0) < need:
                out.append(f"coverage {key} {coverage.get(key, 0.0):.2f} < {need:.2f}")
        for key in ("fx", "fy", "cx", "cy"):
            value, std = float(getattr(intr, key)), std_dev.get(key, float("nan"))
            frac = std / abs(value) if value else float("inf")
            if np.isfinite(self.max_std_fraction) and not frac <= self.max_std_fraction:  # NaN std fails
                out.append(
                    f"{key} uncertain (std {std:.2f} px = {frac * 100:.2f} % > {self.max_std_fraction * 100:.2f} %)"
                )
        return out

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


OPEN = CalibrationGates(0.0, 0.0, 0.0, 0.0, float("inf"))  # no gate but RMS (tests, expert use)


@dataclass
class IntrinsicsResult:
    """What `calibrate` answers: the intrinsics, how well they fit, how sure they are, what covered them.

    `success` is False when a gate fails (the RMS, coverage or uncertainty gates) unless the
    calibration was `forced` past them; `failed_gates` lists them either way.
    """

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
    corner_coverage: float = 0.0
    std_dev: dict[str, float] = field(default_factory=dict)  # fx, fy, cx, cy (px)
    std_dev_d: list[float] = field(default_factory=list)  # one per distortion coefficient
    failed_gates: list[str] = field(default_factory=list)
    forced: bool = False
    gates: CalibrationGates | None = None
    used_views: list[int] = field(default_factory=list)  # indices into the input views, in solve order
    view_stamps_ns: list[int] = field(default_factory=list)  # the frames used (set by the session)
    # For the report only (not in the JSON): per used view, detected corners and their residuals.
    corners_px: list[np.ndarray] = field(default_factory=list, repr=False)
    residuals_px: list[np.ndarray] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The `intrinsics` section of the calibration JSON."""
        return {
            "board": self.board.to_dict() if self.board else None,
            "image_size": list(self.image_size) if self.image_size else None,
            "coverage": self.coverage,
            "corner_coverage": self.corner_coverage,
            "success": self.success,
            "message": self.message,
            "forced": self.forced,
            "failed_gates": self.failed_gates,
            "gates": self.gates.to_dict() if self.gates else None,
            "rms_px": self.rms_px,
            "per_view_error_px": self.per_view_error_px,
            "views_used": self.views_used,
            "view_stamps_ns": self.view_stamps_ns,
            "rejected_views": self.rejected_views,
            "worst_views": self.worst_views,
            "std_dev": {**self.std_dev, "d": self.std_dev_d},
            "intrinsics": self.intrinsics.to_dict() if self.intrinsics else None,
        }


NO_GUESS: Any = None  # K and D are outputs only (OpenCV's stubs want arrays)


@dataclass
class _Solve:
    rms: float
    k: np.ndarray
    d: np.ndarray
    std: np.ndarray  # calibrateCameraExtended's stdDeviationsIntrinsics
    errors: np.ndarray  # per view RMS (px)
    residuals: list[np.ndarray]  # per view (N, 2) detected - reprojected


def _solve(
    dets: Sequence[BoardDetection], spec: BoardSpec, image_size: tuple[int, int], flags: int, *, extended: bool = True
) -> _Solve:
    """`calibrateCameraExtended` (or plain `calibrateCamera`, for the benchmark's comparison)."""
    obj = [d.object_points(spec).astype(np.float32) for d in dets]
    img = [d.corners_px.reshape(-1, 1, 2).astype(np.float32) for d in dets]
    if extended:
        rms, k, d, rvecs, tvecs, std, _, _ = cv2.calibrateCameraExtended(
            obj, img, image_size, NO_GUESS, NO_GUESS, flags=flags
        )
    else:
        rms, k, d, rvecs, tvecs = cv2.calibrateCamera(obj, img, image_size, NO_GUESS, NO_GUESS, flags=flags)
        std = np.full(18, np.nan)
    residuals = []
    for o, i, r, t in zip(obj, img, rvecs, tvecs, strict=True):
        proj, _ = cv2.projectPoints(o, r, t, k, d)
        residuals.append(i.reshape(-1, 2).astype(np.float64) - proj.reshape(-1, 2))
    errors = np.array([np.sqrt(np.mean(np.sum(res**2, axis=1))) for res in residuals])
    return _Solve(float(rms), np.asarray(k), np.asarray(d).ravel(), np.asarray(std).ravel(), errors, residuals)


def calibrate_intrinsics(
    views: Sequence[BoardDetection | None],
    spec: BoardSpec,
    image_size: tuple[int, int],
    *,
    min_views: int = 20,
    max_rms_px: float = 0.5,
    reject_outliers: bool = True,
    distortion_model: str = "plumb_bob",
    gates: CalibrationGates | None = None,
    force: bool = False,
    extended: bool = True,
) -> IntrinsicsResult:
    """Intrinsics from board views (`calibrateCameraExtended`), with the gates a user can read.

    Refused (success False, the message says which) when the RMS reprojection error exceeds
    `max_rms_px`, or a `gates` threshold fails: coverage of x, y, size or skew too small, or
    the standard deviation of fx, fy, cx or cy too large a fraction of the value. `force`
    calibrates past those gates (recorded in the result); too few views always fail.

    With `reject_outliers`, views whose error is far above the others
    (> max(2 x median, median + 3 MAD) and above the gate) are dropped once and
    the solve repeated, so one bad view does not spoil a good calibration.
    """
    gates = gates or CalibrationGates()
    nan = float("nan")
    usable = [i for i, v in enumerate(views) if v is not None and v.count >= 6]
    found = {i: v for i, v in enumerate(views) if v is not None}

    def fail(message: str, count: int) -> IntrinsicsResult:
        return IntrinsicsResult(
            False, message, nan, [], None, count, image_size=image_size, board=spec, gates=gates, forced=False
        )

    if len(usable) < min_views:
        return fail(f"need at least {min_views} views with a board, have {len(usable)}", len(usable))
    flags = cv2.CALIB_RATIONAL_MODEL if distortion_model == "rational_polynomial" else 0
    try:
        sol = _solve([found[i] for i in usable], spec, image_size, flags, extended=extended)
    except cv2.error as exc:
        return fail(f"calibrateCamera failed: {getattr(exc, 'msg', exc)}", len(usable))
    rejected: list[int] = []
    if reject_outliers and len(usable) > min_views:
        med = float(np.median(sol.errors))
        limit = max(2.0 * med, med + 3.0 * mad_sigma(sol.errors, med), max_rms_px)
        bad = [usable[i] for i in np.flatnonzero(sol.errors > limit)]
        keep = [i for i in usable if i not in bad]
        if bad and len(keep) >= min_views:
            rejected = bad
            sol = _solve([found[i] for i in keep], spec, image_size, flags, extended=extended)
            usable = keep
    n_d = 8 if distortion_model == "rational_polynomial" else 5
    k = sol.k
    intr = Intrinsics(
        image_size[0],
        image_size[1],
        float(k[0, 0]),
        float(k[1, 1]),
        float(k[0, 2]),
        float(k[1, 2]),
        distortion_model,
        tuple(float(v) for v in sol.d[:n_d]),
    )
    # stdDeviationsIntrinsics: fx, fy, cx, cy, then k1, k2, p1, p2, k3, k4, k5, k6, ... (OpenCV's d order)
    std_dev = {key: float(sol.std[i]) for i, key in enumerate(("fx", "fy", "cx", "cy"))}
    std_d = [float(v) for v in sol.std[4 : 4 + n_d]]
    used = [found[i] for i in usable]
    coverage = coverage_of([view_params(d, image_size) for d in used])
    order = np.argsort(sol.errors)[::-1]
    worst = [usable[i] for i in order[:3]]
    failed = []
    if sol.rms > max_rms_px:
        listed = ", ".join(f"view {usable[i]} ({sol.errors[i]:.2f} px)" for i in order[:3])
        failed.append(f"RMS reprojection error {sol.rms:.3f} px exceeds {max_rms_px} px; worst: {listed}")
    failed += gates.failures(coverage, std_dev, intr)
    summary = (
        f"RMS {sol.rms:.3f} px over {len(usable)} views; std fx {std_dev['fx']:.2f} fy {std_dev['fy']:.2f} "
        f"cx {std_dev['cx']:.2f} cy {std_dev['cy']:.2f} px"
    )
    if rejected:
        summary += f" (rejected outlier views {rejected})"
    if failed and not force:
        message = "refused: " + "; ".join(failed) + f" ({summary}); add views that fill the gaps, or force"
    elif failed:
        message = f"{summary}; FORCED past: " + "; ".join(failed)
    else:
        message = summary
    return IntrinsicsResult(
        success=not failed or force,
        message=message,
        rms_px=sol.rms,
        per_view_error_px=[float(e) for e in sol.errors],
        intrinsics=intr,
        views_used=len(usable),
        rejected_views=rejected,
        worst_views=worst,
        image_size=image_size,
        board=spec,
        coverage=coverage,
        corner_coverage=corner_coverage([d.corners_px for d in used], image_size),
        std_dev=std_dev,
        std_dev_d=std_d,
        failed_gates=failed,
        forced=bool(failed) and force,
        gates=gates,
        used_views=list(usable),
        corners_px=[d.corners_px.astype(np.float64) for d in used],
        residuals_px=sol.residuals,
    )


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
