"""Training outputs: labelled point clouds, FPS, voxels, the PyTorch dataset, the smoke command.

Known answers come from the synthetic scene (rendered surfaces, labels, world
keypoints and camera poses) and from geometry (a plane of known area, a box
of known voxels), computed without the code under test; Open3D's own
VoxelGrid and nearest-neighbour distances check ours.
"""

from __future__ import annotations

import json
import subprocess

import h5py
import numpy as np
import open3d as o3d
import pytest
import torch
from ros_harness import REPO, VENV_BIN

from depth_annotation.common import SyntheticScene, default_intrinsics, orbit_pose
from depth_annotation.dataset import ExportOptions, export_bags, write_synthetic_bag
from depth_annotation.training import (
    AugmentConfig,
    DepthFrameDataset,
    PointCloudConfig,
    StaleTrainingFileError,
    TrainingDataError,
    VoxelSpec,
    annotate_with_ground_truth,
    backproject,
    dense_grid,
    farthest_point_indices,
    sample_cloud,
    training_loader,
    voxelize,
    write_pointclouds,
)

W, H = 320, 240


def _nearest(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Distance from each point to its nearest target (Open3D's KD-tree, independent of our FPS)."""
    a = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))
    b = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(targets, np.float64)))
    return np.asarray(a.compute_point_cloud_distance(b))


def _min_pairwise(points: np.ndarray) -> float:
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))
    return float(np.min(np.asarray(cloud.compute_nearest_neighbor_distance())))


# --- point clouds ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered():
    intr = default_intrinsics(640, 480)
    scene = SyntheticScene(0)
    frame = scene.render(intr, orbit_pose(2.0), frame_seed=60)
    return scene, frame


def test_points_lie_on_the_rendered_surface_with_their_pixels_label(rendered):
    scene, frame = rendered
    intr = frame.intrinsics
    cloud = backproject(frame.depth_mm, intr, labels=frame.labels, color=frame.color)
    sample = sample_cloud(cloud, 8192, intr)
    # Ground truth of each sampled point's source pixel: the ray-cast surface point, in the camera frame.
    _, _, _, world = scene.raycast(intr, frame.world_to_camera)
    for pts, pix, labels, colors in (
        (cloud.points, cloud.pixels, cloud.labels, cloud.colors),
        (sample.points, sample.pixels, sample.labels, sample.colors),
    ):
        u, v = pix[:, 0], pix[:, 1]
        surface = frame.world_to_camera.apply(world[v, u])
        z = surface[:, 2]
        # Along the pixel's ray the sensor's depth differs from the surface by its noise (sigma = 2 mm Z^2)
        # and the mm rounding; off the ray, not at all.
        along = np.linalg.norm(pts - surface, axis=1) / np.linalg.norm(surface / z[:, None], axis=1)
        assert np.all(along <= 5 * 0.002 * z**2 + 0.0006)
        assert np.array_equal(labels, frame.labels[v, u])
        assert np.array_equal(colors, frame.color[v, u])
    assert len(cloud.points) == np.count_nonzero((frame.depth_mm >= 300) & (frame.depth_mm <= 2000))


def test_fps_gives_exactly_n_points_covering_the_cloud(rendered):
    _, frame = rendered
    intr = frame.intrinsics
    cloud = backproject(frame.depth_mm, intr, labels=frame.labels)
    for n in (4096, 8192):
        sample = sample_cloud(cloud, n, intr)
        assert sample.points.shape == (n, 3) and sample.labels.shape == (n,) and sample.num_valid == n
        assert len(np.unique(sample.pixels, axis=0)) == n  # n distinct source pixels
        assert 0 < sample.presample_voxel_m < 0.02
        # FPS bound (module docstring): cover radius <= min sample spacing + the pre-sample's voxel diagonal.
        cover = float(np.max(_nearest(cloud.points, sample.points)))
        assert cover <= _min_pairwise(sample.points) + np.sqrt(3) * sample.presample_voxel_m + 1e-6


