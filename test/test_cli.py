"""The offline command renders the synthetic scene to files a person can open."""

import json
import subprocess

import cv2
import numpy as np
from ros_harness import VENV_BIN


def test_synth_writes_frames_and_ground_truth(tmp_path):
    out = tmp_path / "synth"
    res = subprocess.run(
        [
            str(VENV_BIN / "depth-annotation"),
            "synth",
            "--out",
            str(out),
            "--frames",
            "2",
            "--width",
            "320",
            "--height",
            "240",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 2 and summary["mean_valid_coverage"] > 0.85
    depth = cv2.imread(str(out / "depth16" / "000001.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.shape == (240, 320)
    assert 300 < np.median(depth[depth > 0]) < 3000  # millimetres of a tabletop scene
    assert cv2.imread(str(out / "depth_color" / "000000.png")).shape == (240, 320, 3)
    intr = json.loads((out / "intrinsics.json").read_text())
    assert intr["width"] == 320

    again = subprocess.run(
        [str(VENV_BIN / "depth-annotation"), "synth", "--out", str(out)], capture_output=True, text=True
    )
    assert again.returncode == 2 and "not empty" in again.stderr  # never overwrites silently
