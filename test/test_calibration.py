"""Calibration math on rendered boards with known intrinsics, distortion, baseline and depth bias,
and on real photographs of a checkerboard against OpenCV alone."""

import cv2
import numpy as np
import pytest

from depth_annotation.calibration import (
    OPEN,
    BoardDetector,
    BoardSpec,
    ViewSelector,
    board_mask,
    calibrate_intrinsics,
    calibrate_stereo,
    estimate_board_pose,
    expected_plane_depth,
    render_board,
    varied_board_poses,
    verify_depth,
)
from depth_annotation.common import Extrinsics, Intrinsics, rotation_from_euler_xyz

TRUE = Intrinsics(640, 480, 600.0, 604.0, 322.5, 237.8, d=(-0.13, 0.07, 0.0012, -0.0008, -0.02))
N_VIEWS = 22


def distortion_field_error_px(got: Intrinsics, true: Intrinsics, inset: float = 0.15) -> float:
    """Largest pixel difference between two distortion models (both with the true K) over the image less
    an `inset` border: where the views put corners (k1, k2 and k3 trade off outside it)."""
    w, h = true.width - 1, true.height - 1
    u, v = np.meshgrid(np.linspace(inset * w, (1 - inset) * w, 33), np.linspace(inset * h, (1 - inset) * h, 25))
    px = np.stack([u.ravel(), v.ravel()], axis=1).reshape(-1, 1, 2)
    rays = cv2.undistortPoints(px, true.k, true.dist_coeffs).reshape(-1, 2)
    pts = np.column_stack([rays, np.ones(len(rays))])
    a, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), true.k, np.asarray(got.d))
    return float(np.abs(a.reshape(-1, 2) - px.reshape(-1, 2)).max())


def check_distortion(got: Intrinsics, true: Intrinsics) -> None:
    """The whole vector, in OpenCV's order (k1, k2, p1, p2, k3): k1 and the tangential terms each,
    and the lens model all five make (k2 and k3 are correlated, so not each alone)."""
    assert len(got.d) == 5
    assert got.d[0] == pytest.approx(true.d[0], abs=0.01), "k1"
    assert got.d[2] == pytest.approx(true.d[2], abs=5e-4), "p1"
    assert got.d[3] == pytest.approx(true.d[3], abs=5e-4), "p2"
    assert distortion_field_error_px(got, true) < 0.3


def render_views(spec, intr, n, seed=1):
    det = BoardDetector(spec)
    out = []
    for i, pose in enumerate(varied_board_poses(spec, intr, n, seed=seed)):
        view = render_board(spec, intr, pose, noise_sigma=1.0, rng=np.random.default_rng(i))
        out.append((view, det.detect(view.image)))
    return out


@pytest.fixture(scope="module", params=["charuco", "checkerboard"])
def board_views(request):
    spec = BoardSpec(kind=request.param)
    return spec, render_views(spec, TRUE, N_VIEWS)


def test_intrinsics_recovered_within_half_a_percent(board_views):
    spec, views = board_views
    dets = [d for _, d in views]
    assert all(d is not None for d in dets)
    r = calibrate_intrinsics(dets, spec, (640, 480), min_views=20)
    assert r.success, r.message
    assert r.rms_px < 0.5 and len(r.per_view_error_px) == N_VIEWS
    got = r.intrinsics
    for name in ("fx", "fy", "cx", "cy"):
        assert getattr(got, name) == pytest.approx(getattr(TRUE, name), rel=0.005), name
    check_distortion(got, TRUE)
    assert r.failed_gates == [] and not r.forced  # 22 well-spread views pass the default gates


def test_too_few_views_fail_cleanly(board_views):
    spec, views = board_views
    r = calibrate_intrinsics([d for _, d in views[:12]], spec, (640, 480), min_views=20)
    assert not r.success and r.intrinsics is None
    assert r.message == "need at least 20 views with a board, have 12"


def test_rms_gate_names_the_worst_views(board_views):
    spec, views = board_views
    dets = [d for _, d in views]
    bad = dets[5].__class__(
        dets[5].corners_px + np.random.default_rng(0).normal(0, 4, dets[5].corners_px.shape).astype(np.float32),
        dets[5].ids,
    )
    dets = dets[:5] + [bad] + dets[6:]
    gated = calibrate_intrinsics(dets, spec, (640, 480), min_views=20, reject_outliers=False)
    assert not gated.success and "exceeds 0.5 px" in gated.message and "view 5" in gated.message
    assert gated.worst_views[0] == 5
    fixed = calibrate_intrinsics(dets, spec, (640, 480), min_views=20, reject_outliers=True)
    assert fixed.success and fixed.rejected_views == [5] and fixed.views_used == N_VIEWS - 1


