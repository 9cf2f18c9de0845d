"""Calibration math on rendered boards with known intrinsics, distortion, baseline and depth bias."""

import cv2
import numpy as np
import pytest

from depth_annotation.calibration import (
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
    assert got.d[0] == pytest.approx(TRUE.d[0], abs=0.02)


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
