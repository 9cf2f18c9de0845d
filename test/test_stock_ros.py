"""The node graph in a stock ROS 2 environment: what `ros2`, rviz2 and a user's own nodes see.

Every process here (our nodes and the probe) runs with no DDS/RMW variable at all, only a
private ROS_DOMAIN_ID, as in a plain shell on a robot. (`./dev.sh test` runs the suite in a
private loopback-only network namespace, so stock multicast discovery stays on this machine.)
"""

from __future__ import annotations

import json
import re
import sys

import pytest
from ros_harness import REPO, executable, start_process, wait_until

PROBE = REPO / "test" / "helpers" / "graph_probe.py"
READY = re.compile(r"\[INFO\] \[(\d+\.\d+)\] \[([\w.]+)\]: ready")
NODES = ("realsense_node", "coverage_qc_node", "calibration_node")
# Issue 13's figures (discovery within 2 s, 5 frames/s) are measured in bench/ on an idle machine; here,
# beside other test processes on two cores, the test proves discovery without the old failure (never,
# in 20 s) and that images flow in order.
DISCOVERY_LIMIT_S = 10.0
MIN_STOCK_FPS = 1.0


def _ready_times(procs) -> dict[str, float]:
    """Fully qualified node name -> wall time it logged `ready` (just before it spins)."""
    out = {}
    for p in procs:
        for stamp, logger in READY.findall(p.output()):
            out["/" + logger.replace(".", "/")] = float(stamp)
    return out


@pytest.fixture
def stock_graph(procs, tmp_path):
    started = []
    cfg = REPO / "config"
    for exe in NODES:
        cmd = [str(executable(exe)), "--ros-args", "--params-file", str(cfg / f"{exe.removesuffix('_node')}.yaml")]
        cmd += ["-r", "__ns:=/camera", "-p", f"output_dir:={tmp_path / exe}"]
        started.append(procs.command(cmd, exe, stock=True))
    return started


def test_default_rclpy_process_discovers_calls_and_receives(stock_graph, procs, tmp_path):
    spec = {
        "nodes": [f"/camera/{n}" for n in NODES],
        "discovery_timeout_s": 60.0,
        "services": [["/camera/write_report", "Trigger"], ["/camera/calibration_node/list_parameters", "List"]],
        # rviz2's Image/Camera displays subscribe reliable, volatile, keep last (rviz_common's default
        # profile); the probe does the same: colour, depth and camera_info must all match it.
        "topics": [
            ["/camera/color/image_raw", "Image"],
            ["/camera/aligned_depth_to_color/image_raw", "Image"],
            ["/camera/color/camera_info", "CameraInfo"],
            ["/camera/aligned_depth_to_color/camera_info", "CameraInfo"],
        ],
        "listen_s": 6.0,
    }
    probe = start_process([sys.executable, str(PROBE), json.dumps(spec)], "probe", tmp_path / "logs", stock=True)
    assert wait_until(lambda: probe.proc.poll() is not None, 120), "the probe did not finish"
    assert probe.proc.returncode == 0, probe.output()[-3000:]
    result = json.loads(probe.output().strip().splitlines()[-1])
    ready = _ready_times(stock_graph)
    for name in spec["nodes"]:
        assert name in ready, f"{name} never logged ready:\n" + "\n".join(p.output()[-1500:] for p in stock_graph)
        assert name in result["nodes"], f"a default rclpy process never discovered {name}"
        both_up = max(ready[name], result["probe_ready"])  # discovery needs both participants
        delay = result["nodes"][name] - both_up
        assert delay < DISCOVERY_LIMIT_S, f"{name} discovered {delay:.2f} s after both it and the probe were up"
    assert all(result["services"].values()), result["services"]
    # Stock Fast DDS carries 640x480 images over fragmented UDP (its shared-memory segment is
    # 512 KB): a reliable subscriber got 97-100 % of 30 fps between two otherwise idle processes
    # here, far less when the two cores are busy (README "Middleware"). Images must arrive, in
    # order, from the driver's stream (a delivery that drops to zero fails).
    for topic, stamps in result["topics"].items():
        fps = len(stamps) / spec["listen_s"]
        assert fps >= MIN_STOCK_FPS, f"{topic}: {fps:.1f} frames/s reached a reliable default subscriber (30 sent)"
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), f"{topic}: stamps out of order or repeated"
