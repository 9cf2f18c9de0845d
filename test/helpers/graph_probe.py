"""A default rclpy process, as `ros2`, rviz2 or a user's node is: what does it see of our graph?

Run in the environment the test gives it (the stock one: no DDS/RMW variables). Reads a
JSON spec from argv[1] and prints one JSON line:
  probe_ready: wall time this process's participant existed
  nodes:    {fully qualified name: wall time first discovered}
  services: {name: true/false (answered)} — std_srvs/Trigger or rcl_interfaces/ListParameters
  topics:   {name: [header stamps in ns received]} with rviz2's default subscription QoS
            (reliable, volatile, keep last 10)
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import rclpy
from rcl_interfaces.srv import ListParameters
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger

TYPES: dict[str, Any] = {"Image": Image, "CameraInfo": CameraInfo}


def main() -> None:
    spec = json.loads(sys.argv[1])
    rclpy.init()
    node = rclpy.create_node("graph_probe")
    probe_ready = time.time()
    seen: dict[str, float] = {}
    stamps: dict[str, list[int]] = {t: [] for t, _ in spec.get("topics", [])}
    rviz_default = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    for topic, type_name in spec.get("topics", []):

        def on_msg(msg: Any, topic: str = topic) -> None:
            stamps[topic].append(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)

        node.create_subscription(TYPES[type_name], topic, on_msg, rviz_default)
    deadline = time.monotonic() + spec["discovery_timeout_s"]
    wanted = set(spec["nodes"])
    while time.monotonic() < deadline and not wanted <= set(seen):
        rclpy.spin_once(node, timeout_sec=0.02)
        for name, ns in node.get_node_names_and_namespaces():
            fq = (ns.rstrip("/") + "/" + name) if ns != "/" else "/" + name
            seen.setdefault(fq, time.time())
    answered: dict[str, bool] = {}
    for service, kind in spec.get("services", []):
        srv_type = Trigger if kind == "Trigger" else ListParameters
        client = node.create_client(srv_type, service)
        ok = client.wait_for_service(timeout_sec=spec["discovery_timeout_s"])
        if ok:
            fut = client.call_async(srv_type.Request())
            end = time.monotonic() + 10.0
            while not fut.done() and time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=0.05)
            ok = fut.done() and fut.result() is not None
        answered[service] = ok
    end = time.monotonic() + spec.get("listen_s", 0.0)
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.02)
    print(json.dumps({"probe_ready": probe_ready, "nodes": seen, "services": answered, "topics": stamps}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
