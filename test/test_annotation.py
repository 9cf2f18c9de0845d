"""The annotation round trip against the synthetic scene's ground truth (known answers).

A synthetic bag is exported by the real exporter; `annotators_export` turns the
rendered ground truth into a Label Studio export (brush RLE encoded by the Label
Studio SDK, keypoint clicks) with controlled mistakes; the import and the
validation must give back what the mistakes imply. Expected values are computed
here from the ground truth and the drawn masks with plain numpy, never by the
code under test.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from depth_annotation.annotation import (
    UNLABELLED,
    AnnotationImportError,
    AnnotatorProfile,
    Keypoint3D,
    LabelStudioCodec,
    PolygonRegion,
    RleRegion,
    ValidationConfigError,
    annotators_export,
    choose_overlap,
    class_iou,
    cohen_kappa,
    config_from_dict,
    dataset_files,
    draw,
    import_export,
    load_tasks,
    load_validation_config,
    mask_depth_outliers,
    match_keypoints,
    surface_distance_mm,
    synthetic_dataset,
    validate_dataset,
)
from depth_annotation.common import LABEL_IDS, DepthNoiseModel, Intrinsics
from depth_annotation.dataset import open_h5

GT, SECOND = AnnotatorProfile(1), 2


@pytest.fixture(scope="module")
def codec():
    with LabelStudioCodec(2) as c:
        yield c


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Six 640x480 frames one second apart along the orbit (handles visible in some), all for two annotators."""
    root = tmp_path_factory.mktemp("annotation")
    dataset, truth, scene = synthetic_dataset(root, frames=6, every_k=1, overlap=1.0, fps=1.0)
    return dataset, truth, scene


def fresh(base, tmp_path):
    """A private copy of the base dataset (imports rewrite its HDF5 file)."""
    dataset, truth, scene = base
    copy = tmp_path / "dataset"
    shutil.copytree(dataset, copy)
    return copy, truth, scene


def round_trip(base, tmp_path, codec, second: AnnotatorProfile | None, **kw):
    dataset, truth, scene = fresh(base, tmp_path)
    tasks = load_tasks(dataset)
    drawn = {}
    annotators = [GT] + ([second] if second else [])
    export = annotators_export(tasks, truth, scene, annotators, codec, assignment="all", drawn_out=drawn, **kw)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    result = import_export(path, dataset_files(dataset), codec=codec)
    return dataset, truth, export, drawn, result


def frame_of(dataset, truth, episode, index):
    with open_h5(dataset / "export" / "dataset.h5") as f:
        stamp = int(f[episode]["timestamps_ns"][index])
        depth = f[episode]["depth"][index]
    return stamp, truth[(episode, stamp)], depth


# --- import ----------------------------------------------------------------------------------


def test_ground_truth_import_reproduces_labels_exactly_and_keypoints_within_noise(base, tmp_path, codec):
    dataset, truth, export, _, result = round_trip(base, tmp_path, codec, None)
    assert result.summary()["frames"] == 6
    clicks = sum(1 for t in export for a in t["annotations"] for r in a["result"] if r["type"] == "keypointlabels")
    noise = DepthNoiseModel()
    checked = on_true_keypoint = 0
    with open_h5(dataset / "export" / "dataset.h5") as f:
        g = f["episode_0"]
        seg, index = g["segmentation"][:], g["segmentation_index"][:]
        assert list(index) == list(range(6))
        intr = Intrinsics(640, 480, *(float(x) for x in g["camera_intrinsics"][:]))
        for row, fi in enumerate(index):
            frame = truth[("episode_0", int(g["timestamps_ns"][fi]))]
            assert np.array_equal(seg[row], frame.annotation_labels())  # labels exact, void where no depth
        kps = g["keypoints_3d"][:]
        assert len(kps) == clicks
        for k in kps:
            frame = truth[("episode_0", int(g["timestamps_ns"][k["frame_index"]]))]
            if not np.all(np.isfinite(k["xyz"])):
                assert k["reason"], "a keypoint without depth says why"
                continue
            col, row = int(round(k["u"])), int(round(k["v"]))
            z_true = float(frame.depth_gt_m[row, col])
            surface_point = intr.backproject(np.array([k["u"]]), np.array([k["v"]]), np.array([z_true]))[0]
            tol = 3 * float(noise.sigma(np.array(z_true))) + 0.001  # 3 sigma of one pixel + 1 mm rounding
            assert np.linalg.norm(k["xyz"] - surface_point) <= tol
            checked += 1
            name = k["name"].decode() if isinstance(k["name"], bytes) else k["name"]
            for kp in frame.keypoints.values():  # keypoints lying on the visible surface: the true 3D point
                true = kp[name]
                if np.hypot(*(intr.project(true)[0] - [k["u"], k["v"]])) < 0.01 and abs(true[2] - z_true) < 0.001:
                    assert np.linalg.norm(k["xyz"] - true) <= tol
                    on_true_keypoint += 1
    assert checked >= 12 and on_true_keypoint >= 6


