"""Calibration math (calibration/solver.py) on corners projected by hand: no rendering, no detection, so each
test takes a fraction of a second and mutation runs stay short. Known answers: the true camera the corners
were projected with, shapes whose areas are worked out by hand, and planes checked by back-projection.
(test_calibration.py runs the same math on rendered and real images.)"""

import datetime as dt
import math

import cv2
import numpy as np
import pytest

from depth_annotation.calibration import (
    OPEN,
    BoardSpec,
    CalibrationError,
    CalibrationGates,
    ViewParams,
    ViewSelector,
    board,
    board_mask,
    calibrate_intrinsics,
    calibrate_stereo,
    calibration_document,
    corner_coverage,
    coverage_of,
    estimate_board_pose,
    expected_plane_depth,
    place_board,
    solver,
    varied_board_poses,
    verify_depth,
)
from depth_annotation.common import Extrinsics, Intrinsics, rotation_from_euler_xyz

# the module's own helpers (not re-exported by the package): view geometry, sharpness, the detection type
BoardDetection, sharpness, view_params = board.BoardDetection, solver.sharpness, solver.view_params

SPEC = BoardSpec(kind="checkerboard", squares_x=8, squares_y=6, square_length_m=0.03)  # 7 x 5 inner corners
TRUE = Intrinsics(320, 240, 300.0, 302.0, 161.5, 118.9, d=(-0.13, 0.07, 0.0012, -0.0008, -0.02))
SIZE = (320, 240)


def project(intr, pose, ids=None, noise=0.0, seed=0):
    """The board's corners (or those of `ids`) seen by `intr` from `pose`, as a detection."""
    ids = np.arange(len(SPEC.corner_points())) if ids is None else np.asarray(ids)
    rvec, _ = cv2.Rodrigues(pose.rotation)
    px, _ = cv2.projectPoints(SPEC.corner_points()[ids], rvec, pose.translation, intr.k, intr.dist_coeffs)
    px = px.reshape(-1, 2) + np.random.default_rng(seed).normal(0, noise, (len(ids), 2))
    return BoardDetection(px.astype(np.float32), ids)


def views(n=12, noise=0.02, seed=4, intr=TRUE):
    return [project(intr, p, noise=noise, seed=i) for i, p in enumerate(varied_board_poses(SPEC, intr, n, seed=seed))]


def rect_detection(x0, y0, x1, y1):
    """Corners on the edges and inside an axis-aligned rectangle."""
    u, v = np.meshgrid(np.linspace(x0, x1, 5), np.linspace(y0, y1, 4))
    return BoardDetection(np.stack([u.ravel(), v.ravel()], 1).astype(np.float32), np.arange(20))


# --- view selection ------------------------------------------------------------------------------


def test_view_params_of_a_rectangle_a_trapezoid_and_a_triangle():
    p = view_params(rect_detection(40, 60, 120, 140), (320, 240))
    assert (p.x, p.y) == pytest.approx((80 / 320, 100 / 240))
    assert p.size == pytest.approx(math.sqrt(80 * 80 / (320 * 240)))
    assert p.skew == pytest.approx(0.0, abs=1e-6)
    assert np.array_equal(p.vector(), [p.x, p.y, p.size, p.skew])
    # symmetric trapezoid, bottom 40 wide, top 20, 20 high: area 600 in a 40 x 20 box -> skew 2 (1 - 600/800)
    trapezoid = np.array([[0, 20], [10, 20], [20, 20], [30, 20], [40, 20], [10, 0], [30, 0]], np.float32) + 100
    p = view_params(BoardDetection(trapezoid, np.arange(7)), (200, 300))
    assert p.skew == pytest.approx(0.5, abs=1e-4)
    assert p.size == pytest.approx(math.sqrt(600 / (200 * 300)))
    assert (p.x, p.y) == pytest.approx((trapezoid[:, 0].mean() / 200, trapezoid[:, 1].mean() / 300))
    # a right triangle fills half its box: 2 (1 - 1/2) = 1, and no view counts as more skewed than 1
    triangle = np.array([[0, 0], [30, 0], [0, 30], [10, 10]], np.float32) + 50
    assert view_params(BoardDetection(triangle, np.arange(4)), (200, 200)).skew == pytest.approx(1.0, abs=1e-4)
    # corners on one line: no area, and still no more skewed than 1
    line = np.array([[10, 10], [20, 20], [30, 30]], np.float32)
    p = view_params(BoardDetection(line, np.arange(3)), (200, 200))
    assert (p.size, p.skew) == (0.0, 1.0)


def laplacian_variance(gray):
    """cv2.Laplacian's 3x3 kernel with reflect-101 borders, written with numpy."""
    g = np.pad(gray.astype(np.float64), 1, mode="reflect")
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 * g[1:-1, 1:-1]
    return float(lap.var())


def test_sharpness_is_the_laplacian_variance_inside_the_corners_box():
    rng = np.random.default_rng(1)
    gray = np.full((60, 80), 128, np.uint8)
    gray[10:30, 20:50] = rng.integers(0, 256, (20, 30), dtype=np.uint8)  # texture only inside the box
    det = BoardDetection(np.array([[20, 10], [49, 10], [49, 29], [20, 29]], np.float32), np.arange(4))
    assert sharpness(gray, det) == pytest.approx(laplacian_variance(gray[10:30, 20:50]))
    assert sharpness(gray, det) > 1000
    flat_elsewhere = BoardDetection(np.array([[55, 35], [75, 35], [75, 55]], np.float32), np.arange(3))
    assert sharpness(gray, flat_elsewhere) == 0.0
    above_left_of_the_image = BoardDetection(np.array([[-10, -10], [-1, -1], [-5, -3]], np.float32), np.arange(3))
    assert sharpness(gray, above_left_of_the_image) == 0.0  # an empty box