def test_fps_on_a_unit_square_meets_the_packing_bound():
    # 250k points on a 1 m x 1 m square. FPS samples are pairwise >= r apart (r: the cover radius), so
    # n disks of radius r/2 fit in the square grown by r/2 on every side: n pi r^2 / 4 <= (1 + r)^2,
    # i.e. r <= 1 / (sqrt(n pi) / 2 - 1). Random sampling of 4096 points misses it (about 0.026 m).
    g = (np.arange(500) + 0.5) / 500
    square = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    square = np.concatenate([square, np.zeros((len(square), 1))], axis=1)
    n = 4096
    picked = farthest_point_indices(square, n)
    assert len(picked) == n == len(np.unique(picked))
    cover = float(np.max(_nearest(square, square[picked])))
    assert cover <= 1.0 / (np.sqrt(n * np.pi) / 2 - 1)
    assert cover <= _min_pairwise(square[picked]) + 1e-9


def test_fewer_points_than_n_are_all_kept_and_repeated():
    intr = default_intrinsics(64, 48)
    depth = np.zeros((48, 64), np.uint16)
    depth[10:20, 10:20] = 800  # 100 pixels with depth
    cloud = backproject(depth, intr, labels=np.full((48, 64), 3, np.uint8))
    sample = sample_cloud(cloud, 256, intr)
    assert sample.points.shape == (256, 3) and sample.num_valid == 100
    assert len(np.unique(sample.pixels[:100], axis=0)) == 100
    assert np.array_equal(sample.points[100:200], sample.points[:100])
    assert np.all(sample.labels == 3)
    with pytest.raises(TrainingDataError, match="no depth"):
        sample_cloud(backproject(np.zeros((48, 64), np.uint16), intr), 16, intr)


# --- voxels ---------------------------------------------------------------------------------------------


def test_voxel_grid_marks_the_voxels_of_a_known_box():
    spec = VoxelSpec.from_box((-0.2, -0.2, 0.0), (0.2, 0.2, 0.3), 0.005)
    assert spec.shape == (80, 80, 60)
    # A solid box from (0.05, -0.1, 0.02) to (0.1, -0.05, 0.1): voxels i 50..59, j 20..29, k 4..19.
    axes = [np.arange(lo + 0.0025, hi, 0.0025) for lo, hi in ((0.05, 0.1), (-0.1, -0.05), (0.02, 0.1))]
    box = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    labels = np.full(len(box), 2, np.uint8)
    coords, vlabels = voxelize(box, labels, spec)
    expected = {(i, j, k) for i in range(50, 60) for j in range(20, 30) for k in range(4, 20)}
    assert {tuple(c) for c in coords.tolist()} == expected
    assert np.all(vlabels == 2)
    grid = dense_grid(coords, vlabels, spec)
    assert grid.shape == spec.shape and np.count_nonzero(grid) == len(expected)
    assert np.all(grid[50:60, 20:30, 4:20] == 2)


def test_voxels_match_open3ds_voxel_grid_and_vote_labels():
    rng = np.random.default_rng(0)
    spec = VoxelSpec.from_box((-0.3, -0.3, -0.1), (0.3, 0.3, 0.4), 0.005)
    # the surface of a rotated box, partly outside the workspace
    pts = rng.uniform(-0.5, 0.5, (200_000, 3)) * [0.3, 0.2, 0.25]
    face = rng.integers(0, 3, len(pts))
    pts[np.arange(len(pts)), face] = np.sign(rng.standard_normal(len(pts))) * np.array([0.15, 0.1, 0.125])[face]
    c, s = np.cos(0.4), np.sin(0.4)
    pts = pts @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T + [0.2, 0.0, 0.1]
    assert np.any(pts[:, 0] > 0.3)
    coords, _ = voxelize(pts, np.ones(len(pts), np.uint8), spec)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    grid = o3d.geometry.VoxelGrid.create_from_point_cloud_within_bounds(
        cloud, 0.005, np.array(spec.origin_m), np.array(spec.origin_m) + 0.005 * np.array(spec.shape)
    )
    # Open3D keeps points outside the bounds too (indices outside the grid): the box is ours to apply.
    theirs = {
        tuple(v.grid_index) for v in grid.get_voxels() if np.all((v.grid_index >= 0) & (v.grid_index < spec.shape))
    }
    assert {tuple(x) for x in coords.tolist()} == theirs
    # label vote: 3 points of label 2 against 2 of label 5 -> 2; a 2-2 tie between 4 and 1 -> 1
    a = np.array([0.0012, 0.0012, 0.0012])
    b = a + [0.005, 0, 0]
    coords, labels = voxelize(np.array([a, a, a, a, a, b, b, b, b]), np.array([2, 5, 2, 5, 2, 4, 1, 1, 4]), spec)
    assert labels.tolist() == [2, 1] and coords[0].tolist() == [60, 60, 20]