def test_predictions_and_cancelled_annotations_are_kept_apart(base, tmp_path, codec):
    dataset, truth, scene = fresh(base, tmp_path)
    tasks = load_tasks(dataset)[:2]
    pred = AnnotatorProfile(99, boundary_px=-3)
    export = annotators_export(tasks, truth, scene, [GT], codec, assignment="all", prediction=pred)
    cancelled = json.loads(json.dumps(export[0]["annotations"][0]))
    cancelled.update(id=500, completed_by=7, was_cancelled=True)
    export[0]["annotations"].append(cancelled)
    export.append({"id": 77, "data": dict(tasks[0]["data"], stamp_ns="1"), "annotations": [], "predictions": []})
    (tmp_path / "e.json").write_text(json.dumps(export))
    s = import_export(tmp_path / "e.json", dataset_files(dataset), codec=codec).summary()
    assert (s["annotations"], s["predictions"], s["cancelled_annotations"], s["tasks_without_annotations"]) == (
        2,
        2,
        1,
        1,
    )
    with open_h5(dataset / "export" / "dataset.h5") as f:
        g = f["episode_0"]
        assert [x.decode() for x in g["segmentation_source"][:]] == ["user1", "user1"]
        copy = g["annotations"]["prediction:synthetic-sam"]
        assert list(copy["segmentation_index"][:]) == [0, 1]
        truth_labels = truth[("episode_0", int(g["timestamps_ns"][0]))].annotation_labels()
        assert np.array_equal(g["segmentation"][0], truth_labels)
        assert not np.array_equal(copy["segmentation"][0], truth_labels)  # the eroded prediction, stored apart


# --- segmentation agreement ------------------------------------------------------------------------


def direct_iou_and_kappa(a, b, valid):
    """IoU per class and Cohen's kappa from two label images, written out from the definitions."""
    a, b = a[valid], b[valid]
    iou = {}
    for c in set(np.unique(a)) | set(np.unique(b)):
        inter, union = np.sum((a == c) & (b == c)), np.sum((a == c) | (b == c))
        iou[int(c)] = inter / union
    p_o = np.mean(a == b)
    p_e = sum(np.mean(a == c) * np.mean(b == c) for c in set(np.unique(a)) | set(np.unique(b)))
    return iou, (p_o - p_e) / (1 - p_e), p_o


