"""CalibrationSession without ROS: rendered boards with known intrinsics, distortion, baseline, depth and scale."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import pytest

from depth_annotation.calibration import (
    BoardSpec,
    CalibrationGates,
    CalibrationSession,
    SessionConfig,
    ViewParams,
    board_mask,
    coverage_of,
    expected_plane_depth,
    place_board,
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


# --- one frame, one view ---------------------------------------------------------------------------


def test_one_frame_is_one_view_however_often_it_comes():
    s = session(min_view_distance=10.0)  # the selector keeps the first view only: capture_view adds others
    (a, _), (b, _), (c, _) = rendered(3, 6)
    s.add_image(1 * S, a)
    assert [v.stamp_ns for v in s.views] == [1 * S]
    s.add_image(1 * S, a)  # the same message again
    assert len(s.views) == 1 and "is view 0 already" in s.status_text
    refused = s.capture_view()
    assert not refused.success and "is view 0 already" in refused.message
    again = s.capture_view()
    assert not again.success and "no new image since the last capture_view" in again.message
    s.add_image(2 * S, a.copy())  # the same picture under a new stamp (a stale frame sent again)
    assert len(s.views) == 1 and "the same image as view 0" in s.status_text
    stale = s.capture_view()
    assert not stale.success and "the same image as view 0" in stale.message
    s.add_image(3 * S, b)
    s.add_image(4 * S, c)
    assert len(s.views) == 1  # both too similar for the selector
    forced = s.capture_view()  # the newest image, c, on request
    assert forced.success and forced.views == 2
    assert not s.capture_view().success  # and only once
    assert [v.stamp_ns for v in s.views] == [1 * S, 4 * S]
    s.add_image(5 * S, b)
    assert s.capture_view().success
    r = s.calibrate(min_views=3, force=True)
    assert r.views_used == 3 and r.view_stamps_ns == [1 * S, 4 * S, 5 * S]
    assert r.views_used == len(s.views) == len(r.per_view_error_px) == len(set(r.view_stamps_ns))
    assert r.view_stamps_ns == [v.stamp_ns for v in s.views]


def test_a_stereo_pair_is_kept_once():
    *_, frames = _stereo_scene()
    s = session(min_view_distance=0.0)
    (img_l, img_r), (img_l2, img_r2) = frames[:2]
    for _ in range(2):  # both images sent twice with the same stamps
        s.add_image(S, img_l)
        s.add_right_image(S, img_r)
    s.add_image(2 * S, img_l.copy())  # the same left picture under a new stamp
    s.add_right_image(2 * S, img_r)
    s.add_image(3 * S, img_l2)
    s.add_right_image(3 * S, img_r2)
    assert [p.left_stamp_ns for p in s.pairs] == [S, 3 * S]


# --- gates -----------------------------------------------------------------------------------------


def quadrant_poses(intr: Intrinsics, n: int, seed: int) -> list[Extrinsics]:
    """`n` board poses whose whole outline stays in the image's top-left quadrant."""
    rng = np.random.default_rng(seed)
    w, h = SPEC.size_m
    outline = np.array([[0, 0, 0], [w, 0, 0], [w, h, 0], [0, h, 0]], np.float64)
    poses: list[Extrinsics] = []
    while len(poses) < n:
        dist = rng.uniform(0.75, 1.0)
        u, v = rng.uniform(0.12, 0.38) * intr.width, rng.uniform(0.12, 0.38) * intr.height
        pose = place_board(
            SPEC,
            dist,
            tilt_x_deg=rng.uniform(-30, 30),
            tilt_y_deg=rng.uniform(-30, 30),
            roll_deg=rng.uniform(-20, 20),
            offset_m=((u - intr.cx) / intr.fx * dist, (v - intr.cy) / intr.fy * dist),
        )
        px, _ = cv2.projectPoints(outline, cv2.Rodrigues(pose.rotation)[0], pose.translation, intr.k, intr.dist_coeffs)
        px = px.reshape(-1, 2)
        if (px > 5).all() and (px[:, 0] < intr.width / 2).all() and (px[:, 1] < intr.height / 2).all():
            poses.append(pose)
    return poses