# --- the training file and the dataset -----------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    truth_a = write_synthetic_bag(root / "a", frames=9, width=W, height=H, seed=1)
    truth_b = write_synthetic_bag(root / "b", frames=9, width=W, height=H, seed=2, start_ns=1_800_000_000_000_000_000)
    export_bags(
        [(root / "a", "sceneA"), (root / "b", "sceneB")],
        ExportOptions(out_dir=root / "ds", every_k=4, ratios=(0.5, 0.5, 0.0)),
        progress=False,
    )
    annotated = annotate_with_ground_truth(root / "ds", [truth_a, truth_b])
    report = write_pointclouds(root / "ds", PointCloudConfig(num_points=(1024, 2048)))
    scenes = {"episode_0": SyntheticScene(1), "episode_1": SyntheticScene(2)}
    return root / "ds", {"episode_0": truth_a, "episode_1": truth_b}, annotated, report, scenes


def test_training_file_holds_labelled_clouds_of_every_annotated_frame(dataset):
    ds, truth, annotated, report, _ = dataset
    assert annotated == {"episode_0": [0, 4, 8], "episode_1": [0, 4, 8]}
    assert report.frames == 6 and report.frame_of_voxels == "base"
    with h5py.File(ds / "export" / "dataset.h5") as src, h5py.File(ds / "export" / "training.h5") as f:
        for ep in ("episode_0", "episode_1"):
            assert f[ep]["frame_index"][:].tolist() == [0, 4, 8]
            for n in (1024, 2048):
                c = f[ep][f"pointcloud_{n}"]
                assert c["points_camera"].shape == (3, n, 3) and c["labels"].shape == (3, n)
                for row, frame in enumerate([0, 4, 8]):
                    gt = truth[ep][frame][1]
                    u, v = c["pixels"][row][:, 0], c["pixels"][row][:, 1]
                    assert np.array_equal(c["labels"][row], gt.annotation_labels()[v, u])
                    assert np.array_equal(c["colors"][row], src[ep]["color"][frame][v, u])
                    # base frame: the camera pose of the render (world = table frame)
                    pose = gt.world_to_camera.inverse()
                    np.testing.assert_allclose(c["points_base"][row], pose.apply(c["points_camera"][row]), atol=2e-6)
            vox = f[ep]["voxels"]
            assert vox.attrs["frame"] == "base" and vox.attrs["voxel_size_m"] == 0.005
            offsets = vox["offsets"][:]
            for row in range(3):
                coords = vox["coords"][offsets[row] : offsets[row + 1]]
                labels = vox["labels"][offsets[row] : offsets[row + 1]]
                dense = vox["dense"][row]
                assert np.count_nonzero(dense) == len(coords)
                assert np.array_equal(dense[coords[:, 0], coords[:, 1], coords[:, 2]], labels)


def test_voxels_of_a_frame_are_open3ds_grid_of_its_base_frame_cloud(dataset):
    ds, truth, _, _, _ = dataset
    gt = truth["episode_0"][4][1]
    with h5py.File(ds / "export" / "training.h5") as f:
        vox = f["episode_0"]["voxels"]
        offsets = vox["offsets"][:]
        coords = vox["coords"][offsets[1] : offsets[2]]
        origin, size, shape = vox.attrs["origin_m"], float(vox.attrs["voxel_size_m"]), vox.attrs["shape"]
    z = gt.depth_mm.astype(np.float64) / 1000.0
    keep = (z >= 0.3) & (z <= 2.0)
    rows, cols = np.nonzero(keep)
    cam = gt.intrinsics.backproject(cols, rows, z[rows, cols])
    base = gt.world_to_camera.inverse().apply(cam)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(base))
    grid = o3d.geometry.VoxelGrid.create_from_point_cloud_within_bounds(cloud, size, origin, origin + size * shape)
    # Open3D keeps points outside the bounds too (negative indices): the box is ours to apply.
    theirs = {tuple(v.grid_index) for v in grid.get_voxels() if np.all((v.grid_index >= 0) & (v.grid_index < shape))}
    ours = {tuple(c) for c in coords.tolist()}
    assert len(ours ^ theirs) <= 0.001 * len(theirs)  # float32 vs float64 points at voxel faces only
    assert len(theirs) > 1000