@pytest.mark.parametrize("erode_px", [2, 10])
def test_boundary_erosion_iou_and_kappa_equal_the_direct_values(base, tmp_path, codec, erode_px):
    second = AnnotatorProfile(SECOND, boundary_px=-erode_px, skip_keypoints=True)
    dataset, truth, _, drawn, _ = round_trip(base, tmp_path, codec, second)
    summary = validate_dataset(dataset)
    names = {v: k for k, v in LABEL_IDS.items()}
    cfg = load_validation_config()
    reann = json.loads(summary.paths["tasks"].read_text())
    routed = {f"{t['data']['episode']}@{t['data']['stamp_ns']}" for t in reann}
    for task_id, frame in enumerate(summary.frames, start=1):
        _, _, depth = frame_of(dataset, truth, frame.episode, frame.frame_index)
        valid = depth > 0
        a, b = drawn[(task_id, "user1")].labels.copy(), drawn[(task_id, "user2")].labels.copy()
        iou, kappa, p_o = direct_iou_and_kappa(a, b, valid)
        (pair,) = frame.pairs
        assert pair.kappa == pytest.approx(kappa, abs=1e-12)
        assert pair.kappa < p_o  # chance-corrected: below the raw agreement
        scored = {names[c]: v for c, v in iou.items() if c in names and c != 0}
        for label, value in pair.iou.items():
            assert value == pytest.approx(scored[label], abs=1e-12)
        assert scored["target_object"] < 1.0 and scored["table_surface"] < 1.0
        expected_fail = any(v < cfg.segmentation.iou_min for k, v in pair.iou.items())
        assert (frame.key in routed) == expected_fail == (not frame.passed)
        if erode_px == 10:
            assert scored["target_object"] < 0.85 and frame.key in routed
            assert any(r.startswith("IoU target_object") for r in frame.reasons)


# --- keypoints -------------------------------------------------------------------------------------


def test_keypoints_shifted_8mm_fail_the_5mm_agreement(base, tmp_path, codec):
    second = AnnotatorProfile(SECOND, keypoint_shift_mm=8.0)
    dataset, truth, _, drawn, _ = round_trip(base, tmp_path, codec, second)
    summary = validate_dataset(dataset)
    files = dataset_files(dataset)
    handles = coarse = 0
    for task_id, frame in enumerate(summary.frames, start=1):
        _, gt, _ = frame_of(dataset, truth, frame.episode, frame.frame_index)
        k = gt.intrinsics
        a, b = drawn[(task_id, "user1")].clicks, drawn[(task_id, "user2")].clicks
        expected = {}
        for (_obj, name, ua, va), (_, _, ub, vb) in zip(a, b, strict=True):
            pa = k.backproject(np.array([ua]), np.array([va]), np.array([gt.depth_gt_m[round(va), round(ua)]]))[0]
            pb = k.backproject(np.array([ub]), np.array([vb]), np.array([gt.depth_gt_m[round(vb), round(ub)]]))[0]
            expected.setdefault(name, []).append(np.linalg.norm(pa - pb) * 1000)
        for row in frame.pairs[0].keypoints:
            assert row["distance_mm"] is not None
            assert min(abs(row["distance_mm"] - e) for e in expected[row["name"]]) < 2.0  # the noise of two clicks
            if row["name"].startswith("handle"):
                handles += 1
                assert row["distance_mm"] > 5.0 and not row["ok"]
                assert any(r.startswith(f"keypoint {row['name']}: ") and "(limit 5 mm)" in r for r in frame.reasons)
            else:  # rim_center is a coarse landmark: 15 mm
                coarse += 1
                assert row["ok"] == (row["distance_mm"] <= 15.0)
    assert handles >= 4 and coarse >= 6
    assert files.keypoint_names >= {"handle_top", "rim_center"}


