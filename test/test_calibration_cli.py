"""`depth-annotation calibrate`: offline calibration from real photographs (and its refusals and errors)."""

from __future__ import annotations

import json
import subprocess

import cv2
import numpy as np
import pytest
from ros_harness import VENV_BIN

from depth_annotation.calibration import BoardDetector, BoardSpec, calibrate_intrinsics, calibrate_stereo
from depth_annotation.common import from_camera_info_yaml
from depth_annotation.dataset import bag_io

BOARD_ARGS = ["--board", "checkerboard", "--squares-x", "9", "--squares-y", "6", "--square-length-m", "0.025"]
REAL_BOARD = BoardSpec(kind="checkerboard", squares_x=10, squares_y=7, square_length_m=0.025)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "depth-annotation"), "calibrate", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def stereo_dir(shared_data):
    return shared_data / "calibration" / "stereo_640x512"


def detections(folder, pattern):
    det = BoardDetector(REAL_BOARD)
    return [det.detect(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)) for f in sorted(folder.glob(pattern))]


def test_real_stereo_photographs_offline(stereo_dir, tmp_path):
    out = tmp_path / "out"
    res = run("--images", f"{stereo_dir}/left*.jpg", "--right-images", f"{stereo_dir}/right*.jpg", *BOARD_ARGS,
              "--out", str(out))  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "calibrate: 100%" in res.stderr  # the progress bar
    doc = json.loads((out / "calibration.json").read_text())
    assert set(doc) >= {"intrinsics", "stereo", "schema_version"}
    left, right = detections(stereo_dir, "left*.jpg"), detections(stereo_dir, "right*.jpg")
    core = calibrate_intrinsics(left, REAL_BOARD, (640, 512), min_views=10)
    core_right = calibrate_intrinsics(right, REAL_BOARD, (640, 512), min_views=10)
    intr = doc["intrinsics"]
    assert intr["views_used"] == 12 and intr["forced"] is False and intr["failed_gates"] == []
    assert intr["board"]["squares_x"] == 10 and intr["image_size"] == [640, 512]  # 9 inner corners = 10 squares
    # The CLI runs in another process: OpenCV's threaded reductions sum in another order there, which
    # moves the solution by up to a few 1e-6 relative (seen: 2.7e-6 on a distortion coefficient under load).
    for key in ("fx", "fy", "cx", "cy", "d"):
        assert intr["intrinsics"][key] == pytest.approx(getattr(core.intrinsics, key), rel=2e-5, abs=1e-9), key
    assert intr["std_dev"]["fx"] == pytest.approx(core.std_dev["fx"], rel=5e-5)
    assert set(intr["coverage"]) == {"x", "y", "size", "skew"} and 0 < intr["corner_coverage"] <= 1
    stereo = doc["stereo"]
    assert stereo["right_intrinsics"]["intrinsics"]["fx"] == pytest.approx(core_right.intrinsics.fx, rel=2e-5)
    core_stereo = calibrate_stereo(
        list(zip(left, right, strict=True)), REAL_BOARD, core.intrinsics, core_right.intrinsics
    )
    assert stereo["pairs_used"] == 12 and stereo["baseline_m"] == pytest.approx(core_stereo.baseline_m, rel=2e-5)
    for name, result in (("camera_color", core), ("camera_color_right", core_right)):
        yaml_intr = from_camera_info_yaml((out / f"{name}.yaml").read_text())
        assert yaml_intr.fx == pytest.approx(result.intrinsics.fx, rel=2e-5) and yaml_intr.width == 640
        png = cv2.imread(str(out / f"{name}_report.png"))
        assert png is not None and png.shape[0] > 500 and png.shape[1] > 800


def test_refused_calibration_writes_a_report_and_no_calibration(stereo_dir, tmp_path):
    three = f"{stereo_dir}/left0[1-3].jpg"
    res = run("--images", three, *BOARD_ARGS, "--min-views", "3", "--out", str(tmp_path / "a"), "--quiet")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "FAILED: refused:" in res.stdout and "uncertain" in res.stdout
    assert not (tmp_path / "a" / "calibration.json").exists() and (tmp_path / "a" / "camera_color_report.png").exists()
    forced = run("--images", three, *BOARD_ARGS, "--min-views", "3", "--force", "--out", str(tmp_path / "b"), "--quiet")
    assert forced.returncode == 0, forced.stderr
    doc = json.loads((tmp_path / "b" / "calibration.json").read_text())["intrinsics"]
    assert doc["forced"] is True and doc["failed_gates"] and doc["views_used"] == 3


def test_bad_input_gets_one_line_naming_the_cause(stereo_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    res = run("--images", str(tmp_path / "empty"), *BOARD_ARGS, "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and res.stderr.strip() == f"error: {tmp_path / 'empty'}: no .png/.jpg/.bmp/.tif images"
    res = run("--images", f"{stereo_dir}/left*.jpg", "--right-images", f"{stereo_dir}/right0*.jpg", *BOARD_ARGS,
              "--out", str(tmp_path / "o"))  # fmt: skip
    assert res.returncode == 2 and "12 images in" in res.stderr and "but 9 in" in res.stderr
    bag = tmp_path / "bag"
    with bag_io.BagWriter(bag, storage="mcap") as w:
        w.add_topic("/other", "sensor_msgs/msg/Image")
        w.write("/other", 1, bag_io.image(np.zeros((4, 4), np.uint8), "mono8", 1, "cam"))
    res = run("--bag", str(bag), *BOARD_ARGS, "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "/camera/color/image_raw not in the bag" in res.stderr
    res = run("--images", str(tmp_path / "empty"), "--board", "charuco", "--squares-x", "2", "--squares-y", "5",
              "--square-length-m", "0.04", "--out", str(tmp_path / "o"))  # fmt: skip
    assert res.returncode == 2 and "at least 3x3 squares" in res.stderr
    assert not (tmp_path / "o" / "calibration.json").exists()
