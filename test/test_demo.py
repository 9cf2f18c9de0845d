"""The README's main command in short mode: it runs, and everything it writes exists, parses and checks out."""

import json
import subprocess

import h5py
from ros_harness import VENV_BIN


def test_demo_short_end_to_end(tmp_path):
    out = tmp_path / "demo"
    res = subprocess.run(
        [str(VENV_BIN / "depth-annotation"), "demo", "--short", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "| calibration" in res.stdout and "dataset checks                 | passed" in res.stdout
    summary = json.loads((out / "demo_summary.json").read_text())
    assert summary["calibration"]["success"] and summary["calibration"]["rms_px"] < 0.5
    assert summary["dataset_problems"] == []
    meta = json.loads((out / "captures" / "demo" / "capture_metadata.json").read_text())
    assert meta["final"] and meta["sensor"]["source"] == "synthetic"
    qc = json.loads((out / "qc" / "qc_report.json").read_text())
    assert qc["frames"] > 30 and qc["valid_fraction"]["mean"] > 0.85
    assert "<img" in (out / "qc" / "qc_report.html").read_text()
    cal = json.loads((out / "calibration" / "calibration.json").read_text())
    assert cal["intrinsics"]["rms_px"] == summary["calibration"]["rms_px"]
    with h5py.File(out / "dataset" / "export" / "dataset.h5") as f:
        g = f["episode_0"]
        assert g["depth"].shape[0] > 20 and "qc" in g
    assert json.loads((out / "dataset" / "dataset_info.json").read_text())["schema_version"] == 1
    assert (out / "dataset" / "preview.png").stat().st_size > 10_000

    check = subprocess.run(
        [str(VENV_BIN / "depth-annotation"), "check", str(out / "dataset")], capture_output=True, text=True
    )
    assert check.returncode == 0 and "dataset OK" in check.stdout
    png = tmp_path / "view.png"
    view = subprocess.run(
        [
            str(VENV_BIN / "depth-annotation"),
            "view",
            str(out / "dataset" / "export" / "dataset.h5"),
            "--frame",
            "3",
            "--out",
            str(png),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert view.returncode == 0, view.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run(
        [str(VENV_BIN / "depth-annotation"), "view", str(out / "dataset" / "export" / "dataset.h5"), "--episode", "7"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "no episode_7" in bad.stderr
