"""CalibrationSession without ROS: rendered boards with known intrinsics, distortion, baseline, depth and scale."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import pytest

from depth_annotation.calibration import (
    BoardSpec,
    CalibrationSession,
    SessionConfig,
    board_mask,
    expected_plane_depth,
    render_board,
    varied_board_poses,
)
from depth_annotation.common import Extrinsics, Intrinsics, mad_sigma, rotation_from_euler_xyz

TRUE = Intrinsics(640, 480, 600.0, 604.0, 322.5, 237.8, d=(-0.13, 0.07, 0.0012, -0.0008, -0.02))
SPEC = BoardSpec()
S = 1_000_000_000  # one second in ns
MS = 1_000_000


@lru_cache(maxsize=4)
def rendered(n: int, seed: int, intr: Intrinsics = TRUE) -> tuple[tuple[np.ndarray, Extrinsics], ...]:
    """(image, board pose) of `n` varied views, rendered once per module."""
    poses = varied_board_poses(SPEC, intr, n, seed=seed)
    return tuple(
        (render_board(SPEC, intr, p, noise_sigma=1.0, rng=np.random.default_rng(i)).image, p)
        for i, p in enumerate(poses)
    )


def distortion_field_error_px(got: Intrinsics, true: Intrinsics, inset: float = 0.15) -> float:
    """Largest pixel difference between two distortion models (both with the true K) over the image less
    an `inset` border: where the views put corners (k1, k2, k3 trade off outside it)."""
    w, h = true.width - 1, true.height - 1
    u, v = np.meshgrid(np.linspace(inset * w, (1 - inset) * w, 33), np.linspace(inset * h, (1 - inset) * h, 25))
    px = np.stack([u.ravel(), v.ravel()], axis=1).reshape(-1, 1, 2)
    rays = cv2.undistortPoints(px, true.k, true.dist_coeffs).reshape(-1, 2)
    pts = np.column_stack([rays, np.ones(len(rays))])
    a, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), true.k, np.asarray(got.d))
    return float(np.abs(a.reshape(-1, 2) - px.reshape(-1, 2)).max())


def session(**kwargs) -> CalibrationSession:
    return CalibrationSession(SessionConfig(spec=SPEC, **kwargs))


def test_views_kept_and_intrinsics_recovered():
    s = session(min_views=18)
    for i, (image, _) in enumerate(rendered(24, 1)):
        s.add_image(S + i * 100 * MS, image)
    assert len(s.views) >= 18 and len({v.stamp_ns for v in s.views}) == len(s.views)
    r = s.calibrate()
    assert r.success, r.message
    assert r.views_used == len(s.views) and r.image_size == (640, 480)
    for name in ("fx", "fy", "cx", "cy"):
        assert getattr(r.intrinsics, name) == pytest.approx(getattr(TRUE, name), rel=0.005), name
    assert r.intrinsics.d[0] == pytest.approx(TRUE.d[0], abs=0.01)
    assert np.asarray(r.intrinsics.d[2:4]) == pytest.approx(np.asarray(TRUE.d[2:4]), abs=5e-4)  # p1, p2
    assert distortion_field_error_px(r.intrinsics, TRUE) < 0.3  # the whole vector: the lens model it makes
    assert s.intrinsics == r.intrinsics  # board poses use the calibration from now on
    s.reset()
    assert not s.views and not s.calibrate().success and s.intrinsics == r.intrinsics


def test_detection_rate_follows_image_stamps():
    s = session(detect_period_ns=200 * MS)
    image = rendered(1, 2)[0][0]
    detected = [s.add_image(S + i * 100 * MS, image) is not None for i in range(6)]
    assert detected == [True, False, True, False, True, False]
    assert s.add_image(S, image) is not None  # stamps went back (a bag replayed again): detect again


def test_capture_view_needs_an_image_and_one_size():
    s = session()
    assert s.capture_view().message == "no image received yet"
    image = rendered(1, 2)[0][0]
    s.add_image(S, image)
    s.add_image(2 * S, image[:240, :320].copy())
    refused = s.capture_view()
    assert not refused.success and "differs from the kept views" in refused.message


def _stereo_scene():
    left = Intrinsics(640, 480, 600.0, 600.0, 320.0, 240.0, d=(-0.05, 0.01, 0, 0, 0))
    right = Intrinsics(640, 480, 610.0, 609.0, 318.0, 242.0, d=(-0.04, 0.01, 0, 0, 0))
    true = Extrinsics(
        rotation_from_euler_xyz(np.radians(0.4), np.radians(-1.2), np.radians(0.3)),
        np.array([-0.055, 0.0012, 0.0008]),
        "left",
        "right",
    )
    frames = []
    for i, pose in enumerate(varied_board_poses(SPEC, left, 12, seed=7, distance_m=(0.45, 0.8), margin_px=60)):
        vl = render_board(SPEC, left, pose, noise_sigma=1.0, rng=np.random.default_rng(i))
        vr = render_board(SPEC, right, pose.then(true), noise_sigma=1.0, rng=np.random.default_rng(100 + i))
        frames.append((vl.image, vr.image))
    return left, right, true, frames


def test_stereo_pairs_matched_by_stamp_in_either_order():
    left, right, true, frames = _stereo_scene()
    s = session(stereo_tolerance_ns=5 * MS, min_view_distance=0.0)
    s.set_camera_info(left)
    s.set_right_camera_info(right)
    for i, (img_l, img_r) in enumerate(frames):
        t = S + i * 200 * MS
        if i % 2:  # right first, 3 ms later than the left: within tolerance
            s.add_right_image(t + 3 * MS, img_r)
            s.add_image(t, img_l)
        else:
            s.add_image(t, img_l)
            s.add_right_image(t - 3 * MS, img_r)
    assert [p.left_stamp_ns for p in s.pairs] == [S + i * 200 * MS for i in range(12)]
    assert [p.right_stamp_ns - p.left_stamp_ns for p in s.pairs] == [3 * MS if i % 2 else -3 * MS for i in range(12)]
    s.add_right_image(S + 11 * 200 * MS, frames[11][1])  # the last left image is paired already
    s.add_right_image(S + 20 * S, frames[0][1])
    s.add_image(S + 20 * S + 6 * MS, frames[0][0])  # 6 ms apart: outside the tolerance
    assert len(s.pairs) == 12
    r = s.calibrate_stereo(min_pairs=10)
    assert r.success, r.message
    assert r.baseline_m == pytest.approx(np.linalg.norm(true.translation), abs=0.001)


def _depth_for(pose, bias):
    mask = board_mask(SPEC, TRUE, pose, inset_squares=0.0)
    depth = np.zeros((480, 640), np.uint16)
    depth[mask] = np.round(expected_plane_depth(TRUE, pose, mask) * (1 + bias) * 1000).astype(np.uint16)
    return depth


def test_depth_matched_to_the_board_pose_of_the_same_stamp():
    s = session()
    assert s.verify_depth().message.startswith("no intrinsics yet")
    s.set_camera_info(TRUE)
    views = rendered(6, 3)
    for i, (image, pose) in enumerate(views[:5]):
        t = S + i * 100 * MS
        bias = 0.5 if i == 2 else 0.02  # one frame far off (a hand over the board): the median ignores it
        if i % 2:
            s.add_depth(t, _depth_for(pose, bias))
            s.add_image(t, image)
        else:
            s.add_image(t, image)
            s.add_depth(t, _depth_for(pose, bias))
    image, pose = views[5]
    s.add_image(S + S, image)
    s.add_depth(S + S + 1, _depth_for(pose, 0.02))  # 1 ns off: not the same frame
    summary = s.verify_depth(frames=10)
    assert summary.success, summary.message
    assert summary.frames_used == 5
    assert summary.bias_percent == pytest.approx(2.0, abs=0.2)
    assert summary.to_dict()["frames_used"] == 5


def test_mono_scale_and_its_spread_over_frames():
    """Each board pose is seen twice, with scales 1.25 (1 + e) and 1.25 (1 - e) (shift -0.125): the pooled
    fit is the true one and the spread is the scaled MAD of the known per-frame scales."""
    s = session()
    s.set_camera_info(TRUE)
    scales = []
    for i, (image, pose) in enumerate(rendered(4, 4)):
        for sign in (1, -1):
            t = S + (2 * i + (sign < 0)) * 100 * MS
            a = 1.25 * (1 + sign * (0.01, 0.02, 0.015, 0.005)[i])
            scales.append(a)
            mask = board_mask(SPEC, TRUE, pose, inset_squares=0.0)
            rel = np.full((480, 640), np.nan, np.float32)
            rel[mask] = ((1.0 / expected_plane_depth(TRUE, pose, mask) + 0.125) / a).astype(np.float32)
            s.add_relative(t, rel)
            s.add_image(t, image)
    assert not s.calibrate_mono_scale(min_frames=9).success
    m = s.calibrate_mono_scale(min_frames=8)
    assert m.success, m.message
    assert m.frames_used == 8
    assert m.scale == pytest.approx(1.25, rel=0.01) and m.shift == pytest.approx(-0.125, abs=0.01)
    expected_spread = mad_sigma(scales, 1.25) / 1.25  # 1.4826 x median |e| = 1.4826 x 1.25 %
    assert expected_spread == pytest.approx(0.01853, abs=1e-4)
    assert m.scale_spread == pytest.approx(expected_spread, abs=0.002)  # a plain std would be 0.0137