def test_sharpness_of_a_box_partly_outside_the_image_counts_the_part_inside():
    gray = (np.indices((40, 40)).sum(0) % 2 * 200).astype(np.uint8)  # a pixel checkerboard
    gray[:, 20:] = 0
    det = BoardDetection(np.array([[-5, -5], [10, 10]], np.float32), np.arange(2))
    assert sharpness(gray, det) == pytest.approx(laplacian_variance(gray[0:11, 0:11]))


def test_sharpness_of_a_box_wholly_outside_the_image_is_zero():
    gray = np.random.default_rng(1).integers(0, 256, (60, 80), dtype=np.uint8)
    det = BoardDetection(np.array([[-20, -20], [-10, -10], [-15, -12]], np.float32), np.arange(3))
    assert sharpness(gray, det) == 0.0


def test_view_selector_says_why_it_refuses():
    rng = np.random.default_rng(2)
    sharp = rng.integers(0, 256, (240, 320), dtype=np.uint8)
    flat = np.full((240, 320), 90, np.uint8)
    a, b = rect_detection(40, 60, 120, 140), rect_detection(200, 60, 280, 140)
    sel = ViewSelector()
    assert (sel.min_corners, sel.min_sharpness, sel.min_distance) == (8, 20.0, 0.1)
    five = BoardDetection(a.corners_px[:5], np.arange(5))
    assert sel.consider(sharp, five, SIZE) == (False, "only 5 corners (need 8)")
    assert sel.consider(sharp, BoardDetection(a.corners_px[:8], np.arange(8)), SIZE)[1] != "only 8 corners (need 8)"
    sel.reset()
    assert sel.consider(flat, a, SIZE) == (False, "too blurred (sharpness 0 < 20)")
    assert sel.consider(sharp, a, SIZE) == (True, "kept")
    assert sel.consider(sharp, a, SIZE) == (False, "too similar to a kept view (distance 0.00 < 0.1)")
    assert sel.consider(sharp, a, SIZE, force=True) == (True, "kept")
    assert sel.consider(sharp, b, SIZE) == (True, "kept")  # 0.5 of the width away
    assert len(sel.params) == 3
    assert sel.coverage() == coverage_of(sel.params)
    sel.reset()
    assert sel.params == [] and sel.coverage()["x"] == 0.0


def test_view_selector_refuses_only_views_nearer_than_the_limit():
    """Views 40 px (0.125 of the width) apart, all else equal: kept at a limit of exactly 0.125, refused above."""
    sharp = np.random.default_rng(3).integers(0, 256, (240, 320), dtype=np.uint8)
    sel = ViewSelector(min_distance=0.125)
    assert sel.consider(sharp, rect_detection(40, 60, 120, 140), SIZE)[0]
    assert sel.consider(sharp, rect_detection(80, 60, 160, 140), SIZE) == (True, "kept")
    sel = ViewSelector(min_distance=0.126)
    assert sel.consider(sharp, rect_detection(40, 60, 120, 140), SIZE)[0]
    assert sel.consider(sharp, rect_detection(80, 60, 160, 140), SIZE) == (
        False,
        "too similar to a kept view (distance 0.12 < 0.126)",
    )
    # the distance is to the nearest kept view, in all four parameters
    sel = ViewSelector(min_distance=0.05)
    for x0 in (0, 100, 200):
        assert sel.consider(sharp, rect_detection(x0, 20, x0 + 80, 100), SIZE)[0]
    assert not sel.consider(sharp, rect_detection(104, 24, 184, 104), SIZE)[0]  # (4, 4) px from the second
    assert sel.consider(sharp, rect_detection(110, 20, 230, 140), SIZE)[0]  # larger: size differs by 0.12


def test_coverage_is_the_span_over_the_useful_range():
    params = [ViewParams(0.1, 0.2, 0.1, 0.0), ViewParams(0.8, 0.55, 0.3, 0.25), ViewParams(0.5, 0.3, 0.2, 0.1)]
    cov = coverage_of(params)
    assert cov == pytest.approx({"x": 0.7 / 0.7, "y": 0.35 / 0.7, "size": 0.3 / 0.4, "skew": 0.25 / 0.5})
    assert list(cov) == ["x", "y", "size", "skew"]
    # size and skew count from 0; nothing counts for more than the whole range
    assert coverage_of([ViewParams(0.5, 0.5, 0.6, 0.9)]) == {"x": 0.0, "y": 0.0, "size": 1.0, "skew": 1.0}
    assert coverage_of([]) == {"x": 0.0, "y": 0.0, "size": 0.0, "skew": 0.0}


