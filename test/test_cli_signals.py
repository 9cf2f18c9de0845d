"""SIGINT and SIGTERM mid-work for the long commands (`calibrate`, `mono`): one line, 130 / 143, OUT as it was.

Each run starts on an output folder holding an earlier result, is signalled while it is working
(mid-input, or after its files were written into its staging folder but before they were moved
in), and must leave that earlier result byte for byte, no staging folder, and say what happened in
one line. (`export` has the same cases in test_export_faults.py; nodes in test_node_faults.py.)
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from ros_harness import VENV_BIN, wait_until

from depth_annotation.calibration import BoardSpec, render_board, varied_board_poses
from depth_annotation.common import Intrinsics, SyntheticScene, default_intrinsics, orbit_pose
from depth_annotation.mono import save_tiny_model

SIGNALS = [(signal.SIGINT, 130), (signal.SIGTERM, 143)]
CAMERA = Intrinsics(640, 480, 600.0, 604.0, 322.5, 237.8)
BOARD = BoardSpec()
BOARD_ARGS = ["--board", "charuco", "--squares-x", "7", "--squares-y", "5", "--square-length-m", "0.04"]


def start(cmd: list[str], tmp_path: Path, name: str) -> tuple[subprocess.Popen, Path]:
    err = tmp_path / f"{name}.stderr"
    with open(err, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=fh)
    return proc, err


def messages(err: Path) -> list[str]:
    """stderr without the progress bar's redraws: the lines a user reads."""
    lines = [part.strip() for line in err.read_text(errors="replace").splitlines() for part in line.split("\r")]
    return [line for line in lines if line and not re.search(r"\[\d+:\d+(<|, )", line)]  # tqdm: [00:01<00:03


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def earlier_result(out: Path, files: dict[str, bytes]) -> dict[str, bytes]:
    for rel, data in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    return snapshot(out)


# --- calibrate ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def board_images(tmp_path_factory) -> Path:
    """200 ChArUco views (8 rendered poses, repeated): detection takes seconds, the solve works."""
    folder = tmp_path_factory.mktemp("views")
    poses = varied_board_poses(BOARD, CAMERA, 8, seed=5)
    views = [render_board(BOARD, CAMERA, pose, noise_sigma=1.0).image for pose in poses]
    for i in range(200):
        cv2.imwrite(str(folder / f"view_{i:03d}.png"), views[i % len(views)])
    return folder