def test_coverage_counts_as_camera_calibration_does():
    """x and y: the span of the board centre over 0.7 of the image; size and skew: the largest over 0.4 and 0.5."""
    views = [ViewParams(0.2, 0.3, 0.30, 0.10), ViewParams(0.6, 0.5, 0.35, 0.40), ViewParams(0.4, 0.45, 0.2, 0.3)]
    cov = coverage_of(views)
    assert cov == pytest.approx({"x": 0.4 / 0.7, "y": 0.2 / 0.7, "size": 0.35 / 0.4, "skew": 0.4 / 0.5})
    assert coverage_of([ViewParams(0.1, 0.1, 0.9, 0.9), ViewParams(0.95, 0.95, 0.1, 0.1)]) == dict.fromkeys(
        ("x", "y", "size", "skew"), 1.0
    )
    assert coverage_of([]) == dict.fromkeys(("x", "y", "size", "skew"), 0.0)
    failed = CalibrationGates().failures(cov, {"fx": 1.0, "fy": 1.0, "cx": 2.0, "cy": 1.0}, TRUE)
    assert failed == ["coverage y 0.29 < 0.40", "cx uncertain (std 2.00 px = 0.62 % > 0.50 %)"]


def test_gates_refuse_views_in_one_quadrant_and_force_overrides():
    s = session(min_view_distance=0.0)
    for i, pose in enumerate(quadrant_poses(TRUE, 6, seed=2)):
        s.add_image((i + 1) * S, render_board(SPEC, TRUE, pose, noise_sigma=1.0, rng=np.random.default_rng(i)).image)
    assert len(s.views) == 6
    refused = s.calibrate(min_views=6)
    assert not refused.success and refused.message.startswith("refused:")
    assert refused.coverage["x"] < 0.4 and refused.coverage["y"] < 0.4
    assert "coverage x" in refused.message and "coverage y" in refused.message
    uncertain = [g for g in refused.failed_gates if "uncertain" in g]
    assert uncertain and any(g.startswith(("cx ", "cy ")) for g in uncertain), refused.failed_gates
    for g in uncertain:  # the named parameter's std really is above 0.5 % of its value
        name = g.split()[0]
        assert refused.std_dev[name] > 0.005 * getattr(refused.intrinsics, name)
    assert s.intrinsics is None  # a refused calibration is not adopted
    forced = s.calibrate(min_views=6, force=True)
    assert forced.success and forced.forced and forced.failed_gates == refused.failed_gates
    doc = forced.to_dict()
    assert doc["forced"] is True and doc["failed_gates"] == refused.failed_gates
    assert doc["std_dev"]["fx"] == pytest.approx(forced.std_dev["fx"]) and len(doc["std_dev"]["d"]) == 5
    assert s.intrinsics == forced.intrinsics


def test_gates_pass_25_well_spread_views():
    s = session(min_view_distance=0.0)
    for i, (image, _) in enumerate(rendered(24, 1)):
        s.add_image((i + 1) * S, image)
    r = s.calibrate(min_views=20)
    assert r.success and r.failed_gates == [] and not r.forced, r.message
    assert min(r.coverage.values()) >= 0.5 and r.corner_coverage > 0.4
    for name in ("fx", "fy", "cx", "cy"):
        assert 0 < r.std_dev[name] < 0.005 * getattr(r.intrinsics, name)
        # the reported uncertainty is of the size of the real error (rendered truth)
        assert abs(getattr(r.intrinsics, name) - getattr(TRUE, name)) < 4 * r.std_dev[name], name


# --- monocular scale from a known size -------------------------------------------------------------