def test_corner_coverage_counts_the_cells_of_an_8_by_6_grid():
    # cells are 40 x 40 px in a 320 x 240 image
    corners = [
        np.array([[5, 5], [39.9, 39.9], [40, 5]]),
        np.array([[319.9, 239.9], [320, 240], [-50, 100], [100, -50]]),
    ]
    # cells (0,0), (0,1), (5,7) (twice: the far edge belongs to the last cell), (2,0) and (0,2) (clipped)
    assert corner_coverage(corners, SIZE) == pytest.approx(5 / 48)
    assert (
        corner_coverage([np.array([[x + 20, y + 20] for x in range(0, 320, 40) for y in range(0, 240, 40)])], SIZE)
        == 1.0
    )
    # a (N, 1, 2) array from OpenCV counts the same
    assert corner_coverage([np.array([[[100, 100]], [[300, 10]]])], SIZE) == pytest.approx(2 / 48)
    assert corner_coverage([np.array([[50, 200]])], (100, 400)) == pytest.approx(1 / 48)  # cell (3, 4)


# --- gates ------------------------------------------------------------------------------------------


def test_gates_name_each_failure():
    gates = CalibrationGates()
    assert gates.to_dict() == {
        "min_coverage_x": 0.4,
        "min_coverage_y": 0.4,
        "min_coverage_size": 0.5,
        "min_coverage_skew": 0.3,
        "max_std_fraction": 0.005,
    }
    intr = Intrinsics(640, 480, 500.0, 400.0, 320.0, -240.0)
    good = {"x": 0.4, "y": 0.4, "size": 0.5, "skew": 0.3}  # each exactly at its gate passes
    std = {"fx": 2.5, "fy": 2.0, "cx": 1.6, "cy": 1.2}  # 0.5 % of fx, fy, cx and |cy|
    assert gates.failures(good, std, intr) == []
    assert gates.failures({"x": 0.39, "y": 0.1, "size": 0.49, "skew": 0.0}, std, intr) == [
        "coverage x 0.39 < 0.40",
        "coverage y 0.10 < 0.40",
        "coverage size 0.49 < 0.50",
        "coverage skew 0.00 < 0.30",
    ]
    assert gates.failures({}, std, intr)[0] == "coverage x 0.00 < 0.40"
    assert gates.failures(good, {**std, "fx": 2.6, "cy": float("nan")}, intr) == [
        "fx uncertain (std 2.60 px = 0.52 % > 0.50 %)",
        "cy uncertain (std nan px = nan % > 0.50 %)",
    ]
    assert gates.failures(good, {"fx": 2.5, "fy": 2.0, "cx": 1.6}, intr) == [
        "cy uncertain (std nan px = nan % > 0.50 %)"
    ]
    zero_cx = Intrinsics(640, 480, 500.0, 400.0, 0.0, 240.0)
    assert gates.failures(good, std, zero_cx) == ["cx uncertain (std 1.60 px = inf % > 0.50 %)"]
    assert OPEN.failures({}, {}, intr) == []


# --- intrinsics ---------------------------------------------------------------------------------------


def check_intrinsics(got, true, rel=0.005):
    for name in ("fx", "fy", "cx", "cy"):
        assert getattr(got, name) == pytest.approx(getattr(true, name), rel=rel), name
    assert (got.width, got.height) == (true.width, true.height)


def test_intrinsics_from_projected_corners():
    dets = views()
    r = calibrate_intrinsics(dets, SPEC, SIZE, min_views=10, gates=OPEN)
    assert r.success and not r.forced and r.failed_gates == [], r.message
    check_intrinsics(r.intrinsics, TRUE)
    assert r.intrinsics.distortion_model == "plumb_bob" and len(r.intrinsics.d) == 5
    assert r.intrinsics.d[0] == pytest.approx(TRUE.d[0], abs=0.02)
    assert r.intrinsics.d[2:4] == pytest.approx(TRUE.d[2:4], abs=5e-4)
    assert r.views_used == 12 and r.used_views == list(range(12)) and r.rejected_views == []
    assert r.image_size == SIZE and r.board == SPEC and r.gates == OPEN
    # each view's error is the RMS of its residuals, which are detected - reprojected with the result
    assert len(r.per_view_error_px) == len(r.residuals_px) == len(r.corners_px) == 12
    for det, corners, res, err in zip(dets, r.corners_px, r.residuals_px, r.per_view_error_px, strict=True):
        assert corners.dtype == np.float64 and np.array_equal(corners, det.corners_px)
        _, rvec, tvec = cv2.solvePnP(
            SPEC.corner_points(), det.corners_px.astype(np.float64), r.intrinsics.k, r.intrinsics.dist_coeffs
        )
        proj, _ = cv2.projectPoints(SPEC.corner_points(), rvec, tvec, r.intrinsics.k, r.intrinsics.dist_coeffs)
        assert np.abs(res - (det.corners_px - proj.reshape(-1, 2))).max() < 0.02
        assert err == pytest.approx(math.sqrt(np.mean(np.sum(res**2, axis=1))))
    all_res = np.concatenate(r.residuals_px)
    assert r.rms_px == pytest.approx(math.sqrt(np.mean(np.sum(all_res**2, axis=1))), rel=1e-3)
    assert 0.01 < r.rms_px < 0.04  # noise 0.02 px per coordinate
    order = np.argsort(r.per_view_error_px)[::-1]
    assert r.worst_views == [int(i) for i in order[:3]]
    # the standard deviations: a few tenths of a pixel for 12 views at 0.02 px noise, one per coefficient
    assert set(r.std_dev) == {"fx", "fy", "cx", "cy"} and all(0.05 < s < 1 for s in r.std_dev.values())
    assert len(r.std_dev_d) == 5 and all(0 < s < 1 for s in r.std_dev_d)
    assert r.coverage == coverage_of([view_params(d, SIZE) for d in dets])
    assert r.corner_coverage == corner_coverage([d.corners_px for d in dets], SIZE)
    assert r.message == (
        f"RMS {r.rms_px:.3f} px over 12 views; std fx {r.std_dev['fx']:.2f} fy {r.std_dev['fy']:.2f} "
        f"cx {r.std_dev['cx']:.2f} cy {r.std_dev['cy']:.2f} px"
    )