def test_view_selector_keeps_new_sharp_views():
    spec = BoardSpec()
    views = render_views(spec, TRUE, 2, seed=4)
    sel = ViewSelector()
    (v0, d0), (v1, d1) = views
    assert sel.consider(v0.image, d0, (640, 480)) == (True, "kept")
    kept, why = sel.consider(v0.image, d0, (640, 480))
    assert not kept and "too similar" in why
    blurred = cv2.GaussianBlur(v1.image, (0, 0), 4)
    kept, why = sel.consider(blurred, d1, (640, 480))
    assert not kept and ("blurred" in why)
    assert sel.consider(v1.image, None, (640, 480)) == (False, "no board detected")
    assert sel.consider(v0.image, d0, (640, 480), force=True)[0]


def test_stereo_baseline_and_rotation():
    spec = BoardSpec()
    left = Intrinsics(640, 480, 600.0, 600.0, 320.0, 240.0, d=(-0.05, 0.01, 0, 0, 0))
    right = Intrinsics(640, 480, 610.0, 609.0, 318.0, 242.0, d=(-0.04, 0.01, 0, 0, 0))
    true = Extrinsics(
        rotation_from_euler_xyz(np.radians(0.4), np.radians(-1.2), np.radians(0.3)),
        np.array([-0.055, 0.0012, 0.0008]),
        "left",
        "right",
    )
    det = BoardDetector(spec)
    pairs = []
    for i, pose in enumerate(varied_board_poses(spec, left, 14, seed=7, distance_m=(0.45, 0.8), margin_px=60)):
        vl = render_board(spec, left, pose, noise_sigma=1.0, rng=np.random.default_rng(i))
        vr = render_board(spec, right, pose.then(true), noise_sigma=1.0, rng=np.random.default_rng(100 + i))
        dl, dr = det.detect(vl.image), det.detect(vr.image)
        if dl is not None and dr is not None:
            pairs.append((dl, dr))
    assert len(pairs) >= 10
    r = calibrate_stereo(pairs, spec, left, right, min_pairs=10)
    assert r.success, r.message
    assert abs(r.baseline_m - np.linalg.norm(true.translation)) < 0.001
    rel = r.left_to_right.rotation @ true.rotation.T
    angle = np.degrees(np.arccos(np.clip((np.trace(rel) - 1) / 2, -1, 1)))
    assert angle < 0.1
    few = calibrate_stereo(pairs[:3], spec, left, right, min_pairs=10)
    assert not few.success and "synchronized pairs" in few.message


@pytest.mark.parametrize("bias", [0.02, -0.01])
def test_depth_verification_reports_injected_bias(bias):
    spec = BoardSpec()
    intr = Intrinsics(640, 480, 606.0, 606.0, 321.5, 240.3)
    true_pose = varied_board_poses(spec, intr, 1, seed=11, distance_m=(0.6, 0.6))[0]
    view = render_board(spec, intr, true_pose, noise_sigma=1.0)
    pose = estimate_board_pose(BoardDetector(spec).detect(view.image), spec, intr)  # PnP, as the node does
    mask = board_mask(spec, intr, true_pose, inset_squares=0.0)
    depth = np.zeros((480, 640), np.uint16)
    z = expected_plane_depth(intr, true_pose, mask)
    rng = np.random.default_rng(0)
    noisy = z * (1 + bias) + rng.normal(0, 0.002 * z * z)
    depth[mask] = np.round(noisy * 1000).astype(np.uint16)
    check = verify_depth(depth, intr, pose, spec)
    assert check.success
    assert check.bias_percent == pytest.approx(bias * 100, abs=0.3)
    assert check.plane_residual_mm < 3.0
    with pytest.raises(ValueError, match="aligned to this camera"):
        verify_depth(depth[:240, :320], intr, pose, spec)


# --- real photographs ------------------------------------------------------------------------------
REAL_BOARD = BoardSpec(kind="checkerboard", squares_x=10, squares_y=7, square_length_m=0.025)  # 9 x 6 inner corners
# shared/data/calibration/README.md: OpenCV alone (findChessboardCorners, cornerSubPix 11x11, calibrateCamera)
README_REFERENCE = {
    "left": {"rms": 0.126, "fx": 516.55, "fy": 516.82, "cx": 315.06, "cy": 249.50},
    "right": {"rms": 0.131, "fx": 517.32, "fy": 517.87, "cx": 325.89, "cy": 261.61},
}


def real_images(shared_data, side):
    files = sorted((shared_data / "calibration" / "stereo_640x512").glob(f"{side}*.jpg"))
    assert len(files) == 12, files
    return [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]


def opencv_alone_corners(gray):
    """The README's reference detection, written with OpenCV calls only."""
    found, c = cv2.findChessboardCorners(gray, (9, 6))
    assert found
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.001)
    return cv2.cornerSubPix(gray, c, (11, 11), (-1, -1), crit).reshape(-1, 2)


