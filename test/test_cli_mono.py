"""`depth-annotation mono`: batch monocular depth over images and over a bag, with the tiny model."""

import json
import subprocess

import cv2
import numpy as np
from ros_harness import VENV_BIN

from depth_annotation.common import SyntheticScene, default_intrinsics, orbit_pose
from depth_annotation.dataset import bag_io
from depth_annotation.mono import save_tiny_model


def run(*args):
    return subprocess.run(
        [str(VENV_BIN / "depth-annotation"), "mono", *args], capture_output=True, text=True, timeout=300
    )


def test_mono_over_images_and_bag(tmp_path):
    model = save_tiny_model(tmp_path / "tiny")
    scene, intr = SyntheticScene(0), default_intrinsics(160, 120)
    frames = [scene.render(intr, orbit_pose(i * 0.2), frame_seed=i) for i in range(3)]
    (tmp_path / "imgs").mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / "imgs" / f"{i:03d}.png"), cv2.cvtColor(f.color, cv2.COLOR_RGB2BGR))
    scale = tmp_path / "calibration.json"
    scale.write_text(json.dumps({"mono_scale": {"scale": 2.0, "shift": 0.1}}))

    res = run(
        "--images",
        str(tmp_path / "imgs"),
        "--model",
        str(model),
        "--scale-file",
        str(scale),
        "--out",
        str(tmp_path / "o1"),
    )
    assert res.returncode == 0, res.stderr
    depth = cv2.imread(str(tmp_path / "o1" / "depth" / "001.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.shape == (120, 160)
    meta = json.loads((tmp_path / "o1" / "scale.json").read_text())
    assert meta["mode"] == "scale_file" and meta["untrained_model"] is True
    assert meta["frames"][0]["scale"] == 2.0 and len(meta["frames"]) == 3

    bag = tmp_path / "bag"
    with bag_io.BagWriter(bag, storage="mcap") as w:
        w.add_topic("/camera/color/image_raw", "sensor_msgs/msg/Image")
        w.add_topic("/camera/aligned_depth_to_color/image_raw", "sensor_msgs/msg/Image")
        for i, f in enumerate(frames):
            stamp = 10**9 + i * 33_333_333
            w.write("/camera/color/image_raw", stamp, bag_io.image(f.color, "rgb8", stamp, "cam"))
            w.write("/camera/aligned_depth_to_color/image_raw", stamp, bag_io.image(f.depth_mm, "16UC1", stamp, "cam"))
    res = run(
        "--bag",
        str(bag),
        "--depth-topic",
        "/camera/aligned_depth_to_color/image_raw",
        "--model",
        str(model),
        "--out",
        str(tmp_path / "o2"),
    )
    assert res.returncode == 0, res.stderr
    meta = json.loads((tmp_path / "o2" / "scale.json").read_text())
    assert meta["mode"] == "sensor_fit" and all(r["fitted"] for r in meta["frames"])
    assert sorted(p.stem for p in (tmp_path / "o2" / "depth").iterdir()) == [
        str(10**9 + i * 33_333_333) for i in range(3)
    ]

    res = run(
        "--bag",
        str(bag),
        "--topic",
        "/nope",
        "--model",
        str(model),
        "--scale-file",
        str(scale),
        "--out",
        str(tmp_path / "o3"),
    )
    assert (
        res.returncode == 2 and "/nope not in the bag; it has: /camera/aligned_depth_to_color/image_raw" in res.stderr
    )