def test_keypoint_on_the_background_behind_a_handle_fails_the_surface_check(base, tmp_path, codec):
    second = AnnotatorProfile(SECOND, keypoints_on_background=("handle_top", "handle_bottom"))
    dataset, truth, _, drawn, _ = round_trip(base, tmp_path, codec, second)
    summary = validate_dataset(dataset)
    cfg = load_validation_config()
    off = 0
    for task_id, frame in enumerate(summary.frames, start=1):
        _, gt, _ = frame_of(dataset, truth, frame.episode, frame.frame_index)
        for row in frame.surface:
            if row["annotator"] == "user1":  # the ground truth lies on its object's surface
                assert row["ok"] and row["distance_mm"] <= cfg.keypoints.surface_mm
            elif row["name"].startswith("handle"):
                # known answer: the click's true surface is at least 5 cm behind the handle it names
                mug = next(o for o, n, *_ in drawn[(task_id, "user2")].clicks if n == row["name"])
                z_kp = gt.keypoints[mug][row["name"]][2]
                assert gt.depth_gt_m[round(row["v"]), round(row["u"])] > z_kp + 0.05
                assert not row["ok"]
                assert row["distance_mm"] is None or row["distance_mm"] > cfg.keypoints.surface_mm
                off += 1
    assert off >= 2


# --- mask vs depth ---------------------------------------------------------------------------------


def test_mask_bleeding_3px_onto_the_background_is_flagged_and_a_clean_mask_is_not(base, tmp_path, codec):
    second = AnnotatorProfile(SECOND, bleed_px=3, skip_keypoints=True)
    scene = base[2]
    dataset, truth, _, _, _ = round_trip(base, tmp_path, codec, second)
    summary = validate_dataset(dataset)
    md = load_validation_config().mask_depth
    objects = [LABEL_IDS[n] for n in md.labels]
    with open_h5(dataset / "export" / "dataset.h5") as f:
        user2 = f["episode_0"]["annotations"]["user2"]["segmentation"][:]
    for frame in summary.frames:
        _, gt, depth = frame_of(dataset, truth, frame.episode, frame.frame_index)
        clean = [r for r in frame.mask_regions if r["annotator"] == "user1"]
        bled = [r for r in frame.mask_regions if r["annotator"] == "user2"]
        assert clean and all(r["ok"] and r["outliers"] == 0 for r in clean)
        assert any(not r["ok"] for r in bled)
        assert any(r.startswith("mask ") and "of user2" in r for r in frame.reasons)
        # known answer: the pixels the bleed added that lie 30 cm or more behind their object's median depth
        _, inst = draw(gt, scene, second)
        far_added = np.zeros(depth.shape, bool)
        for i in np.unique(inst[inst > 0]):
            own = gt.instances == i
            if LABEL_IDS[scene.objects[i - 1].label] in objects:
                median_mm = 1000 * np.nanmedian(gt.depth_gt_m[own])
                far_added |= (inst == i) & ~own & (depth > median_mm + 300)
        assert far_added.sum() > 500
        regions = mask_depth_outliers(
            user2[frame.frame_index], depth, objects, k=md.mad_k, min_pixels=md.min_region_pixels
        )
        flagged = np.any([r.outlier_mask for r in regions], axis=0)
        assert (flagged & far_added).sum() >= 0.9 * far_added.sum()  # recall on the far bleed
        bleed = (user2[frame.frame_index] != gt.annotation_labels()) & (depth > 0)
        assert (flagged & ~bleed).sum() <= 0.05 * flagged.sum()  # flagged pixels are bleed pixels (the bleed
        # widens the region's MAD range a little, so a few genuine object pixels may cross it)
        assert sum(r["outliers"] for r in bled) == flagged.sum()


# --- bad exports: reported with the task id, nothing written ---------------------------------------------------------