# After OfflineCalibration.finish wrote every file (into the staging folder), say so and keep working:
# a signal now is the worst moment for a command that writes OUT in place.
SLOW_FINISH = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from depth_annotation.calibration import offline
    from depth_annotation.cli.main import main

    FLAG = Path(sys.argv[1])
    original = offline.OfflineCalibration.finish

    def finish(self, *args, **kwargs):
        outcome = original(self, *args, **kwargs)
        FLAG.write_text("\\n".join(str(p) for p in outcome.files))
        time.sleep(60)
        return outcome

    offline.OfflineCalibration.finish = finish
    sys.exit(main(sys.argv[2:]))
    """
)


@pytest.mark.parametrize("sig, rc", SIGNALS, ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("phase", ["detecting", "files_written"])
def test_calibrate_signal_leaves_out_as_it_was(board_images, tmp_path, sig, rc, phase):
    out = tmp_path / "cal"
    before = earlier_result(
        out, {"calibration.json": b'{"schema_version": 1, "earlier": true}\n', "camera_color.yaml": b"earlier\n"}
    )
    args = ["calibrate", "--images", str(board_images), *BOARD_ARGS, "--min-views", "5", "--out", str(out)]
    flag = tmp_path / "written"
    if phase == "detecting":
        proc, err = start([str(VENV_BIN / "depth-annotation"), *args], tmp_path, "calibrate")
        # tqdm's redraws: at least 3 of the 200 images done, so the run is mid-input
        assert wait_until(lambda: max(map(int, re.findall(r"(\d+)/200", err.read_text())), default=0) >= 3, 120)
    else:
        script = tmp_path / "slow_finish.py"
        script.write_text(SLOW_FINISH)
        proc, err = start([sys.executable, str(script), str(flag), *args], tmp_path, "calibrate")
        assert wait_until(flag.exists, 240), err.read_text()
        written = [Path(p) for p in flag.read_text().splitlines()]
        assert written and all(p.is_file() and ".calibrate.partial-" in str(p) for p in written), written
    assert proc.poll() is None, err.read_text()
    proc.send_signal(sig)
    assert proc.wait(60) == rc, err.read_text()
    assert messages(err) == [f"interrupted by {sig.name}: nothing written ({out} left as it was)"], err.read_text()
    assert snapshot(out) == before  # the earlier calibration, byte for byte; no staging folder, no report
    assert sorted(p.name for p in out.iterdir()) == ["calibration.json", "camera_color.yaml"]


def test_calibrate_into_a_new_folder_interrupted_creates_nothing(board_images, tmp_path):
    out = tmp_path / "new" / "cal"
    script = tmp_path / "slow_finish.py"
    script.write_text(SLOW_FINISH)
    flag = tmp_path / "written"
    args = ["calibrate", "--images", str(board_images), *BOARD_ARGS, "--min-views", "5", "--out", str(out)]
    proc, err = start([sys.executable, str(script), str(flag), *args], tmp_path, "calibrate")
    assert wait_until(flag.exists, 240), err.read_text()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 143, err.read_text()
    assert not out.exists() and (tmp_path / "new").is_dir()  # what the run made is gone, nothing else


# --- mono ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mono_inputs(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("mono")
    model = save_tiny_model(root / "tiny")
    images = root / "imgs"
    images.mkdir()
    scene, intr = SyntheticScene(0), default_intrinsics(160, 120)
    frames = [scene.render(intr, orbit_pose(i * 0.2), frame_seed=i).color for i in range(4)]
    for i in range(400):
        cv2.imwrite(str(images / f"{i:04d}.png"), cv2.cvtColor(frames[i % 4], cv2.COLOR_RGB2BGR))
    scale = root / "calibration.json"
    scale.write_text('{"mono_scale": {"scale": 2.0, "shift": 0.1}}')
    return model, images, scale


@pytest.mark.parametrize("sig, rc", SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_mono_signal_mid_folder_leaves_the_earlier_result(mono_inputs, tmp_path, sig, rc):
    model, images, scale = mono_inputs
    out = tmp_path / "depth_out"
    old_png = cv2.imencode(".png", np.full((120, 160), 1234, np.uint16))[1].tobytes()
    before = earlier_result(out, {"depth/0000.png": old_png, "depth/old.png": old_png, "scale.json": b"{}\n"})
    cmd = [str(VENV_BIN / "depth-annotation"), "mono", "--images", str(images), "--model", str(model)]
    cmd += ["--scale-file", str(scale)]
    proc, err = start([*cmd, "--out", str(out), "--overwrite"], tmp_path, "mono")

    def staged_pngs() -> list[Path]:
        return list(out.glob(".mono.partial-*/depth/*.png"))

    assert wait_until(lambda: len(staged_pngs()) >= 3, 240), err.read_text()
    assert proc.poll() is None, err.read_text()
    proc.send_signal(sig)
    started = time.monotonic()
    assert proc.wait(60) == rc, err.read_text()
    assert time.monotonic() - started < 30
    said = messages(err)
    assert len(said) == 1 and re.fullmatch(
        rf"interrupted by {sig.name}: no depth written \((\d+) frame\(s\) done were discarded; {re.escape(str(out))} "
        r"left as it was\)",
        said[0],
    ), err.read_text()
    assert 3 <= int(re.search(r"\((\d+) frame", said[0]).group(1)) < 400
    assert snapshot(out) == before  # the earlier depth folder, byte for byte; no new PNG, no staging folder
    assert sorted(p.name for p in out.iterdir()) == ["depth", "scale.json"]


# --- batch ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sig, rc", SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_batch_signal_keeps_the_finished_bags_and_removes_the_rest(tmp_path, sig, rc):
    pytest.importorskip("ray")
    from depth_annotation.dataset import write_synthetic_bag

    bags = tmp_path / "bags"
    for i in range(8):
        write_synthetic_bag(bags / f"bag_{i}", frames=90, width=160, height=120, seed=i)
    out = tmp_path / "out"
    cmd = [str(VENV_BIN / "depth-annotation"), "batch", "export", "--bags", str(bags / "bag_*"), "--out", str(out)]
    proc, err = start([*cmd, "--num-workers", "1", "--quiet"], tmp_path, "batch")

    def markers() -> list[Path]:
        return list(out.glob(".batch/*.export.json"))

    # one bag at a time: at least one published and marked, so the run is between bags or in one
    assert wait_until(lambda: len(markers()) >= 1 or proc.poll() is not None, 240), err.read_text()
    assert proc.poll() is None and len(markers()) < 8, err.read_text()
    proc.send_signal(sig)
    assert proc.wait(120) == rc, err.read_text()
    text = err.read_text()
    said = [line for line in text.splitlines() if line.startswith("interrupted by")]
    assert said == [
        f"interrupted by {sig.name}: the bags finished before it are published with their done-markers "
        f"(a rerun skips them); those in progress were stopped and their staging folders "
        f"({out / '.batch' / 'staging'}) removed"
    ], text
    assert "Traceback" not in text
    done = sorted(p.name.removesuffix(".export.json") for p in markers())
    assert done and sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == done
    assert not (out / ".batch" / "staging").exists()
    for stem in done:  # each published bag is a whole dataset
        check = subprocess.run(
            [str(VENV_BIN / "depth-annotation"), "check", str(out / stem)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
