"""Middleware configurations: driver -> subscriber delivery, latency and discovery, stock vs our profiles.

realsense_node (synthetic camera, colour + aligned depth at 30 fps) publishes to a separate
subscriber process with SensorData QoS (what our QC, mono and exporter nodes use). Each side
runs with the environment of the case: stock (no DDS variable), one of config/dds/*.xml via
FASTDDS_DEFAULT_PROFILES_FILE, or FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA. Run through
`./dev.sh bench dds`, which runs in a private loopback-only network namespace when it can
(scripts/private_network.sh), so stock multicast discovery stays on this machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SECONDS = float(os.environ.get("BENCH_DDS_SECONDS", "8"))
DDS_VARIABLES = (
    "FASTDDS_DEFAULT_PROFILES_FILE",
    "FASTRTPS_DEFAULT_PROFILES_FILE",
    "FASTDDS_BUILTIN_TRANSPORTS",
    "ROS_AUTOMATIC_DISCOVERY_RANGE",
    "ROS_STATIC_PEERS",
    "ROS_LOCALHOST_ONLY",
    "RMW_IMPLEMENTATION",
)
CONFIGS = {
    "stock": {},
    "large_data_shm.xml": {"FASTDDS_DEFAULT_PROFILES_FILE": str(REPO / "config" / "dds" / "large_data_shm.xml")},
    "loopback_large_data.xml": {
        "FASTDDS_DEFAULT_PROFILES_FILE": str(REPO / "config" / "dds" / "loopback_large_data.xml")
    },
    "LARGE_DATA": {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"},
}
# (driver side, subscriber side)
CASES = [
    ("stock", "stock"),
    ("large_data_shm.xml", "large_data_shm.xml"),
    ("loopback_large_data.xml", "loopback_large_data.xml"),
    ("LARGE_DATA", "LARGE_DATA"),
    ("large_data_shm.xml", "stock"),
    ("loopback_large_data.xml", "stock"),
    ("LARGE_DATA", "stock"),
]
RESOLUTIONS = ("640x480x30", "1280x720x30")

SUBSCRIBER = textwrap.dedent(
    """
    import json, sys, time
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    ns, seconds, timeout = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    rclpy.init()
    node = rclpy.create_node("bench_dds_subscriber")
    up = time.time()
    got = {"color": [], "aligned": []}
    def cb(key):
        def on(msg):
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            got[key].append((time.time(), stamp))
        return on
    node.create_subscription(Image, ns + "/color/image_raw", cb("color"), qos_profile_sensor_data)
    node.create_subscription(Image, ns + "/aligned_depth_to_color/image_raw", cb("aligned"), qos_profile_sensor_data)
    first = None
    end = time.monotonic() + timeout
    while time.monotonic() < end and first is None:
        rclpy.spin_once(node, timeout_sec=0.02)
        if got["aligned"]:
            first = got["aligned"][0][0]
    if first is not None:
        for k in got:
            got[k].clear()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.02)
    print(json.dumps({"up": up, "first": first, "got": got}), flush=True)
    """
)


def _env(config: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DDS_VARIABLES}
    env.update(CONFIGS[config])
    return env


def _one(driver_cfg: str, sub_cfg: str, profile: str) -> dict[str, object]:
    ns = f"/bench_dds_{os.getpid()}"
    driver = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "realsense_node"), "--ros-args", "-r", f"__ns:={ns}",
         "-p", f"color_profile:={profile}", "-p", f"depth_profile:={profile}",
         "-p", "output_dir:=/tmp/bench_dds"],
        env=_env(driver_cfg), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        time.sleep(3.0)  # the driver imports and opens the SDK; discovery is timed from the subscriber's start
        out = subprocess.run(
            [sys.executable, "-c", SUBSCRIBER, ns, str(SECONDS), "20"],
            env=_env(sub_cfg), capture_output=True, text=True, timeout=SECONDS + 60,
        )  # fmt: skip
        result = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        os.killpg(driver.pid, signal.SIGINT)
        try:
            driver.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(5)
    row: dict[str, object] = {"driver": driver_cfg, "subscriber": sub_cfg, "resolution": profile}
    if result["first"] is None:
        row.update({"delivered %": 0.0, "latency p50 ms": "-", "latency p95 ms": "-", "first frame s": "none in 20 s"})
        return row
    fps = int(profile.split("x")[2])
    pairs = result["got"]["aligned"] + result["got"]["color"]
    lat = sorted(1000.0 * (recv - stamp) for recv, stamp in pairs)
    delivered = len(pairs) / (2 * fps * SECONDS)
    row.update({
        "delivered %": 100.0 * min(delivered, 1.0),
        "latency p50 ms": lat[len(lat) // 2],
        "latency p95 ms": lat[int(0.95 * (len(lat) - 1))],
        "first frame s": result["first"] - result["up"],
    })  # fmt: skip
    return row


def run() -> list[dict[str, object]]:
    return [_one(d, s, res) for res in RESOLUTIONS for d, s in CASES]