def test_the_standard_deviations_explain_the_error():
    """Over 6 noise draws the estimates scatter about as much as their reported standard deviations say."""
    poses = varied_board_poses(SPEC, TRUE, 12, seed=5)
    fits = [
        calibrate_intrinsics(
            [project(TRUE, p, noise=0.2, seed=100 * k + i) for i, p in enumerate(poses)],
            SPEC,
            SIZE,
            min_views=10,
            gates=OPEN,
        )
        for k in range(6)
    ]
    for key in ("fx", "cx"):
        errors = np.array([getattr(f.intrinsics, key) - getattr(TRUE, key) for f in fits])
        std = np.mean([f.std_dev[key] for f in fits])
        assert 0.3 < math.sqrt(np.mean(errors**2)) / std < 3, key


def test_the_rational_model_has_eight_coefficients_and_their_deviations():
    r = calibrate_intrinsics(views(), SPEC, SIZE, min_views=10, gates=OPEN, distortion_model="rational_polynomial")
    assert r.success, r.message
    assert r.intrinsics.distortion_model == "rational_polynomial" and len(r.intrinsics.d) == 8
    assert len(r.std_dev_d) == 8
    check_intrinsics(r.intrinsics, TRUE, rel=0.01)
    # plumb_bob (no CALIB_RATIONAL_MODEL): k4..k6 are not solved, so a plumb_bob fit has 5 and its std 5
    plain = calibrate_intrinsics(views(), SPEC, SIZE, min_views=10, gates=OPEN)
    assert len(plain.intrinsics.d) == 5 and plain.rms_px != r.rms_px


def test_without_the_extended_solve_there_are_no_deviations():
    r = calibrate_intrinsics(views(), SPEC, SIZE, min_views=10, gates=OPEN, extended=False)
    check_intrinsics(r.intrinsics, TRUE)
    assert all(math.isnan(s) for s in r.std_dev.values()) and all(math.isnan(s) for s in r.std_dev_d)
    assert len(r.std_dev_d) == 5


def test_too_few_usable_views_and_what_counts_as_usable():
    dets = views(10)
    dets[4] = BoardDetection(dets[4].corners_px[:5], dets[4].ids[:5])  # 5 corners: not usable
    dets[7] = None
    r = calibrate_intrinsics(dets, SPEC, SIZE, min_views=9, gates=OPEN)
    assert r.success is False and r.forced is False and r.intrinsics is None and r.views_used == 8
    assert r.message == "need at least 9 views with a board, have 8"
    assert math.isnan(r.rms_px) and r.per_view_error_px == [] and r.image_size == SIZE and r.board == SPEC
    assert r.gates == OPEN and not r.forced
    two_rows = [0, 1, 2, 7, 8, 9]
    six = BoardDetection(views(1)[0].corners_px[two_rows], np.array(two_rows))
    r = calibrate_intrinsics([*dets[:4], six, *dets[5:7], None, *dets[8:]], SPEC, SIZE, min_views=8, gates=OPEN)
    assert r.success and r.used_views == [0, 1, 2, 3, 4, 5, 6, 8, 9] and r.views_used == 9  # 6 corners are enough
    default = calibrate_intrinsics(views(19), SPEC, SIZE)
    assert default.message == "need at least 20 views with a board, have 19"
    assert default.gates == CalibrationGates()


def test_an_opencv_failure_is_reported_not_raised():
    """Six corners on one line in every view: no homography, OpenCV raises; the result says so."""
    line = [BoardDetection(d.corners_px[:6], d.ids[:6]) for d in views(10)]
    r = calibrate_intrinsics(line, SPEC, SIZE, min_views=10)
    assert not r.success and r.intrinsics is None and r.views_used == 10
    assert r.message.startswith("calibrateCamera failed: OpenCV") and "matH0" in r.message


def noisy(det, sigma, seed=0):
    return BoardDetection(
        det.corners_px + np.random.default_rng(seed).normal(0, sigma, det.corners_px.shape).astype(np.float32), det.ids
    )


