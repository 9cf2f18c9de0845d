"""realsense2_camera in place of our driver (launch/realsense2_camera_pipeline.launch.py).

A stand-in publishes realsense-ros's topic names, frame ids, TF tree and QoS
(test/helpers/realsense2_standin.py); QC, calibration and the exporter run as that launch file
starts them (namespace /<camera_namespace>/<camera_name> = /camera/camera, push_to_driver off),
in a stock environment. QC and the exporter receive the stream and write it.
"""

from __future__ import annotations

import ast
import json

import h5py
from helpers.launch_equivalent import probe, start_node, start_standin
from ros_harness import REPO, WATCHED

NS = "camera/camera"  # realsense2_camera's defaults: camera_namespace:=camera camera_name:=camera
LAUNCH_FILE = REPO / "launch" / "realsense2_camera_pipeline.launch.py"


def test_pipeline_runs_on_realsense2_camera_topics_and_frames(procs, tmp_path):
    out = tmp_path / "dataset"
    start_standin(procs)
    start_node(procs, "coverage_qc_node", NS, {"output_dir": out / "qc"})
    start_node(procs, "calibration_node", NS, {"output_dir": out, "push_to_driver": False})
    start_node(procs, "live_exporter_node", NS, {"output_dir": out, "scene_id": "rs2"})
    spec = {
        "nodes": [f"/{NS}/{n}" for n in ("coverage_qc_node", "calibration_node", "live_exporter_node")],
        "discovery_timeout_s": 60.0,
        "services": [[f"/{NS}/calibration_node/list_parameters", "List"]],
        "topics": [[f"/{NS}/depth_quality", "DepthQuality"]],
        "count_subscribers": [f"/{NS}/aligned_depth_to_color/image_raw", f"/{NS}/color/image_raw"],
        "listen_s": 6.0,
    }
    result = probe(spec, tmp_path / "logs")
    assert set(spec["nodes"]) <= set(result["nodes"]), sorted(result["nodes"])
    # QC, calibration (depth check) and the exporter listen on realsense-ros's aligned depth topic
    assert result["subscribers"][f"/{NS}/aligned_depth_to_color/image_raw"] >= 3, result["subscribers"]
    quality = result["topics"][f"/{NS}/depth_quality"]
    assert len(quality) >= 30, f"QC judged {len(quality)} frames of the stand-in's stream in 6 s"
    # QC keeps the frame's header: realsense-ros's colour optical frame
    assert result["frame_ids"][f"/{NS}/depth_quality"] == ["camera_color_optical_frame"]
    params = result["parameters"][f"/{NS}/calibration_node/list_parameters"]
    assert "push_to_driver" in params
    WATCHED.clear()
    for p in procs.started:
        assert p.stop(timeout=60) == 0, p.output()[-2000:]
    report = json.loads((out / "qc" / "qc_report.json").read_text())
    assert report["source"] == f"/{NS}/aligned_depth_to_color/image_raw" and report["frames"] >= 30
    with h5py.File(out / "export" / "dataset.h5") as h5:
        episodes = [h5[k] for k in h5 if k.startswith("episode_")]
        depth = episodes[0]["depth"][0]
    # the stand-in's plane: 800 mm at the left edge to 1200 mm at the right
    assert abs(int(depth[240, 0]) - 800) <= 1 and abs(int(depth[240, -1]) - 1199) <= 1, depth[240, [0, -1]]


def test_launch_file_runs_our_nodes_in_realsense2_camera_namespace_with_push_to_driver_off():
    text = LAUNCH_FILE.read_text()
    tree = ast.parse(text)
    executables = {
        kw.value.value
        for call in ast.walk(tree)
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Node"
        for kw in call.keywords
        if kw.arg == "executable"
    }
    assert executables == {"coverage_qc_node", "calibration_node"}  # no driver of ours
    assert '"push_to_driver": False' in text and "LogInfo(msg=PUSH_TO_DRIVER_OFF)" in text
    assert 'PathJoinSubstitution([cfg("camera_namespace"), cfg("camera_name")])' in text
    assert '"mono_depth.launch.py", {"camera_namespace": ns' in text
    assert '"export.launch.py", {"camera_namespace": ns' in text
