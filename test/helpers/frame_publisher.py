"""A separate-process image publisher for record tests: numbered frames at a fixed rate, each send logged.

usage: frame_publisher.py TOPIC WIDTH HEIGHT HZ COUNT
Publishes `COUNT` rgb8 images (reliable, as a stock node), header.frame_id = the frame's number,
header.stamp = its number in seconds, once a subscriber is matched (up to 30 s). Prints
`sent N T` (T: time.time() just after publish) per frame, then `done`.
"""

import sys
import time

import rclpy
from sensor_msgs.msg import Image


def main() -> int:
    topic, width, height, hz, count = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        float(sys.argv[4]),
        int(sys.argv[5]),
    )
    rclpy.init()
    node = rclpy.create_node("frame_publisher")
    pub = node.create_publisher(Image, topic, 10)
    print("advertised", flush=True)
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    msg = Image(height=height, width=width, encoding="rgb8", step=width * 3)
    payload = bytes(range(256)) * (width * height * 3 // 256 + 1)
    msg.data = payload[: width * height * 3]
    start = time.monotonic()
    for n in range(count):
        while time.monotonic() < start + n / hz:
            time.sleep(0.001)
        msg.header.frame_id = str(n)
        msg.header.stamp.sec = n
        pub.publish(msg)
        print(f"sent {n} {time.time():.6f}", flush=True)
    print("done", flush=True)
    time.sleep(1.0)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