def test_one_bad_view_is_rejected_and_named():
    dets = views(13)
    dets[6] = noisy(dets[6], 3.0)
    dets.insert(2, None)  # indices are into the input, Nones included: the bad view is 7
    gated = calibrate_intrinsics(dets, SPEC, SIZE, min_views=11, gates=OPEN, reject_outliers=False)
    assert not gated.success and gated.worst_views[0] == 7 and gated.rejected_views == []
    assert gated.failed_gates[0].startswith(
        f"RMS reprojection error {gated.rms_px:.3f} px exceeds 0.5 px; worst: view 7 ("
    )
    worst = ", ".join(
        f"view {i} ({gated.per_view_error_px[gated.used_views.index(i)]:.2f} px)" for i in gated.worst_views
    )
    assert gated.failed_gates == [f"RMS reprojection error {gated.rms_px:.3f} px exceeds 0.5 px; worst: {worst}"]
    summary = f"RMS {gated.rms_px:.3f} px over 13 views; std fx {gated.std_dev['fx']:.2f} fy {gated.std_dev['fy']:.2f} "
    assert gated.message.startswith("refused: " + gated.failed_gates[0] + " (" + summary)
    assert gated.message.endswith("px); add views that fill the gaps, or force")
    fixed = calibrate_intrinsics(dets, SPEC, SIZE, min_views=11, gates=OPEN)
    assert fixed.success and fixed.rejected_views == [7] and fixed.views_used == 12
    assert fixed.used_views == [0, 1, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13]
    assert len(fixed.per_view_error_px) == 12 and max(fixed.per_view_error_px) < 0.2
    assert all(0 < s < 1 for s in fixed.std_dev.values())  # the second solve is the extended one too
    assert fixed.message.endswith(" (rejected outlier views [7])")
    assert fixed.message.startswith(f"RMS {fixed.rms_px:.3f} px over 12 views; std fx {fixed.std_dev['fx']:.2f} fy ")
    # a rejection may leave exactly min_views
    assert calibrate_intrinsics(dets, SPEC, SIZE, min_views=12, gates=OPEN).rejected_views == [7]
    check_intrinsics(fixed.intrinsics, TRUE)
    # no second solve when that would leave fewer than min_views
    kept = calibrate_intrinsics(dets, SPEC, SIZE, min_views=13, gates=OPEN)
    assert kept.rejected_views == [] and kept.views_used == 13 and not kept.success
    # with exactly min_views there is nothing to spare: no rejection is tried
    exact = calibrate_intrinsics(dets[:11], SPEC, SIZE, min_views=10, gates=OPEN)
    assert exact.rejected_views == [] and exact.views_used == 10


def test_the_second_solve_keeps_the_model_and_the_solver():
    """After a rejection the solve is repeated the same way: rational model (k4..k6 solved, so not all 0)
    and, without the extended solve, no deviations."""
    dets = views(13)
    dets[6] = noisy(dets[6], 3.0)
    rational = calibrate_intrinsics(dets, SPEC, SIZE, min_views=11, gates=OPEN, distortion_model="rational_polynomial")
    assert rational.rejected_views == [6] and any(v != 0.0 for v in rational.intrinsics.d[5:8])
    plain = calibrate_intrinsics(dets, SPEC, SIZE, min_views=11, gates=OPEN, extended=False)
    assert plain.rejected_views == [6] and all(math.isnan(s) for s in plain.std_dev.values())


def test_a_view_at_the_limit_is_kept_and_the_limit_follows_the_rms_gate():
    """The rejection limit is max(2 x median, median + 3 MAD, max_rms_px): a mildly noisy view (about 3x the
    others' error) goes with a strict RMS gate and stays under a loose one."""
    dets = views(13)
    dets[3] = noisy(dets[3], 0.2)
    strict = calibrate_intrinsics(dets, SPEC, SIZE, min_views=11, gates=OPEN, max_rms_px=0.1)
    assert strict.rejected_views == [3]
    loose = calibrate_intrinsics(dets, SPEC, SIZE, min_views=11, gates=OPEN, max_rms_px=1.0)
    assert loose.rejected_views == [] and loose.success


def test_gates_refuse_and_force_overrides():
    dets = views()
    gates = CalibrationGates(min_coverage_x=0.99, max_std_fraction=1e-5)
    refused = calibrate_intrinsics(dets, SPEC, SIZE, min_views=10, gates=gates)
    assert not refused.success and not refused.forced and refused.intrinsics is not None
    assert refused.failed_gates == gates.failures(refused.coverage, refused.std_dev, refused.intrinsics)
    assert refused.failed_gates[0].startswith("coverage x ") and len(refused.failed_gates) == 5
    assert refused.message.startswith("refused: " + "; ".join(refused.failed_gates) + " (RMS ")
    forced = calibrate_intrinsics(dets, SPEC, SIZE, min_views=10, gates=gates, force=True)
    assert forced.success and forced.forced and forced.failed_gates == refused.failed_gates
    assert forced.message == f"RMS {forced.rms_px:.3f} px over 12 views; std fx {forced.std_dev['fx']:.2f} fy " + (
        f"{forced.std_dev['fy']:.2f} cx {forced.std_dev['cx']:.2f} cy {forced.std_dev['cy']:.2f} px; FORCED past: "
        + "; ".join(refused.failed_gates)
    )
    clean = calibrate_intrinsics(dets, SPEC, SIZE, min_views=10, gates=OPEN, force=True)
    assert clean.success and not clean.forced and "FORCED" not in clean.message


def test_intrinsics_result_as_json():
    r = calibrate_intrinsics(views(), SPEC, SIZE, min_views=10, gates=OPEN)
    r.view_stamps_ns = [5, 6]
    d = r.to_dict()
    assert d == {
        "board": SPEC.to_dict(),
        "image_size": [320, 240],
        "coverage": r.coverage,
        "corner_coverage": r.corner_coverage,
        "success": True,
        "message": r.message,
        "forced": False,
        "failed_gates": [],
        "gates": OPEN.to_dict(),
        "rms_px": r.rms_px,
        "per_view_error_px": r.per_view_error_px,
        "views_used": 12,
        "view_stamps_ns": [5, 6],
        "rejected_views": [],
        "worst_views": r.worst_views,
        "std_dev": {**r.std_dev, "d": r.std_dev_d},
        "intrinsics": r.intrinsics.to_dict(),
    }
    failed = calibrate_intrinsics([], SPEC, SIZE, min_views=1).to_dict()
    assert failed["intrinsics"] is None and failed["image_size"] == [320, 240] and failed["board"] == SPEC.to_dict()
    failed_bare = calibrate_intrinsics([], SPEC, SIZE, min_views=1)
    failed_bare.board, failed_bare.image_size, failed_bare.gates = None, None, None
    d = failed_bare.to_dict()
    assert d["board"] is None and d["image_size"] is None and d["gates"] is None


