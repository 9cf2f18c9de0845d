"""A separate-process listener for play tests: subscribe to one std_msgs/String topic, print what arrives.

usage: topic_listener.py TOPIC COUNT TIMEOUT_S
Prints `listening` once subscribed, then, after COUNT messages (and half a second
more, so extra or repeated messages show) or TIMEOUT_S, the received strings as
one JSON list on the last line. Default QoS (reliable, volatile), as a stock node subscribes.
"""

import json
import sys
import time

import rclpy
from std_msgs.msg import String


def main() -> int:
    topic, count, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    rclpy.init()
    node = rclpy.create_node("play_listener")
    got: list[str] = []
    node.create_subscription(String, topic, lambda m: got.append(m.data), 100)
    print("listening", flush=True)
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    extra = time.monotonic() + 0.5
    while time.monotonic() < extra:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps(got), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
