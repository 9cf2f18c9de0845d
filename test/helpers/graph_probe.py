"""A default rclpy process, as `ros2`, rviz2 or a user's node is: what does it see of our graph?

Run in the environment the test gives it (the stock one: no DDS/RMW variables). Reads a
JSON spec from argv[1] and prints one JSON line:
  probe_ready: wall time this process's participant existed
  nodes:    {fully qualified name: wall time first discovered}
  services: {name: true/false (answered)} — std_srvs/Trigger or rcl_interfaces/ListParameters
  topics:   {name: [header stamps in ns received]} with rviz2's default subscription QoS
            (reliable, volatile, keep last)
  frame_ids: {topic: sorted header.frame_id values received}
  tf_static: sorted [parent, child] pairs on /tf_static (transient local, as tf2 listens)
  graph:    {topic name: [type names]} as the probe saw the graph at the end
  (after listen_s it spins on, up to wait_timeout_s, until every topic delivered and /tf_static
  holds min_tf_static transforms)
  fields:   {topic: [values of the field spec["fields"][topic] in each message]}
  parameters: {ListParameters service: [parameter names]}
  subscribers: {topic: subscriber count at the end} for spec["count_subscribers"]
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import rclpy
from rcl_interfaces.srv import ListParameters
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage

from depth_annotation.msg import DepthQuality, MonoFitQuality

TYPES: dict[str, Any] = {
    "Image": Image,
    "CameraInfo": CameraInfo,
    "DepthQuality": DepthQuality,
    "MonoFitQuality": MonoFitQuality,
}


def main() -> None:
    spec = json.loads(sys.argv[1])
    rclpy.init()
    node = rclpy.create_node("graph_probe")
    probe_ready = time.time()
    seen: dict[str, float] = {}
    stamps: dict[str, list[int]] = {t: [] for t, _ in spec.get("topics", [])}
    frame_ids: dict[str, set[str]] = {t: set() for t in stamps}
    tf_static: set[tuple[str, str]] = set()
    fields: dict[str, list[Any]] = {t: [] for t in spec.get("fields", {})}
    parameters: dict[str, list[str]] = {}
    latched = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(
        TFMessage,
        "/tf_static",
        lambda m: tf_static.update((t.header.frame_id, t.child_frame_id) for t in m.transforms),
        latched,
    )
    rviz_default = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    for topic, type_name in spec.get("topics", []):

        def on_msg(msg: Any, topic: str = topic) -> None:
            stamps[topic].append(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)
            frame_ids[topic].add(msg.header.frame_id)
            if topic in spec.get("fields", {}):
                fields[topic].append(getattr(msg, spec["fields"][topic]))

        node.create_subscription(TYPES[type_name], topic, on_msg, rviz_default)
    deadline = time.monotonic() + spec["discovery_timeout_s"]
    wanted = set(spec["nodes"])
    while time.monotonic() < deadline and not wanted <= set(seen):
        rclpy.spin_once(node, timeout_sec=0.02)
        for name, ns in node.get_node_names_and_namespaces():
            fq = (ns.rstrip("/") + "/" + name) if ns != "/" else "/" + name
            seen.setdefault(fq, time.time())
    answered: dict[str, bool] = {}
    errors: dict[str, str] = {}
    for service, kind in spec.get("services", []):
        srv_type = Trigger if kind == "Trigger" else ListParameters
        client = node.create_client(srv_type, service)
        ok = client.wait_for_service(timeout_sec=spec["discovery_timeout_s"])
        errors[service] = "" if ok else "not discovered"
        for _ in range(spec.get("call_attempts", 1) if ok else 0):  # a request can be lost on a busy graph
            fut = client.call_async(srv_type.Request())
            end = time.monotonic() + spec.get("call_timeout_s", 10.0)
            while not fut.done() and time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=0.05)
            ok = fut.done() and fut.result() is not None
            errors[service] = "" if ok else "no answer"
            if ok:
                if srv_type is ListParameters:
                    parameters[service] = list(fut.result().result.names)
                break
        answered[service] = ok
    end = time.monotonic() + spec.get("listen_s", 0.0)
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.02)
    # then, on a slow machine, until every topic delivered once and /tf_static holds enough transforms
    end = time.monotonic() + spec.get("wait_timeout_s", 0.0)
    while time.monotonic() < end and (not all(stamps.values()) or len(tf_static) < spec.get("min_tf_static", 0)):
        rclpy.spin_once(node, timeout_sec=0.02)
    result = {
        "probe_ready": probe_ready,
        "nodes": seen,
        "services": answered,
        "topics": stamps,
        "frame_ids": {t: sorted(ids) for t, ids in frame_ids.items()},
        "tf_static": sorted(tf_static),
        "graph": dict(node.get_topic_names_and_types()),
        "fields": fields,
        "parameters": parameters,
        "service_errors": errors,
        "subscribers": {t: node.count_subscribers(t) for t in spec.get("count_subscribers", [])},
    }
    print(json.dumps(result), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