# --- stereo -----------------------------------------------------------------------------------------------


LEFT = Intrinsics(320, 240, 300.0, 300.0, 160.0, 120.0, d=(-0.05, 0.01, 0, 0, 0))
RIGHT = Intrinsics(320, 240, 305.0, 304.0, 158.0, 121.0, d=(-0.04, 0.01, 0, 0, 0))
LEFT_TO_RIGHT = Extrinsics(
    rotation_from_euler_xyz(np.radians(0.4), np.radians(-1.2), np.radians(0.3)),
    np.array([-0.055, 0.0012, 0.0008]),
    "left",
    "right",
)


def stereo_pairs(n=8, noise=0.05, subset=False):
    pairs = []
    poses = varied_board_poses(SPEC, LEFT, n, seed=9, distance_m=(0.45, 0.8), margin_px=30)
    all_ids = np.arange(35)
    for i, pose in enumerate(poses):
        ids_l = all_ids[i % 3 :] if subset else all_ids  # partial views: the pair shares only some corners
        ids_r = all_ids[: 35 - i % 4] if subset else all_ids
        pairs.append(
            (
                project(LEFT, pose, ids_l, noise, seed=i),
                project(RIGHT, pose.then(LEFT_TO_RIGHT), ids_r, noise, seed=50 + i),
            )
        )
    return pairs


def angle_deg(a, b):
    rel = a @ b.T
    return math.degrees(math.acos(np.clip((np.trace(rel) - 1) / 2, -1, 1)))


@pytest.mark.parametrize("subset", [False, True])
def test_stereo_recovers_the_extrinsics(subset):
    r = calibrate_stereo(stereo_pairs(subset=subset), SPEC, LEFT, RIGHT, min_pairs=8)
    assert r.success and r.pairs_used == 8, r.message
    assert np.abs(r.left_to_right.translation - LEFT_TO_RIGHT.translation).max() < 5e-4
    assert angle_deg(r.left_to_right.rotation, LEFT_TO_RIGHT.rotation) < 0.05
    assert (r.left_to_right.source_frame, r.left_to_right.target_frame) == ("left", "right")
    assert r.baseline_m == pytest.approx(np.linalg.norm(LEFT_TO_RIGHT.translation), abs=5e-4)
    true_angle = angle_deg(LEFT_TO_RIGHT.rotation, np.eye(3))
    assert r.rotation_deg == pytest.approx(true_angle, abs=0.05)
    assert 0.02 < r.rms_px < 0.1 and len(r.per_view_error_px) == 8 and all(0 < e < 0.15 for e in r.per_view_error_px)
    assert r.message == f"RMS {r.rms_px:.3f} px over 8 pairs, baseline {r.baseline_m * 1000:.2f} mm"
    assert r.to_dict() == {
        "success": True,
        "message": r.message,
        "rms_px": r.rms_px,
        "baseline_m": r.baseline_m,
        "rotation_deg": r.rotation_deg,
        "per_view_error_px": r.per_view_error_px,
        "pairs_used": 8,
        "left_to_right": r.left_to_right.to_dict(),
    }


def test_stereo_per_view_error_is_the_rms_of_both_images():
    pairs = stereo_pairs()
    pairs[2] = (noisy(pairs[2][0], 1.0, seed=1), pairs[2][1])  # only the left image is noisy
    r = calibrate_stereo(pairs, SPEC, LEFT, RIGHT, min_pairs=8, max_rms_px=0.1)
    assert int(np.argmax(r.per_view_error_px)) == 2
    # the left image of pair 2 has about 1 px RMS per coordinate, its right image little: sqrt((a^2 + b^2) / 2)
    assert 0.6 < r.per_view_error_px[2] < 1.3
    assert not r.success and r.message == f"stereo RMS {r.rms_px:.3f} px exceeds 0.1 px"


def test_stereo_needs_enough_pairs_with_six_shared_corners():
    pairs = stereo_pairs()
    few = [(BoardDetection(a.corners_px[:6], a.ids[:6]), BoardDetection(b.corners_px[:6], b.ids[:6])) for a, b in pairs]
    five = [
        (BoardDetection(a.corners_px[:6], a.ids[:6]), BoardDetection(b.corners_px[1:7], b.ids[1:7])) for a, b in pairs
    ]
    assert calibrate_stereo(few, SPEC, LEFT, RIGHT, min_pairs=8).pairs_used == 8  # 6 shared corners are enough
    r = calibrate_stereo(five, SPEC, LEFT, RIGHT, min_pairs=8)
    assert not r.success and r.pairs_used == 0 and r.left_to_right is None and r.per_view_error_px == []
    assert r.message == "need at least 8 synchronized pairs with the board in both images, have 0"
    assert math.isnan(r.rms_px) and math.isnan(r.baseline_m) and math.isnan(r.rotation_deg)
    assert r.to_dict()["left_to_right"] is None
    r = calibrate_stereo(pairs[:7], SPEC, LEFT, RIGHT)
    assert r.message == "need at least 10 synchronized pairs with the board in both images, have 7"
    assert calibrate_stereo(pairs, SPEC, LEFT, RIGHT, min_pairs=8).success  # default RMS gate 0.5 px