@pytest.mark.parametrize("side", ["left", "right"])
def test_real_photographs_calibrate_as_opencv_does(shared_data, side):
    """Real blur, lighting and lens distortion: every board found, corners where OpenCV alone puts them,
    and our calibration equal to OpenCV's calibrateCamera on the same detections."""
    images = real_images(shared_data, side)
    det = BoardDetector(REAL_BOARD)
    dets = [det.detect(g) for g in images]
    assert all(d is not None and d.count == 54 for d in dets)
    for d, g in zip(dets, images, strict=True):
        ref = opencv_alone_corners(g)
        if np.linalg.norm(ref[0] - d.corners_px[0]) > np.linalg.norm(ref[-1] - d.corners_px[0]):
            ref = ref[::-1]  # a checkerboard's corner order may start from either end
        diff = np.linalg.norm(ref - d.corners_px, axis=1)
        assert np.median(diff) < 0.1 and diff.max() < 0.3, (np.median(diff), diff.max())

    ours = calibrate_intrinsics(dets, REAL_BOARD, (640, 512), min_views=12)
    assert ours.success, ours.message  # 12 real views pass the default gates
    obj = [d.object_points(REAL_BOARD).astype(np.float32) for d in dets]
    img = [d.corners_px.reshape(-1, 1, 2).astype(np.float32) for d in dets]
    rms, k, dist, _, _ = cv2.calibrateCamera(obj, img, (640, 512), None, None)
    got = ours.intrinsics
    for name, value in (("fx", k[0, 0]), ("fy", k[1, 1]), ("cx", k[0, 2]), ("cy", k[1, 2])):
        assert getattr(got, name) == pytest.approx(value, rel=0.005), name
        assert getattr(got, name) == pytest.approx(README_REFERENCE[side][name], rel=0.005), name
    assert abs(ours.rms_px - rms) < 0.05 and abs(ours.rms_px - README_REFERENCE[side]["rms"]) < 0.05
    assert np.asarray(got.d) == pytest.approx(dist.ravel(), abs=1e-6)


@pytest.mark.parametrize("side", ["left", "right"])
def test_reported_uncertainty_explains_the_scatter_of_real_calibrations(shared_data, side):
    """Two disjoint halves of the real views disagree by no more than their standard deviations allow."""
    det = BoardDetector(REAL_BOARD)
    dets = [det.detect(g) for g in real_images(shared_data, side)]
    a = calibrate_intrinsics(dets[0::2], REAL_BOARD, (640, 512), min_views=6, gates=OPEN)
    b = calibrate_intrinsics(dets[1::2], REAL_BOARD, (640, 512), min_views=6, gates=OPEN)
    for name in ("fx", "fy", "cx", "cy"):
        gap = abs(getattr(a.intrinsics, name) - getattr(b.intrinsics, name))
        sigma = np.hypot(a.std_dev[name], b.std_dev[name])
        assert 0.2 < sigma < 10 and gap < 3 * sigma, (name, gap, sigma)


def test_real_stereo_pair_as_opencv_does(shared_data):
    det = BoardDetector(REAL_BOARD)
    left = [det.detect(g) for g in real_images(shared_data, "left")]
    right = [det.detect(g) for g in real_images(shared_data, "right")]
    cal_l = calibrate_intrinsics(left, REAL_BOARD, (640, 512), min_views=12).intrinsics
    cal_r = calibrate_intrinsics(right, REAL_BOARD, (640, 512), min_views=12).intrinsics
    r = calibrate_stereo(list(zip(left, right, strict=True)), REAL_BOARD, cal_l, cal_r, min_pairs=12)
    assert r.success, r.message
    obj = [d.object_points(REAL_BOARD).astype(np.float32) for d in left]
    rms, *_, rot, t, _, _ = cv2.stereoCalibrate(
        obj,
        [d.corners_px.reshape(-1, 1, 2) for d in left],
        [d.corners_px.reshape(-1, 1, 2) for d in right],
        cal_l.k,
        cal_l.dist_coeffs,
        cal_r.k,
        cal_r.dist_coeffs,
        (640, 512),
        flags=cv2.CALIB_FIX_INTRINSIC,
    )
    assert r.rms_px == pytest.approx(rms, abs=1e-6)
    assert r.left_to_right.translation == pytest.approx(t.ravel(), abs=1e-6)
    assert r.left_to_right.rotation == pytest.approx(rot, abs=1e-6)
    # a side-by-side rig: the cameras are apart along x, nearly parallel
    assert abs(r.left_to_right.translation[0]) > 0.9 * r.baseline_m and r.rotation_deg < 5, r.to_dict()
