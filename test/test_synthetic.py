"""Known-answer tests of the synthetic RGB-D scene."""

import numpy as np
import open3d as o3d
import pytest

from depth_annotation.common import (
    LABEL_IDS,
    MIN_RANGE_M,
    DepthNoiseModel,
    Intrinsics,
    SyntheticScene,
    default_intrinsics,
    look_at,
    orbit_pose,
)

INTR = Intrinsics(320, 240, 300.0, 300.0, 160.0, 120.0)


@pytest.fixture(scope="module")
def scene():
    return SyntheticScene(seed=3)


def top_down(height: float, x: float = 0.0, y: float = 0.0):
    """Camera `height` metres above the table top looking straight down."""
    return look_at(np.array([x, y, height]), np.array([x, y, 0.0]), up=np.array([0.0, 1.0, 0.0]))


def test_plane_at_z_renders_depth_z_within_noise_model():
    scene = SyntheticScene(seed=3)
    z = 1.0
    frame = scene.render(INTR, top_down(z), frame_seed=1)
    table = (frame.labels == LABEL_IDS["table_surface"]) & (frame.depth_mm > 0)
    assert table.mean() > 0.4  # most of the view is bare table top
    gt = frame.depth_gt_m[table]
    assert np.allclose(gt, z, atol=1e-4)  # a plane facing the camera: depth is Z everywhere
    err = frame.depth_mm[table].astype(float) / 1000.0 - z
    sigma = scene.noise.sigma(z)
    assert abs(err.mean()) < 0.2 * sigma + 0.0005  # unbiased up to mm rounding
    assert 0.7 * sigma < err.std() < 1.3 * sigma + 0.0003  # the spread the model promises
    assert np.all(np.abs(err) < 6 * sigma + 0.0005)


def test_noise_grows_with_z_squared():
    scene = SyntheticScene(seed=3, noise=DepthNoiseModel(sigma_at_1m=0.004, edge_dropout=0.0))
    stds = []
    for z in (0.6, 1.2):
        f = scene.render(INTR, top_down(z), frame_seed=2)
        m = (f.labels == LABEL_IDS["table_surface"]) & (f.depth_mm > 0)
        stds.append(np.std(f.depth_mm[m] / 1000.0 - f.depth_gt_m[m]))
    assert stds[1] / stds[0] == pytest.approx(4.0, rel=0.15)


def test_backprojected_object_pixels_land_on_that_object(scene):
    frame = scene.render(default_intrinsics(), orbit_pose(0.0))
    cam_to_world = frame.world_to_camera.inverse()
    for name in ("mug_target", "box", "gripper"):
        idx = scene.object_index(name)
        v, u = np.nonzero(frame.instances == idx + 1)
        assert u.size > 50, name
        pick = np.random.default_rng(0).choice(u.size, 40, replace=False)
        pts_cam = frame.intrinsics.backproject(u[pick], v[pick], frame.depth_gt_m[v[pick], u[pick]])
        pts_world = cam_to_world.apply(pts_cam).astype(np.float32)
        single = o3d.t.geometry.RaycastingScene()
        single.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(scene.objects[idx].mesh))
        dist = single.compute_distance(o3d.core.Tensor(pts_world)).numpy()
        assert dist.max() < 1e-3, f"{name}: {dist.max()} m from its surface"
        # and the sensor depth there is the noisy version of the same surface
        d = frame.depth_mm[v[pick], u[pick]]
        ok = d > 0
        assert np.all(np.abs(d[ok] / 1000.0 - frame.depth_gt_m[v[pick], u[pick]][ok]) < 0.02)


def test_reflective_and_transparent_objects_are_void(scene):
    frame = scene.render(default_intrinsics(), orbit_pose(0.0))
    for name in ("metal_box", "glass"):
        mask = frame.instances == scene.object_index(name) + 1
        assert mask.sum() > 100, name
        assert np.all(frame.depth_mm[mask] == 0)
        assert np.all(frame.annotation_labels()[mask] == LABEL_IDS["void"])
        assert np.all(frame.labels[mask] == LABEL_IDS["distractor_object"])  # ground truth keeps the class
    assert (frame.depth_mm > 0).mean() > 0.85  # still a good tabletop frame overall


def test_nothing_closer_than_minimum_range(scene):
    frame = scene.render(INTR, top_down(0.2, x=-0.45, y=-0.3))
    assert np.nanmin(frame.depth_gt_m) < MIN_RANGE_M
    assert np.all(frame.depth_mm[frame.depth_gt_m < MIN_RANGE_M] == 0)


def test_depth_edges_drop_out(scene):
    frame = scene.render(default_intrinsics(), orbit_pose(0.0))
    gt = np.nan_to_num(frame.depth_gt_m, nan=10.0)
    edge = np.zeros(gt.shape, bool)
    edge[:, :-1] |= (gt[:, 1:] - gt[:, :-1]) > 0.03
    edge[:, 1:] |= (gt[:, :-1] - gt[:, 1:]) > 0.03
    solid = np.isin(frame.labels, [LABEL_IDS["target_object"], LABEL_IDS["table_surface"]])
    drop_at_edges = (frame.depth_mm[edge & solid] == 0).mean()
    assert 0.3 < drop_at_edges < 0.8  # edge_dropout = 0.5


def test_all_taxonomy_classes_present(scene):
    frame = scene.render(default_intrinsics(), orbit_pose(0.0))
    present = set(np.unique(frame.annotation_labels()).tolist())
    assert present == set(LABEL_IDS.values())


def test_mug_keypoints_project_onto_the_mug(scene):
    frame = scene.render(default_intrinsics(), orbit_pose(0.0))
    kp = frame.keypoints["mug_target"]
    assert set(kp) == {"handle_top", "handle_bottom", "rim_center", "base_center"}
    assert np.linalg.norm(kp["rim_center"] - kp["base_center"]) == pytest.approx(0.10, abs=1e-9)
    u, v = frame.intrinsics.project(kp["rim_center"][None])[0]
    mug = frame.instances == scene.object_index("mug_target") + 1
    ys, xs = np.nonzero(mug)
    assert xs.min() - 2 <= u <= xs.max() + 2 and ys.min() - 2 <= v <= ys.max() + 2


def test_deterministic_by_seed_and_frame_seed():
    a = SyntheticScene(seed=5).render(INTR, orbit_pose(1.0), frame_seed=4)
    b = SyntheticScene(seed=5).render(INTR, orbit_pose(1.0), frame_seed=4)
    c = SyntheticScene(seed=5).render(INTR, orbit_pose(1.0), frame_seed=5)
    d = SyntheticScene(seed=6).render(INTR, orbit_pose(1.0), frame_seed=4)
    assert np.array_equal(a.depth_mm, b.depth_mm) and np.array_equal(a.color, b.color)
    assert not np.array_equal(a.depth_mm, c.depth_mm)  # noise differs per frame
    assert np.array_equal(a.depth_gt_m, c.depth_gt_m, equal_nan=True)  # geometry does not
    assert not np.array_equal(a.labels, d.labels)  # another layout


def test_trajectory_is_smooth():
    ts = np.arange(0, 12, 1 / 30)
    eyes = np.array([orbit_pose(t).inverse().translation for t in ts])
    step = np.linalg.norm(np.diff(eyes, axis=0), axis=1)
    assert step.max() < 0.01  # < 1 cm per frame at 30 fps
    accel = np.linalg.norm(np.diff(eyes, 2, axis=0), axis=1)
    assert accel.max() < 1e-3