# --- board pose and depth check ------------------------------------------------------------------------


PLAIN = Intrinsics(320, 240, 300.0, 300.0, 160.0, 120.0)


def test_board_pose_from_corners():
    pose = place_board(SPEC, 0.5, tilt_x_deg=20, tilt_y_deg=-15, roll_deg=5, offset_m=(0.02, -0.01))
    for intr in (PLAIN, TRUE):
        got = estimate_board_pose(project(intr, pose), SPEC, intr)
        assert (got.source_frame, got.target_frame) == ("board", "camera_optical")
        assert np.abs(got.translation - pose.translation).max() < 1e-6
        assert angle_deg(got.rotation, pose.rotation) < 1e-4


def test_board_pose_failure_raises(monkeypatch):
    monkeypatch.setattr(cv2, "solvePnP", lambda *a, **k: (False, np.zeros(3), np.zeros(3)))
    with pytest.raises(CalibrationError, match="solvePnP found no board pose"):
        estimate_board_pose(project(PLAIN, place_board(SPEC, 0.5)), SPEC, PLAIN)


def test_board_mask_of_a_frontal_board_is_its_inset_rectangle():
    """Board 0.24 x 0.18 m square at 0.6 m, centred: 1 px per 2 mm. Inset 0.5 squares (15 mm) each side."""
    pose = place_board(SPEC, 0.6)
    mask = board_mask(SPEC, PLAIN, pose)
    assert mask.shape == (240, 320) and mask.dtype == bool
    ys, xs = np.nonzero(mask)
    # outline x in [-0.12 + 0.015, 0.12 - 0.015] m -> u in 160 +- 52.5 px; v in 120 +- 37.5 px
    assert xs.min() == pytest.approx(160 - 52.5, abs=1) and xs.max() == pytest.approx(160 + 52.5, abs=1)
    assert ys.min() == pytest.approx(120 - 37.5, abs=1) and ys.max() == pytest.approx(120 + 37.5, abs=1)
    assert mask.sum() == pytest.approx(105 * 75, rel=0.03)
    full = board_mask(SPEC, PLAIN, pose, inset_squares=0.0)  # u in 160 +- 60, v in 120 +- 45
    assert full.sum() == pytest.approx(120 * 90, rel=0.03)
    assert full[120, 160 - 58] and not full[120, 160 - 62] and full[120 - 43, 160] and not full[120 - 47, 160]


def test_board_mask_follows_the_lens_distortion():
    """k1 = -1 pulls each outline corner (x, y) = (0.175, 0.125) in by 1 + k1 r^2 = 0.95375 (r^2 = 0.04625):
    u extends 300 x 0.175 x 0.95375 = 50.07 px either side (52.5 without distortion), and the area shrinks
    by 0.95375^2."""
    pose = place_board(SPEC, 0.6)
    bent = Intrinsics(320, 240, 300.0, 300.0, 160.0, 120.0, d=(-1.0, 0.0, 0.0, 0.0, 0.0))
    mask = board_mask(SPEC, bent, pose)
    ys, xs = np.nonzero(mask)
    assert xs.min() == pytest.approx(160 - 50.07, abs=0.8) and xs.max() == pytest.approx(160 + 50.07, abs=0.8)
    assert ys.min() == pytest.approx(120 - 37.5 * 0.95375, abs=0.8)
    assert mask.sum() == pytest.approx(105 * 75 * 0.95375**2, rel=0.03)


@pytest.mark.parametrize("intr", [PLAIN, TRUE], ids=["pinhole", "distorted"])
def test_expected_plane_depth_puts_every_pixel_on_the_board(intr):
    pose = place_board(SPEC, 0.55, tilt_x_deg=25, tilt_y_deg=-20)
    mask = board_mask(SPEC, intr, pose)
    z = expected_plane_depth(intr, pose, mask)
    v, u = np.nonzero(mask)
    assert z.shape == (mask.sum(),) and z.dtype == np.float64
    # back to 3D with the camera's own model, then into the board frame: on the board, z = 0
    rays = cv2.undistortPoints(np.stack([u, v], 1).astype(np.float64).reshape(-1, 1, 2), intr.k, intr.dist_coeffs)
    pts = np.column_stack([rays.reshape(-1, 2), np.ones(len(u))]) * z[:, None]
    board = (pts - pose.translation) @ pose.rotation  # R^T (p - t)
    assert np.abs(board[:, 2]).max() < 1e-6
    assert np.all(
        (board[:, 0] > 0) & (board[:, 0] < SPEC.size_m[0]) & (board[:, 1] > 0) & (board[:, 1] < SPEC.size_m[1])
    )


def plane_depth_mm(intr, pose, bias):
    """Sensor depth of the board plane (pinhole rays), scaled by 1 + bias, everywhere on the board."""
    mask = board_mask(SPEC, intr, pose, inset_squares=0.0)
    v, u = np.nonzero(mask)
    rays = np.column_stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones(len(u))])
    n = pose.rotation[:, 2]
    depth = np.zeros((intr.height, intr.width), np.uint16)
    depth[v, u] = np.round((n @ pose.translation) / (rays @ n) * (1 + bias) * 1000)
    return depth