def test_a_batch_without_augmentation_is_the_hdf5_data(dataset):
    ds, truth, _, _, scenes = dataset
    data = DepthFrameDataset(ds, split=None, num_points=2048)
    assert len(data) == 6
    batch = next(iter(training_loader(data, batch_size=6)))
    with h5py.File(ds / "export" / "dataset.h5") as src, h5py.File(ds / "export" / "training.h5") as f:
        for i in range(6):
            ep, frame = f"episode_{int(batch['episode'][i])}", int(batch["frame"][i])
            raw = src[ep]["depth"][frame]
            metres = np.where(raw > 0, np.clip(raw.astype(np.float32) * np.float32(0.001), 0.3, 2.0), 0)
            assert np.array_equal(batch["depth"][i, 0].numpy(), metres)
            assert np.array_equal(batch["valid"][i, 0].numpy(), raw > 0)
            assert np.array_equal(batch["rgb"][i].numpy().transpose(1, 2, 0), src[ep]["color"][frame])
            row = list(src[ep]["segmentation_index"][:]).index(frame)
            assert np.array_equal(batch["segmentation"][i].numpy(), src[ep]["segmentation"][row])
            assert np.array_equal(batch["points"][i].numpy(), f[ep]["pointcloud_2048"]["points_camera"][row])
            assert np.array_equal(batch["point_labels"][i].numpy(), f[ep]["pointcloud_2048"]["labels"][row])
            np.testing.assert_allclose(batch["intrinsics"][i].numpy(), src[ep]["camera_intrinsics"][:])
            # keypoints: the scene's world keypoints, seen through the frame's camera and base transforms
            gt = truth[ep][frame][1]
            scene = scenes[ep]
            names = data.keypoint_names
            world = {(o.name, k): p for o in scene.objects for k, p in o.keypoints_world.items()}
            ids, kp, kp_base = batch["keypoint_ids"][i], batch["keypoints"][i], batch["keypoints_base"][i]
            n = int((ids >= 0).sum())
            assert n == 8 and torch.isnan(kp[n:]).all()
            expected = [(names[int(ids[j])], kp_base[j].numpy()) for j in range(n)]
            for name, xyz in expected:
                candidates = [p for (obj, k), p in world.items() if k == name]
                assert min(np.linalg.norm(xyz - p) for p in candidates) < 1e-5
            np.testing.assert_allclose(
                batch["camera_to_base"][i].numpy(), gt.world_to_camera.inverse().matrix.astype(np.float32), atol=1e-6
            )


def test_augmentation_noise_is_two_millimetres(dataset):
    ds = dataset[0]
    clean = DepthFrameDataset(ds, split=None, num_points=1024)
    noisy = DepthFrameDataset(
        ds, split=None, num_points=1024, augment=AugmentConfig(noise_sigma_m=0.002, dropout_fraction=0.0)
    )
    diffs, point_diffs = [], []
    for i in range(len(clean)):
        a, b = clean[i], noisy[i]
        d0 = a["depth"].numpy()
        inside = a["valid"].numpy() & (d0 > 0.31) & (d0 < 1.99)
        diffs.append((b["depth"].numpy() - d0)[inside])
        point_diffs.append((b["points"] - a["points"]).numpy().ravel())
        assert torch.equal(a["valid"], b["valid"])
    for d in (np.concatenate(diffs), np.concatenate(point_diffs)):
        assert abs(float(np.std(d)) - 0.002) <= 0.0002 and abs(float(np.mean(d))) < 0.0002


