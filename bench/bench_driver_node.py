"""realsense_node end to end: frames received by a subscriber in another process, node and subscriber CPU.

The synthetic camera through the real SDK, align + spatial + temporal, published over
DDS (loopback profile) to this process, which subscribes to colour and aligned depth,
as an annotation or QC node would. Everything shares the same cores.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
from bench_driver import cpu_seconds

REPO = Path(__file__).resolve().parents[1]
SECONDS = float(os.environ.get("BENCH_DRIVER_SECONDS", "8"))
CASES = (("640x480x30", True), ("1280x720x30", True), ("1280x720x30", False))


def _one(profile: str, processes: bool, node, image_type, qos) -> dict:
    import rclpy

    ns = f"/bench_drv_{os.getpid()}"
    proc = subprocess.Popen(
        [
            str(REPO / ".venv" / "bin" / "realsense_node"),
            "--ros-args",
            "-r",
            f"__ns:={ns}",
            "-p",
            f"color_profile:={profile}",
            "-p",
            f"depth_profile:={profile}",
            "-p",
            f"sdk_processes:={str(processes).lower()}",
            "-p",
            "output_dir:=/tmp/bench_driver_node",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    got = {"color": 0, "aligned": 0}

    def counter(key):
        def cb(_msg):
            got[key] += 1

        return cb

    subs = [
        node.create_subscription(image_type, f"{ns}/color/image_raw", counter("color"), qos),
        node.create_subscription(image_type, f"{ns}/aligned_depth_to_color/image_raw", counter("aligned"), qos),
    ]
    try:
        deadline = time.monotonic() + 60
        while got["aligned"] < 10 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
        root = psutil.Process(proc.pid)
        node_procs = [root, *root.children(recursive=True)]
        me = psutil.Process()
        a0, c0, n0, s0, t0 = (
            got["aligned"],
            got["color"],
            cpu_seconds(node_procs),
            cpu_seconds([me]),
            time.perf_counter(),
        )
        end = time.monotonic() + SECONDS
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
        a1, c1, n1, s1, t1 = (
            got["aligned"],
            got["color"],
            cpu_seconds(node_procs),
            cpu_seconds([me]),
            time.perf_counter(),
        )
    finally:
        for s in subs:
            node.destroy_subscription(s)
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    dt = t1 - t0
    return {
        "profile": profile,
        "SDK work in": "processes" if processes else "threads",
        "aligned depth received fps": (a1 - a0) / dt,
        "colour received fps": (c1 - c0) / dt,
        "node CPU % (incl. workers)": 100.0 * (n1 - n0) / dt,
        "subscriber CPU %": 100.0 * (s1 - s0) / dt,
    }


def run() -> list[dict]:
    os.environ.update(
        {
            "ROS_DOMAIN_ID": str(150 + os.getpid() % 50),
            "ROS_AUTOMATIC_DISCOVERY_RANGE": "SYSTEM_DEFAULT",
            "FASTDDS_DEFAULT_PROFILES_FILE": str(REPO / "config" / "dds" / "loopback_large_data.xml"),
        }
    )
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("driver_bench_subscriber")
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
    try:
        return [_one(profile, processes, node, Image, qos) for profile, processes in CASES]
    finally:
        node.destroy_node()
        rclpy.shutdown()
