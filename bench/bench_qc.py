"""Coverage QC: core cost per frame, and the node's sustained rate fed at 90 fps 640x480 and 30 fps 1280x720."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np

from depth_annotation.common import SyntheticScene, default_intrinsics, orbit_pose
from depth_annotation.qc import CoverageAnalyzer

REPO = Path(__file__).resolve().parents[1]
FEED_SECONDS = float(os.environ.get("BENCH_QC_SECONDS", "6"))


def _frames(w: int, h: int, n: int = 8) -> list[np.ndarray]:
    scene = SyntheticScene(0)
    intr = default_intrinsics(w, h)
    return [scene.render(intr, orbit_pose(0.0), frame_seed=i).depth_mm for i in range(n)]


def _core_ms(frames: list[np.ndarray]) -> tuple[float, float]:
    a = CoverageAnalyzer()
    for i in range(20):
        a.analyze_mm(frames[i % len(frames)], i + 1)
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(100):
            a.analyze_mm(frames[i % len(frames)], 1000 + i)
        runs.append((time.perf_counter() - t0) * 10.0)
    return min(runs), float(np.median(runs))


def _node_rate(frames: list[np.ndarray], fps: float) -> dict:
    """Feed the real node from this process; count DepthQuality replies."""
    env = dict(
        os.environ,
        ROS_DOMAIN_ID=str(150 + os.getpid() % 50),
        ROS_AUTOMATIC_DISCOVERY_RANGE="SYSTEM_DEFAULT",
        FASTDDS_DEFAULT_PROFILES_FILE=str(REPO / "config" / "dds" / "loopback_large_data.xml"),
    )
    os.environ.update(
        {k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_DEFAULT_PROFILES_FILE")}
    )
    proc = subprocess.Popen(
        [
            str(REPO / ".venv" / "bin" / "coverage_qc_node"),
            "--ros-args",
            "-r",
            "__ns:=/bench",
            "-p",
            "output_dir:=/tmp/bench_qc",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from depth_annotation.msg import DepthQuality
    from depth_annotation.nodes.messages import image_msg, make_header

    rclpy.init()
    node = rclpy.create_node("qc_bench_feeder")
    try:
        pub = node.create_publisher(
            Image,
            "/bench/aligned_depth_to_color/image_raw",
            QoSProfile(depth=30, reliability=ReliabilityPolicy.BEST_EFFORT),
        )
        got: list[float] = []
        node.create_subscription(DepthQuality, "/bench/depth_quality", lambda m: got.append(time.perf_counter()), 1000)
        deadline = time.monotonic() + 30
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        msgs = [image_msg(f, "16UC1", make_header(0, "cam")) for f in frames]
        period, n_sent = 1.0 / fps, int(FEED_SECONDS * fps)
        t0 = time.perf_counter()
        for i in range(n_sent):
            m = msgs[i % len(msgs)]
            m.header = make_header(1_000_000_000 + int(i * period * 1e9), "cam")
            pub.publish(m)
            while time.perf_counter() < t0 + (i + 1) * period:
                rclpy.spin_once(node, timeout_sec=0)
        sent_s = time.perf_counter() - t0
        end = time.monotonic() + 3
        while len(got) < n_sent and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
        return {
            "sent": n_sent,
            "feed fps": n_sent / sent_s,
            "analysed": len(got),
            "analysed %": 100.0 * len(got) / n_sent,
        }
    finally:
        node.destroy_node()
        rclpy.shutdown()
        proc.terminate()
        proc.wait(10)


def run() -> list[dict]:
    rows = []
    for (w, h), fps in (((640, 480), 90.0), ((1280, 720), 30.0)):
        frames = _frames(w, h)
        best, median = _core_ms(frames)
        row = {"resolution": f"{w}x{h}", "core ms (best)": best, "core ms (median)": median, "node fed at fps": fps}
        row.update({f"node {k}": v for k, v in _node_rate(frames, fps).items()})
        rows.append(row)
    return rows