def test_augmentation_dropout_covers_the_configured_fraction(dataset):
    ds = dataset[0]
    config = AugmentConfig(noise_sigma_m=0.0, dropout_fraction=0.12, patch_min_px=8, patch_max_px=24)
    clean = DepthFrameDataset(ds, split=None, num_points=1024)
    dropped = DepthFrameDataset(ds, split=None, num_points=1024, augment=config)
    for i in range(len(clean)):
        a, b = clean[i], dropped[i]
        mask = b["dropout"][0].numpy()
        # at least the fraction, over by less than one patch
        assert 0.12 <= mask.mean() < 0.12 + 24 * 24 / (W * H)
        assert np.all(b["depth"][0].numpy()[mask] == 0) and not b["valid"][0].numpy()[mask].any()
        assert np.array_equal(b["depth"][0].numpy()[~mask], a["depth"][0].numpy()[~mask])
        assert torch.equal(a["points"], b["points"])


@pytest.mark.parametrize("start", [None, "spawn"])
def test_two_workers_give_the_same_samples_as_none(dataset, start):
    ds = dataset[0]
    data = DepthFrameDataset(ds, split=None, num_points=1024, augment=AugmentConfig(scale_jitter=0.05), seed=7)

    def run(workers):
        data.set_epoch(3)
        loader = training_loader(
            data, batch_size=2, num_workers=workers, shuffle=True, seed=11, multiprocessing_context=start
        )
        if workers and start:  # the workers really start that way
            assert loader.multiprocessing_context.get_start_method() == start
        return list(loader)

    serial, parallel = run(0), run(2)
    assert len(serial) == len(parallel) == 3
    for a, b in zip(serial, parallel, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, equal_nan=True, msg=key)
    data.set_epoch(4)
    other = list(training_loader(data, batch_size=2, num_workers=0, shuffle=True, seed=11))
    assert not torch.equal(other[0]["depth"], serial[0]["depth"])  # a new epoch, new draws


def test_splits_come_from_dataset_info(dataset):
    ds = dataset[0]
    info = json.loads((ds / "dataset_info.json").read_text())
    assignment = info["splits"]["assignment"]
    assert sorted(assignment.values()) == ["train", "val"]
    for split in ("train", "val"):
        data = DepthFrameDataset(ds, split=split, num_points=1024)
        scene = next(s for s, v in assignment.items() if v == split)
        episode = next(e["episode"] for e in info["episodes"] if e["scene_id"] == scene)
        assert {int(data[i]["episode"]) for i in range(len(data))} == {int(episode.split("_")[1])}
    with pytest.raises(TrainingDataError, match="no annotated frames in split 'test'"):
        DepthFrameDataset(ds, split="test")


