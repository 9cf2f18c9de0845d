"""`depth-annotation mono`: batch monocular depth over images and over a bag, with the tiny model.

The untrained tiny model's output is ~1e-7 everywhere (metric depth would sit at the 10 m limit), so
the test rescales its last layer to spread the output over about 0.27..0.33 and checks every PNG
pixel against that output made metric here, by the scale's own formula 1/Z = scale * d + shift.
"""

import json
import subprocess

import cv2
import numpy as np
from ros_harness import VENV_BIN

from depth_annotation.common import SyntheticScene, default_intrinsics, orbit_pose
from depth_annotation.dataset import bag_io
from depth_annotation.mono import DepthAnything, MonoModelConfig, save_tiny_model

MIN_M, MAX_M = 0.1, 10.0  # the aligner's validity limits, which the CLI keeps


def run(*args):
    return subprocess.run(
        [str(VENV_BIN / "depth-annotation"), "mono", *args], capture_output=True, text=True, timeout=300
    )


def spread_tiny_model(directory):
    """The tiny model with its 1x1 output convolution scaled 1e5x and biased by 0.3: output ~0.27..0.33."""
    import torch
    from transformers import DepthAnythingForDepthEstimation

    directory = save_tiny_model(directory)
    net = DepthAnythingForDepthEstimation.from_pretrained(directory)
    with torch.no_grad():
        net.head.conv3.weight.mul_(1e5)
        net.head.conv3.bias.fill_(0.3)
    net.save_pretrained(directory, safe_serialization=True)
    return directory


def assert_metric_png(path, relative, scale, shift):
    """The 16-bit PNG holds round(1000 / (scale * d + shift)) mm where that is within the limits, else 0."""
    png = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16 and png.shape == relative.shape
    z = 1.0 / (scale * relative.astype(np.float64) + shift)
    valid = (z >= MIN_M) & (z <= MAX_M)
    near_limit = np.isclose(z, MIN_M, rtol=1e-3) | np.isclose(z, MAX_M, rtol=1e-3)  # float32 may round across
    assert np.array_equal((png > 0)[~near_limit], valid[~near_limit])
    assert np.abs(png[valid].astype(np.float64) - np.rint(z[valid] * 1000)).max() <= 1.0  # 1 mm: float32 rounding
    return png


def test_mono_over_images_and_bag(tmp_path):
    model = spread_tiny_model(tmp_path / "tiny")
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
    # the model's relative output for each frame, computed here
    net = DepthAnything(MonoModelConfig(model=str(model)))
    relative = [net.predict(f.color)[0] for f in frames]
    assert all(0.2 < r.min() and r.max() - r.min() > 0.01 and r.max() < 0.4 for r in relative)
    for i, rel in enumerate(relative):  # scale 2.0, shift 0.1 from the file: 1.4..1.6 m, all valid
        png = assert_metric_png(tmp_path / "o1" / "depth" / f"{i:03d}.png", rel, 2.0, 0.1)
        assert (png > 0).all() and png.max() - png.min() > 20
    meta = json.loads((tmp_path / "o1" / "scale.json").read_text())
    assert meta["mode"] == "scale_file" and meta["untrained_model"] is True
    assert [(r["frame"], r["scale"], r["shift"]) for r in meta["frames"]] == [(f"{i:03d}", 2.0, 0.1) for i in range(3)]

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
    names = [str(10**9 + i * 33_333_333) for i in range(3)]
    assert sorted(p.stem for p in (tmp_path / "o2" / "depth").iterdir()) == names
    for name, rel, rec in zip(names, relative, meta["frames"], strict=True):  # each frame with its own fit
        assert rec["frame"] == name
        png = assert_metric_png(tmp_path / "o2" / "depth" / f"{name}.png", rel, rec["scale"], rec["shift"])
        assert (png > 0).mean() > 0.5, (png > 0).mean()

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


def test_mono_with_the_onnxruntime_backend_writes_the_same_depth(tmp_path):
    model = spread_tiny_model(tmp_path / "tiny")
    scene, intr = SyntheticScene(1), default_intrinsics(160, 120)
    (tmp_path / "imgs").mkdir()
    frames = [scene.render(intr, orbit_pose(i * 0.3), frame_seed=i) for i in range(2)]
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / "imgs" / f"{i:03d}.png"), cv2.cvtColor(f.color, cv2.COLOR_RGB2BGR))
    scale = tmp_path / "calibration.json"
    scale.write_text(json.dumps({"mono_scale": {"scale": 2.0, "shift": 0.1}}))
    onnx_file = tmp_path / "tiny.onnx"
    res = run("export-onnx", str(model), str(onnx_file), "--image-size", "160x120", "--size", "518")
    assert res.returncode == 0, res.stderr
    common = ["--images", str(tmp_path / "imgs"), "--scale-file", str(scale)]
    res = run(
        *common, "--backend", "onnxruntime", "--model", str(onnx_file), "--threads", "1", "--out", str(tmp_path / "o")
    )
    assert res.returncode == 0, res.stderr
    net = DepthAnything(MonoModelConfig(model=str(model)))  # the torch model's output, made metric here
    for i, f in enumerate(frames):
        assert_metric_png(tmp_path / "o" / "depth" / f"{i:03d}.png", net.predict(f.color)[0], 2.0, 0.1)
    meta = json.loads((tmp_path / "o" / "scale.json").read_text())
    assert meta["backend"].startswith("ONNX Runtime") and meta["untrained_model"] is True

    res = run(*common, "--backend", "onnxruntime", "--model", str(model), "--out", str(tmp_path / "o2"))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "needs an exported .onnx file" in res.stderr
