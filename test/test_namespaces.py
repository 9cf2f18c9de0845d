"""Two cameras, `cam1` and `cam2`: the same node set (full.launch.py with enable_export:=true) as processes
in two namespaces, with camera_name:=cam1 / cam2, in a stock environment. Nothing collides: every topic
has one type, every topic of a camera's nodes is in its namespace, frame ids carry the camera name,
and each exporter writes its own camera's frames.
"""

from __future__ import annotations

import json

import h5py
from helpers.launch_equivalent import probe, start_camera
from ros_harness import WATCHED

CAMERAS = ("cam1", "cam2")
NODES = ("realsense_node", "coverage_qc_node", "calibration_node", "live_exporter_node")
LIGHT = {"spatial_filter.enable": False, "temporal_filter.enable": False}
SHARED_TOPICS = {"/tf_static", "/diagnostics", "/rosout", "/parameter_events"}


def test_two_cameras_in_two_namespaces_do_not_collide(procs, tmp_path):
    for cam in CAMERAS:
        # two drivers on two shared cores: 15 fps and no SDK filters keep the graph, not the CPU, under test
        start_camera(procs, cam, cam, tmp_path / cam, color_profile="640x480x15", depth_profile="640x480x15", **LIGHT)
    spec = {
        "nodes": [f"/{cam}/{n}" for cam in CAMERAS for n in NODES],
        "discovery_timeout_s": 90.0,
        "topics": [
            [f"/{cam}/{t}", kind]
            for cam in CAMERAS
            for t, kind in (
                ("color/image_raw", "Image"),
                ("aligned_depth_to_color/image_raw", "Image"),
                ("aligned_depth_to_color/camera_info", "CameraInfo"),
            )
        ],
        "count_subscribers": [f"/{cam}/aligned_depth_to_color/image_raw" for cam in CAMERAS],
        "listen_s": 8.0,
        "wait_timeout_s": 90.0,
        "min_tf_static": 2 * len(CAMERAS),
    }
    result = probe(spec, tmp_path / "logs")
    assert set(spec["nodes"]) <= set(result["nodes"]), sorted(result["nodes"])
    graph = result["graph"]
    for topic, types in graph.items():
        assert len(types) == 1, f"{topic} carries {types}"
        if topic not in SHARED_TOPICS and not topic.startswith("/graph_probe"):
            assert topic.split("/")[1] in CAMERAS, f"{topic} is outside the cameras' namespaces"
    for cam in CAMERAS:
        assert graph[f"/{cam}/status"] == ["depth_annotation/msg/CaptureStatus"]
        assert graph[f"/{cam}/calibration_node/status"] == ["std_msgs/msg/String"]
        # QC, calibration and the exporter of this camera, not the other camera's
        assert result["subscribers"][f"/{cam}/aligned_depth_to_color/image_raw"] >= 3, result["subscribers"]
        assert [f"{cam}_link", f"{cam}_depth_optical_frame"] in result["tf_static"], result["tf_static"]
        assert [f"{cam}_depth_optical_frame", f"{cam}_color_optical_frame"] in result["tf_static"]
        # camera_info first: small messages, they arrive even when the two cores are saturated
        for stream in ("aligned_depth_to_color/camera_info", "color/image_raw", "aligned_depth_to_color/image_raw"):
            assert result["topics"][f"/{cam}/{stream}"], f"nothing received on /{cam}/{stream}"
            assert result["frame_ids"][f"/{cam}/{stream}"] == [f"{cam}_color_optical_frame"]
    WATCHED.clear()
    for p in procs.started:
        assert p.stop(timeout=60) == 0, p.output()[-2000:]
    for cam in CAMERAS:
        report = json.loads((tmp_path / cam / "qc" / "qc_report.json").read_text())
        assert report["source"] == f"/{cam}/aligned_depth_to_color/image_raw" and report["frames"] > 0
        with h5py.File(tmp_path / cam / "export" / "dataset.h5") as h5:
            episodes = [h5[k] for k in h5 if k.startswith("episode_")]
            assert episodes and sum(len(e["depth"]) for e in episodes) > 0, f"{cam}: no frames exported"
        info = (tmp_path / cam / "dataset_info.json").read_text()
        other = next(c for c in CAMERAS if c != cam)
        assert f'"{cam}_color_optical_frame"' in info and f"{other}_" not in info, f"{cam}'s dataset names its frames"