@pytest.mark.parametrize("bias", [0.02, -0.01])
def test_depth_check_reports_the_bias(bias):
    pose = place_board(SPEC, 0.6, tilt_x_deg=15)
    depth = plane_depth_mm(PLAIN, pose, bias)
    check = verify_depth(depth, PLAIN, pose, SPEC)
    mask = board_mask(SPEC, PLAIN, pose)
    z = expected_plane_depth(PLAIN, pose, mask)
    assert check.success and check.pixels == int(mask.sum())
    assert check.board_distance_m == pytest.approx(float(np.median(z)))
    assert check.bias_percent == pytest.approx(bias * 100, abs=0.05)
    assert check.bias_mm == pytest.approx(bias * np.median(z) * 1000, abs=0.5)
    assert 0 < check.spread_mm < 2 * abs(bias) * 0.2 * 1000 + 1  # the bias grows with depth over the tilted board
    # a scaled plane is still a plane: only the millimetre rounding is left
    assert check.plane_residual_mm < 0.5
    assert check.message == (
        f"bias {check.bias_mm:+.1f} mm ({check.bias_percent:+.2f} %) at {check.board_distance_m:.2f} m over "
        f"{check.pixels} px"
    )
    assert check.to_dict() == {
        "success": True,
        "message": check.message,
        "bias_mm": check.bias_mm,
        "bias_percent": check.bias_percent,
        "spread_mm": check.spread_mm,
        "plane_residual_mm": check.plane_residual_mm,
        "pixels": check.pixels,
        "board_distance_m": check.board_distance_m,
    }


def test_depth_check_spread_and_plane_residual_of_noisy_depth():
    """Gaussian noise of 3 mm on a frontal board at 0.6 m (plus the 0.29 mm of millimetre rounding): the
    scaled MAD and the RMS distance to the fitted plane both estimate it; the bias stays 0."""
    pose = place_board(SPEC, 0.6)
    depth = plane_depth_mm(PLAIN, pose, 0.0)
    noise = np.random.default_rng(4).normal(0, 3.0, depth.shape)
    noisy_depth = np.where(depth > 0, np.round(depth + noise), 0).astype(np.uint16)
    check = verify_depth(noisy_depth, PLAIN, pose, SPEC)
    assert check.board_distance_m == pytest.approx(0.6)
    assert check.bias_mm == pytest.approx(0.0, abs=0.2)
    sigma = math.hypot(3.0, 1 / math.sqrt(12))
    assert check.spread_mm == pytest.approx(sigma, rel=0.06)
    assert check.plane_residual_mm == pytest.approx(sigma, rel=0.06)


def test_depth_check_needs_enough_pixels_and_the_camera_size():
    pose = place_board(SPEC, 0.6)
    depth = plane_depth_mm(PLAIN, pose, 0.0)
    check = verify_depth(depth, PLAIN, pose, SPEC, min_pixels=int(board_mask(SPEC, PLAIN, pose).sum()) + 1)
    n = int(board_mask(SPEC, PLAIN, pose).sum())
    assert not check.success and check.pixels == n
    assert check.message == f"only {n} board pixels have depth (need {n + 1})"
    assert all(math.isnan(getattr(check, k)) for k in ("bias_mm", "bias_percent", "spread_mm", "plane_residual_mm"))
    assert math.isnan(check.board_distance_m)
    assert verify_depth(depth, PLAIN, pose, SPEC, min_pixels=n).success
    holes = depth.copy()
    holes[:, ::2] = 0  # half the board without depth: counted out
    assert verify_depth(holes, PLAIN, pose, SPEC).pixels == pytest.approx(n / 2, abs=80)
    default = verify_depth(np.zeros_like(depth), PLAIN, pose, SPEC)
    assert default.message == "only 0 board pixels have depth (need 500)"
    with pytest.raises(CalibrationError, match=r"^depth is 160x120 but the camera is 320x240: use depth aligned"):
        verify_depth(depth[:120, :160], PLAIN, pose, SPEC)


# --- the calibration file ----------------------------------------------------------------------------------


def test_calibration_document_replaces_one_section():
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    doc = calibration_document(None, "intrinsics", {"rms_px": 0.1}, camera="cam")
    after = dt.datetime.now(dt.timezone.utc)
    assert set(doc) == {"schema_version", "camera", "updated_utc", "intrinsics"}
    assert doc["schema_version"] == solver.SCHEMA_VERSION == 1 and doc["camera"] == "cam"
    stamp = dt.datetime.fromisoformat(doc["updated_utc"])
    assert stamp.tzinfo is not None and stamp.utcoffset() == dt.timedelta(0) and before <= stamp <= after
    assert stamp.microsecond == 0 and doc["updated_utc"].endswith("+00:00")
    assert doc["intrinsics"] == {"created_utc": doc["updated_utc"], "rms_px": 0.1}
    existing = {"schema_version": 0, "camera": "old", "intrinsics": {"x": 1}, "stereo": {"y": 2}}
    doc = calibration_document(existing, "stereo", {"y": 3}, camera="new")
    assert doc["intrinsics"] == {"x": 1} and doc["stereo"]["y"] == 3 and doc["camera"] == "new"
    assert doc["schema_version"] == 1 and existing["stereo"] == {"y": 2}  # the input is not changed