def _plane_scene():
    """A plane tilted 40 degrees across the image; relative disparity with scale 1.25, shift -0.125."""
    pose = place_board(SPEC, 0.7, tilt_y_deg=40.0, tilt_x_deg=-15.0)
    mask = np.ones((480, 640), bool)
    z = expected_plane_depth(TRUE, pose, mask).reshape(480, 640)
    rel = ((1.0 / z + 0.125) / 1.25).astype(np.float32)
    return z, rel


def _point(z, u, v):
    """The 3-D point seen at pixel (u, v) on the plane (ray through the undistorted pixel times Z)."""
    ray = cv2.undistortPoints(np.array([[[u, v]]], np.float64), TRUE.k, TRUE.dist_coeffs).ravel()
    return np.array([ray[0], ray[1], 1.0]) * z[v, u]


def test_mono_scale_from_point_pairs_a_known_distance_apart():
    z, rel = _plane_scene()
    s = session()
    s.set_camera_info(TRUE)
    s.add_relative(S, rel)
    pairs = [(100, 120, 540, 130), (80, 400, 560, 380), (320, 60, 330, 420), (150, 240, 600, 250)]
    dist = [float(np.linalg.norm(_point(z, u1, v1) - _point(z, u2, v2))) for u1, v1, u2, v2 in pairs]
    m = s.calibrate_mono_scale(reference="points", points_px=np.array(pairs, float), distances_m=np.array(dist))
    assert m.success, m.message
    assert m.fit.shift_fitted and m.pairs_used == 4 and m.reference == "points"
    assert m.scale == pytest.approx(1.25, rel=1e-3) and m.shift == pytest.approx(-0.125, abs=1e-3)
    # one pair at one depth (a plane facing the camera at 0.8 m) fixes only the depth there:
    # the shift is held at 0 and the message says so
    flat = place_board(SPEC, 0.8)
    z = expected_plane_depth(TRUE, flat, np.ones((480, 640), bool)).reshape(480, 640)
    s.add_relative(2 * S, ((1.0 / z + 0.125) / 1.25).astype(np.float32))
    for flat_pairs in ([(200, 200, 440, 260)], [(200, 200, 440, 260), (100, 400, 600, 90), (50, 50, 320, 240)]):
        one = s.calibrate_mono_scale(
            reference="points",
            points_px=np.array(flat_pairs, float),
            distances_m=np.array([np.linalg.norm(_point(z, a, b) - _point(z, c, d)) for a, b, c, d in flat_pairs]),
        )
        assert one.success and not one.fit.shift_fitted and one.shift == 0.0, one.message
        assert "shift held at 0" in one.message
        assert 1.0 / (one.scale * (1.0 / 0.8 + 0.125) / 1.25) == pytest.approx(0.8, rel=1e-6)  # right depth there
    bad = s.calibrate_mono_scale(reference="points", points_px=np.zeros((2, 4)), distances_m=np.ones(3))
    assert not bad.success and "2 point pairs but 3 distances" in bad.message
    assert not s.calibrate_mono_scale(reference="ruler").success


def test_mono_scale_from_the_board_size_without_its_pose():
    s = session()
    s.set_camera_info(TRUE)
    for i, (image, pose) in enumerate(rendered(6, 4)):
        mask = np.ones((480, 640), bool)
        z = expected_plane_depth(TRUE, pose, mask).reshape(480, 640)
        s.add_relative((i + 1) * S, ((1.0 / z + 0.125) / 1.25).astype(np.float32))
        s.add_image((i + 1) * S, image)
    assert not s.calibrate_mono_scale(reference="board_size", min_frames=7).success
    m = s.calibrate_mono_scale(reference="board_size", min_frames=6)
    assert m.success, m.message
    assert m.reference == "board_size" and m.frames_used == 6 and m.pairs_used == 6 * (24 * 23 // 2)
    assert m.scale == pytest.approx(1.25, rel=0.01) and m.shift == pytest.approx(-0.125, abs=0.01)
    assert m.scale_spread < 0.01
    assert m.to_dict()["reference"] == "board_size" and m.to_dict()["shift_fitted"] is True