def test_the_loader_reads_without_open3d(dataset):
    script = (
        "import sys; sys.modules['open3d'] = None\n"
        "from depth_annotation.training import DepthFrameDataset\n"
        f"d = DepthFrameDataset({str(dataset[0])!r}, split=None)\n"
        "s = d[0]; print(tuple(s['points'].shape), tuple(s['depth'].shape))\n"
    )
    res = subprocess.run([str(VENV_BIN / "python"), "-c", script], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"(2048, 3) (1, {H}, {W})"


def test_a_stale_training_file_is_refused(dataset, tmp_path):
    import shutil

    ds, truth, _, _, _ = dataset
    copy = tmp_path / "ds"
    shutil.copytree(ds, copy)
    annotate_with_ground_truth(copy, [truth["episode_0"], truth["episode_1"]], every=2)
    with pytest.raises(StaleTrainingFileError, match="rerun depth-annotation pointclouds"):
        DepthFrameDataset(copy, split=None, num_points=1024)
    assert len(DepthFrameDataset(copy, split=None, fields=("depth", "segmentation"))) == 10


def test_depth_only_samples_span_every_frame_and_need_no_annotation(tmp_path):
    write_synthetic_bag(tmp_path / "bag", frames=5, width=W, height=H)
    export_bags([(tmp_path / "bag", "s")], ExportOptions(out_dir=tmp_path / "ds", every_k=2), progress=False)
    data = DepthFrameDataset(tmp_path / "ds", split=None)
    assert data.fields == ("depth", "rgb") and len(data) == 5
    assert torch.isnan(data[0]["camera_to_base"]).all()
    with pytest.raises(TrainingDataError, match="import annotations first"):
        DepthFrameDataset(tmp_path / "ds", split=None, fields=("depth", "segmentation"))
    res = subprocess.run(
        [str(VENV_BIN / "depth-annotation"), "pointclouds", "--dataset", str(tmp_path / "ds"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2 and "import annotations first" in res.stderr
    assert not (tmp_path / "ds" / "export" / "training.h5").exists()
    assert not (tmp_path / "ds" / "export" / "training.h5.partial").exists()


def test_cli_pointclouds_and_smoke(dataset, tmp_path):
    import shutil

    import cv2

    ds = tmp_path / "ds"
    shutil.copytree(dataset[0], ds)
    extrinsics = tmp_path / "cam.json"
    extrinsics.write_text(
        json.dumps({"rotation": np.eye(3).tolist(), "translation_m": [0.0, 0.0, 1.0], "source_frame": "camera"})
    )
    res = subprocess.run(
        [
            str(VENV_BIN / "depth-annotation"),
            "pointclouds",
            "--dataset",
            str(ds),
            "--points",
            "512",
            "--camera-to-base",
            str(extrinsics),
            "--sparse-only",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "for 6 annotated frames of 2 episode(s)" in res.stdout
    with h5py.File(ds / "export" / "training.h5") as f:
        c = f["episode_1"]["pointcloud_512"]
        np.testing.assert_allclose(c["points_base"][0], c["points_camera"][0] + [0, 0, 1.0], atol=1e-6)
        assert "dense" not in f["episode_1"]["voxels"]
    res = subprocess.run(
        [str(VENV_BIN / "depth-annotation"), "smoke", "--dataset", str(ds), "--batch-size", "3", "--augment"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    lines = {line.split()[0]: line for line in res.stdout.splitlines() if line and not line.startswith("one batch")}
    assert lines["points"].split()[1:] == ["float32", "(3,", "512,", "3)"]
    assert lines["depth"].split()[1:] == ["float32", "(3,", "1,", f"{H},", f"{W})"]
    assert "dropout" in lines
    png = cv2.imread(str(ds / "smoke.png"))
    assert png.shape == (3 * 240, 4 * 320, 3)  # 3 samples x (RGB, depth, segmentation, cloud)
    assert REPO.exists()


def test_keypoints_are_the_primary_annotators_never_a_models(tmp_path):
    from depth_annotation.training import keypoints_by_frame

    # the import's keypoint rows (issue 16: annotation/keypoints3d.py)
    text = h5py.string_dtype()
    kp_fields = [("frame_index", "<i8"), ("stamp_ns", "<i8"), ("annotator", text), ("name", text), ("u", "<f4")]
    kp_dtype = np.dtype(kp_fields + [("v", "<f4"), ("xyz", "<f4", (3,)), ("valid_pixels", "u1"), ("reason", text)])

    def row(frame, who, name, x):
        return (frame, 0, who, name, 1.0, 2.0, np.array([x, 0.0, 1.0], np.float32), 25, "")

    with h5py.File(tmp_path / "k.h5", "w") as f:
        g = f.create_group("episode_0")
        g.create_dataset("segmentation", data=np.zeros((2, 2, 2), np.uint8))
        g.create_dataset("segmentation_index", data=np.array([3, 5]))
        g.create_dataset("segmentation_source", data=["bob", "alice"], dtype=h5py.string_dtype())
        rows = [
            row(3, "alice", "rim_center", 0.1),
            row(3, "bob", "rim_center", 0.2),  # frame 3's label image is bob's
            row(3, "bob", "base_center", 0.3),
            row(5, "prediction:geo", "rim_center", 0.4),
            row(5, "alice", "handle_top", 0.5),
            row(7, "prediction:geo", "rim_center", 0.6),  # no person: nothing
            row(8, "zoe", "rim_center", 0.7),  # no label image: the first person by name
            row(8, "yves", "nose", 0.8),
        ]
        g.create_dataset("keypoints_3d", data=np.array(rows, kp_dtype))
        names = ["handle_top", "handle_bottom", "rim_center", "base_center"]
        got = keypoints_by_frame(g, names)
    assert sorted(got) == [3, 5, 8]
    assert got[3][0].tolist() == [2, 3] and got[3][1][:, 0].tolist() == pytest.approx([0.2, 0.3])
    assert got[5][0].tolist() == [0] and got[5][1][0, 0] == pytest.approx(0.5)
    assert got[8][0].tolist() == [-1] and got[8][1][0, 0] == pytest.approx(0.8)  # yves < zoe; unknown name: -1
