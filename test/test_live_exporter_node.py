"""Live export (node fed by a replay) writes the same content as the offline command; record/play round trip;
the deprecated names (bag_exporter_node, out_dir) still start the same node."""

import json
import subprocess

import h5py
import numpy as np
from ros_harness import VENV_BIN, wait_until

from depth_annotation.common import NO_QC, QcStatus
from depth_annotation.dataset import DEFAULT_TOPICS, bag_io, write_synthetic_bag

W, H = 320, 240


def cli(*args, timeout=180):
    return subprocess.run(
        [str(VENV_BIN / "depth-annotation"), *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def test_live_export_matches_offline(procs, tmp_path):
    bag = tmp_path / "bag"
    write_synthetic_bag(bag, frames=20, width=W, height=H, storage="mcap", hole_frames=frozenset({4}))
    assert (
        cli(
            "export", "--quiet", bag, "--out", tmp_path / "offline", "--scene", f"{bag}=live", "--every", "5"
        ).returncode
        == 0
    )

    exporter = procs.node(
        "live_exporter_node", params={"output_dir": str(tmp_path / "live"), "scene_id": "live", "every_k": 5}
    )
    wait_until(lambda: "exporting" in exporter.output(), 30)
    played = cli("play", bag, "--rate", "0.5")
    assert played.returncode == 0, played.stderr
    assert "published 81 messages" in played.stdout  # 20 x (color, depth, info, quality) + tf_static
    assert exporter.stop(timeout=60) == 0, exporter.output()

    # The replay publishes the images best effort (as recorded), and the exporter subscribes best effort:
    # a message may be lost in delivery. Compare on what the live run received: every frame it wrote is
    # the offline frame with that stamp, and at most one of the 20 frames (or one QC report) is missing.
    with (
        h5py.File(tmp_path / "offline" / "export" / "dataset.h5") as off,
        h5py.File(tmp_path / "live" / "export" / "dataset.h5") as live,
    ):
        a, b = off["episode_0"], live["episode_0"]
        offline_stamps, live_stamps = a["timestamps_ns"][:].tolist(), b["timestamps_ns"][:].tolist()
        assert len(offline_stamps) == 20
        assert len(live_stamps) >= 19 and set(live_stamps) <= set(offline_stamps), live_stamps
        rows = [offline_stamps.index(t) for t in live_stamps]  # in order: timestamps_ns increases
        for name in ("depth", "color"):
            assert np.array_equal(a[name][:][rows], b[name][:]), name
        for name in ("camera_intrinsics", "K", "D"):
            assert np.array_equal(a[name][:], b[name][:]), name
        status, valid = b["qc/status"][:], b["qc/valid_fraction"][:]
        reported = status != NO_QC  # a frame whose DepthQuality was lost has no QC: NO_QC, NaN
        assert (~reported).sum() <= 1, status
        assert np.array_equal(a["qc/status"][:][rows][reported], status[reported])
        assert np.array_equal(a["qc/valid_fraction"][:][rows][reported], valid[reported])
        assert np.isnan(valid[~reported]).all()
        assert a["depth"].compression == b["depth"].compression
        # the annotation frames: every 5th frame of the episode, QC-flagged ones left out (every_k, exclude_flagged)
        expected_tasks = [t for i, t in enumerate(live_stamps) if i % 5 == 0 and status[i] != QcStatus.FLAGGED]
    off_tasks = json.loads((tmp_path / "offline" / "annotation" / "label_studio_tasks.json").read_text())
    live_tasks = json.loads((tmp_path / "live" / "annotation" / "label_studio_tasks.json").read_text())
    assert [int(t["data"]["stamp_ns"]) for t in live_tasks] == expected_tasks  # (a string in the JSON)
    if live_stamps == offline_stamps:  # nothing lost: the same tasks as the offline export
        assert [t["data"]["stamp_ns"] for t in off_tasks] == [t["data"]["stamp_ns"] for t in live_tasks]


def test_record_play_round_trip(procs, tmp_path):
    src = tmp_path / "src"
    frames = write_synthetic_bag(src, frames=15, width=W, height=H, storage="sqlite3")
    topics = [DEFAULT_TOPICS["depth"], DEFAULT_TOPICS["color"], DEFAULT_TOPICS["info"]]
    rec = procs.command(
        [str(VENV_BIN / "depth-annotation"), "record", *topics, "--out", str(tmp_path / "rec"), "--duration", "8"],
        "recorder",
    )
    wait_until(lambda: False, 2.0)  # let the recorder subscribe before the replay starts
    played = cli("play", src, "--rate", "0.5")
    assert played.returncode == 0, played.stderr
    assert rec.wait_exit(60) == 0, rec.output()
    with bag_io.open_bag(tmp_path / "rec") as r:
        info = bag_io.topics(r)
        # played and recorded best effort (as the source bag says): a message may be lost in delivery
        assert all(14 <= info[t].count <= 15 for t in topics), {t: info[t].count for t in topics}
        assert info[DEFAULT_TOPICS["depth"]].qos[0].reliability.name == "BEST_EFFORT"  # QoS preserved
        got = [m for _, _, m in bag_io.messages(r, [DEFAULT_TOPICS["depth"]])]
    from depth_annotation.common import image_to_array

    sent = dict(frames)
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in got]
    assert stamps == [s for s, _ in frames if s in set(stamps)], stamps  # the sent frames, in order, once each
    assert all(np.array_equal(image_to_array(m), sent[s].depth_mm) for m, s in zip(got, stamps, strict=True))
    # and the recording exports like the original
    assert cli("export", "--quiet", tmp_path / "rec", "--out", tmp_path / "ds").returncode == 0


def test_old_executable_and_parameter_names_start_the_live_exporter(procs, tmp_path):
    out = tmp_path / "old_names"
    exporter = procs.node("bag_exporter_node", params={"out_dir": str(out)})
    assert wait_until(lambda: "exporting" in exporter.output(), 30), exporter.output()
    text = exporter.output()
    assert "[bag_exporter_node] deprecated: the executable is now live_exporter_node" in text
    assert "parameter 'out_dir' is deprecated: use 'output_dir'" in text
    assert f"to {out}" in text and "[live_exporter_node]" in text  # the same node, the old value
    assert exporter.stop(timeout=30) == 0, text
