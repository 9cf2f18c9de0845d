"""Quality of service for our topics, as REP-2003 and image_pipeline choose it.

Publishers of sensor streams are reliable (SystemDefault): rviz2's image display,
Humble's depth_image_proc and `ros2 bag record` all subscribe reliably, and a
best-effort publisher leaves them with "incompatible QoS" and nothing to show.
Our own stream subscribers stay best effort (a reliable publisher serves them too,
and they never slow a publisher down). Every stream publisher accepts
`qos_overrides` (rclpy's standard parameters, e.g.
`qos_overrides./camera/color/image_raw.publisher.reliability: best_effort`), so a
deployment can choose per topic without code changes.
"""

from __future__ import annotations

from typing import Any

from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions

# SystemDefault-like: reliable, volatile, keep last. Depth 5 bounds what a slow reliable
# subscriber makes the publisher keep for retransmission.
STREAM_PUBLISHER_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)


def stream_publisher(node: Node, msg_type: Any, topic: str) -> Publisher:
    """A sensor-stream publisher: reliable by default, overridable per topic."""
    return node.create_publisher(
        msg_type, topic, STREAM_PUBLISHER_QOS, qos_overriding_options=QoSOverridingOptions.with_default_policies()
    )
