"""Offline export: exact content, scene-level splits, QC join, bad inputs, crash safety."""

import json
import os
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest
from ros_harness import REPO, VENV_BIN

from depth_annotation.common import DEFAULT_DEPTH_TO_COLOR, default_intrinsics
from depth_annotation.dataset import (
    DEFAULT_TOPICS,
    EpisodeMeta,
    ExportError,
    Hdf5DatasetWriter,
    assign_splits,
    bag_io,
    write_synthetic_bag,
)

W, H = 320, 240


def export(*args, timeout=300):
    return subprocess.run(
        [str(VENV_BIN / "depth-annotation"), "export", "--quiet", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    truth = {
        "a1": write_synthetic_bag(
            root / "a1", frames=12, width=W, height=H, seed=1, storage="mcap", hole_frames=frozenset({3})
        ),
        "a2": write_synthetic_bag(
            root / "a2", frames=8, width=W, height=H, seed=1, storage="sqlite3", start_ns=1_800_000_000_000_000_000
        ),
        "b": write_synthetic_bag(root / "b", frames=10, width=W, height=H, seed=2, storage="mcap", with_quality=False),
    }
    return root, truth


def test_export_equals_source_exactly(bags, tmp_path):
    root, truth = bags
    res = export(
        root / "a1",
        root / "a2",
        root / "b",
        "--out",
        tmp_path / "ds",
        "--scene",
        f"{root / 'a1'}=tableA",
        "--scene",
        f"{root / 'a2'}=tableA",
        "--scene",
        f"{root / 'b'}=tableB",
        "--every",
        "3",
        "--split",
        "0.5,0.5,0",
    )
    assert res.returncode == 0, res.stderr
    with h5py.File(tmp_path / "ds" / "export" / "dataset.h5", "r") as f:
        for idx, name in enumerate(("a1", "a2", "b")):
            g = f[f"episode_{idx}"]
            frames = truth[name]
            assert g["depth"].shape == (len(frames), H, W) and g["depth"].dtype == np.uint16
            assert g["color"].shape == (len(frames), H, W, 3) and g["color"].dtype == np.uint8
            assert (
                g["depth"].chunks == (1, H, W) and g["depth"].compression == "gzip" and g["depth"].compression_opts == 4
            )
            for i, (_, fr) in enumerate(frames):
                assert np.array_equal(g["depth"][i], fr.depth_mm)
                assert np.array_equal(g["color"][i], fr.color)
            assert g["timestamps_ns"][:].tolist() == [s for s, _ in frames]
            intr = default_intrinsics(W, H)
            assert np.array_equal(g["camera_intrinsics"][:], intr.as_vector())
            assert np.allclose(g["K"][:], intr.k)
            assert np.allclose(g["depth_to_color"][:], DEFAULT_DEPTH_TO_COLOR.matrix, atol=1e-9)
            assert g.attrs["depth_scale"] == 0.001 and g.attrs["source"] == str(root / name)
            assert ("qc" in g) == (name != "b")
        qc = f["episode_0/qc"]
        assert qc["status"][3] == 2 and json.loads(qc["reasons"][3])[:1] == ["low_coverage"]
        assert f["episode_0"].attrs["split"] == f["episode_1"].attrs["split"]  # one scene, one split
    info = json.loads((tmp_path / "ds" / "dataset_info.json").read_text())
    assert info["schema_version"] == 1 and info["splits"]["level"] == "scene"
    assign = info["splits"]["assignment"]
    assert set(assign) == {"tableA", "tableB"} and assign["tableA"] != assign["tableB"]
    stats = info["statistics"]
    assert sum(s["frames"] for s in stats.values()) == 30
    assert stats[assign["tableA"]]["frames"] == 20 and stats[assign["tableA"]]["qc_flagged_frames"] == 1
    assert info["taxonomy"]["labels"][0]["name"] == "void"
    tax = json.loads((tmp_path / "ds" / "taxonomy.json").read_text())
    assert tax == info["taxonomy"]
    # annotation: every 3rd frame, flagged frame 3 of a1 excluded
    tasks = json.loads((tmp_path / "ds" / "annotation" / "label_studio_tasks.json").read_text())
    assert len(tasks) == (4 - 1) + 3 + 4
    first = tasks[0]["data"]
    png = tmp_path / "ds" / first["depth16"].split("?d=")[1]
    import cv2

    assert np.array_equal(cv2.imread(str(png), cv2.IMREAD_UNCHANGED), truth["a1"][0][1].depth_mm)
    report = json.loads((tmp_path / "ds" / "export_report.json").read_text())
    assert report["sync"][0]["topics"]["depth"] == {"received": 12, "matched": 12, "unmatched": 0, "dropped": 0}


def test_labelling_config_and_tasks_pass_label_studio(bags, tmp_path):
    root, _ = bags
    assert export(root / "a1", "--out", tmp_path / "ds", "--every", "4").returncode == 0
    script = r"""
import json, sys
from label_studio_sdk.label_interface import LabelInterface
cfg = open(sys.argv[1]).read()
li = LabelInterface(cfg)
li.validate()
objects = {o.name for o in li.objects}
controls = {c.name: c for c in li.controls}
assert objects == {"rgb", "depth"}, objects
for c in controls.values():
    for target in c.to_name:
        assert target in objects, (c.name, target)
tasks = json.load(open(sys.argv[2]))
bad = [t for t in tasks if not li.validate_task(t)]
assert not bad, bad[:1]
labels = sorted(controls["segmentation"].labels)
print(json.dumps({"controls": sorted(controls), "labels": labels, "tasks": len(tasks)}))
"""
    ann = tmp_path / "ds" / "annotation"
    res = subprocess.run(
        [
            str(REPO / ".venv-labelstudio" / "bin" / "python"),
            "-c",
            script,
            ann / "label_config.xml",
            ann / "label_studio_tasks.json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["controls"] == ["keypoints", "outlines", "segmentation"]
    assert out["labels"] == sorted(
        ["table_surface", "target_object", "distractor_object", "gripper", "robot_arm", "background"]
    )
    assert out["tasks"] == 3


def test_split_assignment_is_scene_level_and_deterministic():
    scenes = [f"scene{i}" for i in range(20)]
    a = assign_splits(scenes, (0.7, 0.2, 0.1), seed=3)
    assert assign_splits(list(reversed(scenes)), (0.7, 0.2, 0.1), seed=3) == a
    assert sorted(a.values()).count("val") == 4 and sorted(a.values()).count("test") == 2
    assert assign_splits(["only"], (0.1, 0.5, 0.4)) == {"only": "train"}


def test_missing_topic_lists_what_the_bag_has(bags, tmp_path):
    root, _ = bags
    res = export(root / "a1", "--out", tmp_path / "ds", "--color-topic", "/camera/rgb")
    assert res.returncode == 2
    assert (
        "/camera/rgb not in the bag; it has: /camera/aligned_depth_to_color/camera_info [sensor_msgs/msg/CameraInfo]"
        in res.stderr
    )


def test_metre_depth_resolution_mismatch_and_empty_bag(tmp_path):
    intr = default_intrinsics(64, 48)
    metres = tmp_path / "metres"
    with bag_io.BagWriter(metres) as w:
        for key, t in (
            ("depth", "sensor_msgs/msg/Image"),
            ("color", "sensor_msgs/msg/Image"),
            ("info", "sensor_msgs/msg/CameraInfo"),
        ):
            w.add_topic(DEFAULT_TOPICS[key], t)
        for i in range(3):
            s = 10**9 + i * 33_333_333
            d = np.full((48, 64), 0.8, np.float32)
            d[0, :4] = [np.nan, np.inf, -1.0, 70.0]
            w.write(DEFAULT_TOPICS["depth"], s, bag_io.image(d, "32FC1", s, "cam"))
            w.write(DEFAULT_TOPICS["color"], s, bag_io.image(np.zeros((48, 64, 3), np.uint8), "bgr8", s, "cam"))
            w.write(DEFAULT_TOPICS["info"], s, bag_io.camera_info(intr, s, "cam"))
    assert export(metres, "--out", tmp_path / "m").returncode == 0
    with h5py.File(tmp_path / "m" / "export" / "dataset.h5") as f:
        assert f["episode_0/depth"][0, 0, :5].tolist() == [0, 0, 0, 65535, 800]
        assert f["episode_0"].attrs["depth_encoding_in_source"] == "32FC1"

    mismatch = tmp_path / "mismatch"
    with bag_io.BagWriter(mismatch) as w:
        for key, t in (
            ("depth", "sensor_msgs/msg/Image"),
            ("color", "sensor_msgs/msg/Image"),
            ("info", "sensor_msgs/msg/CameraInfo"),
        ):
            w.add_topic(DEFAULT_TOPICS[key], t)
        w.write(DEFAULT_TOPICS["depth"], 1, bag_io.image(np.ones((48, 64), np.uint16), "16UC1", 1, "cam"))
        w.write(DEFAULT_TOPICS["color"], 1, bag_io.image(np.zeros((96, 128, 3), np.uint8), "rgb8", 1, "cam"))
        w.write(DEFAULT_TOPICS["info"], 1, bag_io.camera_info(intr, 1, "cam"))
    res = export(mismatch, "--out", tmp_path / "x")
    assert res.returncode == 2 and "differ: export depth aligned to colour" in res.stderr
    assert not (tmp_path / "x" / "export" / "dataset.h5").exists()

    empty = tmp_path / "empty"
    with bag_io.BagWriter(empty) as w:
        for key, t in (
            ("depth", "sensor_msgs/msg/Image"),
            ("color", "sensor_msgs/msg/Image"),
            ("info", "sensor_msgs/msg/CameraInfo"),
        ):
            w.add_topic(DEFAULT_TOPICS[key], t)
    res = export(empty, "--out", tmp_path / "e")
    assert res.returncode == 2 and "empty bag" in res.stderr
    assert (
        export(tmp_path / "nope", "--out", tmp_path / "n").stderr.strip()
        == f"error: bag not found: {tmp_path / 'nope'}"
    )


def test_truncated_bag_exports_what_is_readable(bags, tmp_path):
    root, truth = bags
    broken = tmp_path / "broken"
    broken.mkdir()
    src = next((root / "a1").glob("*.mcap"))
    data = src.read_bytes()
    (broken / src.name).write_bytes(data[: int(len(data) * 0.6)])
    res = export(broken / src.name, "--out", tmp_path / "p1")
    assert res.returncode in (1, 2), res.stdout + res.stderr
    res = export(broken / src.name, "--out", tmp_path / "p2", "--allow-partial")
    if res.returncode == 0:
        with h5py.File(tmp_path / "p2" / "export" / "dataset.h5") as f:
            n = f["episode_0/depth"].shape[0]
            assert 0 < n < 12
            assert np.array_equal(f["episode_0/depth"][0], truth["a1"][0][1].depth_mm)
        assert "warning:" in res.stderr
    else:  # nothing readable at all: a clear error, no file
        assert "error:" in res.stderr and not (tmp_path / "p2" / "export" / "dataset.h5").exists()


def test_killed_export_leaves_no_final_file_and_rerun_completes(tmp_path):
    bag = tmp_path / "long"
    write_synthetic_bag(bag, frames=150, width=640, height=480, storage="mcap")
    out = tmp_path / "ds"
    proc = subprocess.Popen(
        [str(VENV_BIN / "depth-annotation"), "export", "--quiet", str(bag), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    partial = tmp_path / f".ds.staging-{proc.pid}" / "export" / "dataset.h5.partial"  # staged beside --out
    deadline = time.monotonic() + 60
    while not partial.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, "export finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert not (out / "export" / "dataset.h5").exists()
    assert not (out / "dataset_info.json").exists()
    res = export(bag, "--out", out)
    assert res.returncode == 0, res.stderr
    with h5py.File(out / "export" / "dataset.h5") as f:
        assert f["episode_0/depth"].shape[0] == 150
    assert not partial.exists() and not list(tmp_path.glob(".ds.*"))  # the dead export's staging is gone
    again = export(bag, "--out", out)
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
    assert export(bag, "--out", out, "--overwrite", "--codec", "lzf").returncode == 0


def test_sigint_removes_the_partial_file(tmp_path):
    bag = tmp_path / "long"
    write_synthetic_bag(bag, frames=120, width=640, height=480, storage="mcap")
    out = tmp_path / "ds"
    proc = subprocess.Popen(
        [str(VENV_BIN / "depth-annotation"), "export", "--quiet", str(bag), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    partial = tmp_path / f".ds.staging-{proc.pid}" / "export" / "dataset.h5.partial"
    deadline = time.monotonic() + 60
    while not partial.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in err
    assert not partial.exists() and not (out / "export" / "dataset.h5").exists()
    assert not list(tmp_path.glob(".ds.*"))


def test_fast_codec_export_is_checked_and_documented(bags, tmp_path):
    root, _ = bags
    out = tmp_path / "ds"
    res = export(root / "b", "--out", out, "--codec", "blosc-zstd")
    assert res.returncode == 0, res.stderr
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["files"]["codec"] == "blosc-zstd" and info["files"]["codec_level"] == 1
    assert "hdf5plugin" in info["files"]["readable_by"]
    check = subprocess.run([str(VENV_BIN / "depth-annotation"), "check", str(out)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    bad = export(root / "b", "--out", tmp_path / "bad", "--codec", "gzip-fast", "--level", "7")
    assert bad.returncode == 2 and "gzip-fast levels are 0..3, got 7" in bad.stderr


def test_hdf5_writer_is_a_context_manager_that_publishes_only_a_complete_file(tmp_path):
    intr = default_intrinsics(32, 24)
    rng = np.random.default_rng(0)
    depth = rng.integers(0, 5000, (3, 24, 32), dtype=np.uint16)
    color = rng.integers(0, 256, (3, 24, 32, 3), dtype=np.uint8)
    meta = EpisodeMeta(scene_id="s", source="test", topics={}, intrinsics=intr)
    path = tmp_path / "ok.h5"
    with Hdf5DatasetWriter(path, codec="gzip") as writer:
        ep = writer.begin_episode(meta, (24, 32))
        for i in range(3):
            ep.append(10 + i, depth[i], color[i])
        ep.finish()
        assert not path.exists() and path.with_name("ok.h5.partial").exists()  # published only on leaving
    assert not path.with_name("ok.h5.partial").exists()
    with h5py.File(path) as f:
        assert np.array_equal(f["episode_0/depth"][:], depth) and np.array_equal(f["episode_0/color"][:], color)
        assert f["episode_0/timestamps_ns"][:].tolist() == [10, 11, 12]
    with pytest.raises(ExportError, match="after the file was committed"):
        writer.begin_episode(meta, (24, 32))

    failed = tmp_path / "failed.h5"
    with pytest.raises(RuntimeError, match="camera unplugged"), Hdf5DatasetWriter(failed) as writer:
        writer.begin_episode(meta, (24, 32)).append(1, depth[0], color[0])
        raise RuntimeError("camera unplugged")
    assert not failed.exists() and not failed.with_name("failed.h5.partial").exists()