def test_bad_export_is_reported_per_task_and_nothing_is_written(base, tmp_path, codec):
    dataset, truth, scene = fresh(base, tmp_path)
    export = annotators_export(load_tasks(dataset)[:4], truth, scene, [GT], codec, assignment="all")
    export[0]["annotations"][0]["result"][0]["value"]["brushlabels"] = ["teapot"]
    export[1]["data"]["stamp_ns"] = "123"
    rle = export[2]["annotations"][0]["result"][1]["value"]["rle"]
    export[2]["annotations"][0]["result"][1]["value"]["rle"] = rle[: len(rle) // 2]
    export[3]["data"]["taxonomy_version"] = "0.9"
    (tmp_path / "bad.json").write_text(json.dumps(export))
    h5 = dataset / "export" / "dataset.h5"
    before = h5.read_bytes()
    with pytest.raises(AnnotationImportError) as err:
        import_export(tmp_path / "bad.json", dataset_files(dataset), codec=codec)
    problems = err.value.problems
    assert any(p.startswith("task 1: ") and "unknown label 'teapot'" in p for p in problems)
    assert any(p.startswith("task 2: ") and "not in the dataset" in p for p in problems)
    assert any(p.startswith("task 3: ") and "malformed brush RLE" in p for p in problems)
    assert any(p.startswith("task 4: ") and "taxonomy 0.9" in p for p in problems)
    assert len(problems) == 4
    assert h5.read_bytes() == before and not list(h5.parent.glob("*.partial"))


def test_a_crash_while_writing_leaves_the_dataset_as_it_was(base, tmp_path, codec, monkeypatch):
    from depth_annotation.annotation import ls_import

    dataset, truth, scene = fresh(base, tmp_path)
    export = annotators_export(load_tasks(dataset)[:2], truth, scene, [GT], codec, assignment="all")
    (tmp_path / "e.json").write_text(json.dumps(export))
    h5 = dataset / "export" / "dataset.h5"
    before = h5.read_bytes()
    real = ls_import._write

    def dies_halfway(f, *args):
        real(f, *args)  # everything written into the copy ...
        raise KeyboardInterrupt  # ... then the process is interrupted before the rename

    monkeypatch.setattr(ls_import, "_write", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        import_export(tmp_path / "e.json", dataset_files(dataset), codec=codec)
    assert h5.read_bytes() == before and not list(h5.parent.glob("*.partial"))


# --- the Label Studio SDK codec --------------------------------------------------------------------


def test_sdk_codec_round_trips_masks_and_rejects_broken_rle(codec):
    rng = np.random.default_rng(3)
    masks = [(rng.random((37, 53)) < p).astype(np.uint8) for p in (0.0, 0.1, 0.5, 1.0)]
    masks.append(np.pad(np.ones((10, 20), np.uint8), ((5, 22), (11, 22))))
    rles = codec.encode(masks)
    back = codec.decode([RleRegion(r, 53, 37) for r in rles])
    for m, b in zip(masks, back, strict=True):
        assert np.array_equal(m, b)
    bad = codec.decode([RleRegion(rles[2][:10], 53, 37), RleRegion(rles[2], 50, 37), RleRegion([300, 1], 53, 37)])
    assert all(isinstance(b, str) for b in bad)
    assert "needs 7400" in bad[1] and "byte values" in bad[2]


def test_polygons_are_decoded_by_the_sdk_close_to_the_mask_they_outline(codec):
    mask = np.zeros((120, 160), np.uint8)
    mask[20:70, 30:110] = 1
    pts = [[30 / 160 * 100, 20 / 120 * 100], [110 / 160 * 100, 20 / 120 * 100], [110 / 160 * 100, 70 / 120 * 100]]
    pts.append([30 / 160 * 100, 70 / 120 * 100])
    (poly,) = codec.decode([PolygonRegion(pts, 160, 120)])
    assert np.sum(poly & mask) / np.sum(poly | mask) > 0.95
    (err,) = codec.decode([PolygonRegion(pts[:2], 160, 120)])
    assert "at least 3 points" in err


def test_polygon_annotations_import_close_to_the_ground_truth(base, tmp_path, codec):
    poly = AnnotatorProfile(1, polygon_labels=("target_object", "distractor_object", "gripper"))
    dataset, truth, scene = fresh(base, tmp_path)
    export = annotators_export(load_tasks(dataset)[:2], truth, scene, [poly], codec, assignment="all")
    assert any(r["type"] == "polygonlabels" for r in export[0]["annotations"][0]["result"])
    (tmp_path / "p.json").write_text(json.dumps(export))
    import_export(tmp_path / "p.json", dataset_files(dataset), codec=codec)
    with open_h5(dataset / "export" / "dataset.h5") as f:
        g = f["episode_0"]
        for row in range(2):
            gt = truth[("episode_0", int(g["timestamps_ns"][row]))].annotation_labels()
            seg = g["segmentation"][row]
            for c in ("target_object", "distractor_object", "gripper"):
                a, b = seg == LABEL_IDS[c], gt == LABEL_IDS[c]
                assert np.sum(a & b) / np.sum(a | b) > 0.85


# --- metrics on hand-made arrays ---------------------------------------------------------------------


def test_kappa_and_iou_on_a_hand_computed_example():
    a = np.array([[1, 1, 1, 2], [2, 2, 3, 3]], np.uint8)
    b = np.array([[1, 1, 2, 2], [2, 2, 3, 1]], np.uint8)
    valid = np.ones_like(a, bool)
    # p_o = 6/8; p_e = (3/8)(3/8) + (3/8)(4/8) + (2/8)(1/8) = 23/64; kappa = (48/64 - 23/64) / (41/64) = 25/41
    k = cohen_kappa(a, b, valid)
    assert k.overall == pytest.approx(25 / 41) and k.observed == pytest.approx(0.75)
    iou = class_iou(a, b, [1, 2, 3], valid)
    assert iou[1] == (pytest.approx(2 / 4), 4) and iou[2][0] == pytest.approx(3 / 4) and iou[3][0] == 0.5
    # class 3 vs rest: both 1/8 agree on the 3, 6/8 agree on "not 3": p_o 7/8, p_e (2/8)(1/8) + (6/8)(7/8)
    p_e = 2 / 64 + 42 / 64
    assert k.per_class[3] == pytest.approx((7 / 8 - p_e) / (1 - p_e))
    valid[1, 3] = False  # the disagreeing 3-vs-1 pixel left out (no depth)
    assert class_iou(a, b, [3], valid)[3][0] == 1.0


def test_click_depth_is_a_robust_mean_of_the_window_and_nan_without_depth():
    from depth_annotation.annotation import backproject_click

    intr = Intrinsics(40, 30, 50.0, 50.0, 19.5, 14.5)
    depth = np.full((30, 40), 800, np.uint16)
    depth[8:13, 8:13] = [
        [0, 801, 0, 799, 0],
        [0, 800, 2000, 800, 0],
        [0, 802, 800, 798, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ]
    # 8 valid depths: 798 799 800 800 800 801 802 2000; the middle half (2 trimmed each side): 799.5 ... 801
    k = backproject_click("rim_center", 10.0, 10.0, depth, intr)
    valid = np.sort(depth[8:13, 8:13][depth[8:13, 8:13] > 0].astype(float))
    z = valid[valid.size // 4 : valid.size - valid.size // 4].mean() / 1000
    assert k.valid_pixels == valid.size == 8 and k.reason == ""
    assert np.allclose(k.xyz, [(10.0 - 19.5) * z / 50.0, (10.0 - 14.5) * z / 50.0, z])
    assert abs(z - 0.8) < 0.0015  # the 2 m outlier and the dropouts do not move it
    depth[8:13, 8:13] = 0
    depth[10, 10] = depth[9, 9] = 800
    k = backproject_click("rim_center", 10.0, 10.0, depth, intr)
    assert np.all(np.isnan(k.xyz)) and k.reason.startswith("no depth: 2 of the 5x5")
    assert "outside" in backproject_click("rim_center", 45.0, 3.0, depth, intr).reason


def test_a_click_in_a_distorted_image_back_projects_to_the_true_point():
    import cv2

    from depth_annotation.annotation import backproject_click

    intr = Intrinsics(640, 480, 600.0, 600.0, 320.5, 240.5, d=(0.12, -0.25, 0.001, -0.002, 0.05))
    point = np.array([0.21, -0.13, 0.9])
    (uv,), _ = cv2.projectPoints(point[None], np.zeros(3), np.zeros(3), intr.k, intr.dist_coeffs)
    depth = np.full((480, 640), 900, np.uint16)
    k = backproject_click("handle_top", float(uv[0, 0]), float(uv[0, 1]), depth, intr)
    assert np.linalg.norm(k.xyz - point) < 1e-4
    plain = Intrinsics(640, 480, 600.0, 600.0, 320.5, 240.5)
    assert np.linalg.norm(backproject_click("handle_top", *uv[0], depth, plain).xyz - point) > 0.001  # 10x the above


def test_keypoints_pair_by_name_nearest_first_whatever_their_order():
    def kp(name, x):
        return Keypoint3D(name, 0.0, 0.0, np.array([x, 0.0, 1.0]), 25, "")

    a = [kp("rim_center", 0.00), kp("rim_center", 0.30), kp("handle_top", 0.10)]
    b = [kp("handle_top", 0.104), kp("rim_center", 0.302), kp("rim_center", 0.001)]
    pairs = {(p.name, p.first, p.second): p.distance_mm for p in match_keypoints(a, b)}
    assert pairs.keys() == {("rim_center", 0, 2), ("rim_center", 1, 1), ("handle_top", 2, 0)}
    assert pairs[("rim_center", 0, 2)] == pytest.approx(1.0) and pairs[("handle_top", 2, 0)] == pytest.approx(4.0)
    lone = match_keypoints(a[:1], [])
    assert [(p.first, p.second) for p in lone] == [(0, None)] and np.isnan(lone[0].distance_mm)


def test_surface_distance_of_a_point_off_a_tilted_plane():
    intr = Intrinsics(64, 48, 60.0, 60.0, 31.5, 23.5)
    _v, u = np.mgrid[0:48, 0:64].astype(np.float64)
    # the plane z = 0.8 + 0.1 x (x in metres, camera frame): depth along each pixel's ray
    rx = (u - intr.cx) / intr.fx
    z = 0.8 / (1 - 0.1 * rx)
    depth = np.round(z * 1000).astype(np.uint16)
    labels = np.full(depth.shape, LABEL_IDS["target_object"], np.uint8)
    on = intr.backproject(np.array([40.0]), np.array([20.0]), np.array([0.8 / (1 - 0.1 * (40 - 31.5) / 60)]))[0]
    normal = np.array([0.1, 0.0, -1.0]) / np.linalg.norm([0.1, 0.0, -1.0])
    ids = [LABEL_IDS["target_object"]]
    assert surface_distance_mm(on, 40, 20, labels, depth, intr, ids).distance_mm < 0.5
    off = on + 0.010 * normal  # 10 mm off the plane, along its normal
    assert surface_distance_mm(off, 40, 20, labels, depth, intr, ids).distance_mm == pytest.approx(10.0, abs=0.5)
    labels[:] = LABEL_IDS["background"]
    res = surface_distance_mm(on, 40, 20, labels, depth, intr, ids)
    assert np.isnan(res.distance_mm) and "no object surface" in res.reason


def test_mad_outliers_count_the_far_pixels_of_a_region():
    depth = np.full((40, 40), 800, np.uint16)
    labels = np.zeros((40, 40), np.uint8)
    labels[10:30, 10:30] = 2
    depth[10:30, 10:13] = 1300  # 60 pixels of the region carry background depth
    (region,) = mask_depth_outliers(labels, depth, [2], k=5.0)
    assert (region.pixels, region.outliers) == (400, 60)
    depth[10:30, 10:13] = 800
    assert mask_depth_outliers(labels, depth, [2], k=5.0)[0].outliers == 0


# --- overlap and config ------------------------------------------------------------------------------


def test_overlap_is_per_scene_reproducible_and_at_least_one():
    tasks = [
        {"data": {"scene_id": s, "episode": "episode_0", "stamp_ns": str(i)}}
        for s, n in (("a", 20), ("b", 2))
        for i in range(n)
    ]
    chosen = choose_overlap(tasks, 0.2, seed=5)
    assert {k: len(v) for k, v in chosen.items()} == {"a": 4, "b": 1}
    assert choose_overlap(list(reversed(tasks)), 0.2, seed=5).keys() == chosen.keys()
    again = choose_overlap(tasks, 0.2, seed=5)
    assert again == chosen
    assert all(tasks[i]["data"]["scene_id"] == s for s, idx in chosen.items() for i in idx)
    assert choose_overlap(tasks, 0.0, seed=5) == {"a": [], "b": []}
    with pytest.raises(ValueError):
        choose_overlap(tasks, 1.5, seed=5)


def test_marking_overlap_keeps_the_dataset_checksums_true(tmp_path):
    from depth_annotation.dataset import check_report

    dataset, _, _ = synthetic_dataset(tmp_path, frames=4, every_k=1, overlap=0.5, width=160, height=120)
    tasks = json.loads((dataset / "annotation" / "label_studio_tasks.json").read_text())
    assert sorted(t["data"]["overlap"] for t in tasks) == [1, 1, 2, 2]  # the file was rewritten...
    report = check_report(dataset, deep=True)  # ...and its recorded checksum follows it
    assert report.ok, report.problems


def test_shipped_config_is_the_guides_thresholds_and_typos_fail():
    shipped = load_validation_config()
    assert shipped == config_from_dict({})  # the file and the built-in defaults agree
    assert (shipped.segmentation.iou_min, shipped.segmentation.iou_min_ambiguous) == (0.85, 0.70)
    assert (shipped.keypoints.agreement_mm, shipped.keypoints.surface_mm) == (5.0, 2.0)
    assert shipped.dataset.max_class_imbalance == 10.0 and shipped.dataset.depth_range_m == (0.3, 2.0)
    with pytest.raises(ValidationConfigError, match="iou_mni"):
        config_from_dict({"segmentation": {"iou_mni": 0.9}})
    with pytest.raises(ValidationConfigError, match=r"segmentation.iou_min = 1.5 is outside"):
        config_from_dict({"segmentation": {"iou_min": 1.5}})
    with pytest.raises(ValidationConfigError, match="must be a list"):
        config_from_dict({"keypoints": {"coarse_keypoints": "rim_center"}})


def test_unlabelled_pixels_are_their_own_value(base, tmp_path, codec):
    second = AnnotatorProfile(SECOND, missed_objects=("box",), skip_keypoints=True)
    dataset, truth, _, _drawn, _ = round_trip(base, tmp_path, codec, second)
    with open_h5(dataset / "export" / "dataset.h5") as f:
        g = f["episode_0"]
        copy = g["annotations"]["user2"]["segmentation"][0]
        gt = truth[("episode_0", int(g["timestamps_ns"][0]))]
        box = gt.instances == [o.name for o in base[2].objects].index("box") + 1
        assert UNLABELLED == 255  # the documented value (README, store.py)
        assert np.all(copy[box & (gt.depth_mm > 0)] == 255)
        assert np.all(copy[gt.depth_mm == 0] == 0)


def test_a_python_without_the_label_studio_sdk_is_reported(monkeypatch):
    import sys

    from depth_annotation.annotation import LabelStudioUnavailable

    monkeypatch.setenv("DEPTH_ANNOTATION_LABELSTUDIO_PYTHON", sys.executable)  # our venv: the SDK clashes with it
    with pytest.raises(LabelStudioUnavailable, match="cannot import the Label Studio SDK"):
        LabelStudioCodec(1)
    monkeypatch.setenv("DEPTH_ANNOTATION_LABELSTUDIO_PYTHON", "/nonexistent/python")
    with pytest.raises(LabelStudioUnavailable, match="no such interpreter"):
        LabelStudioCodec(1)
