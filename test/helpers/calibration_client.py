"""A stock ROS 2 user's calibration session in one separate process: publish board images, then call the service.

usage: calibration_client.py NAMESPACE FOLDER HZ MIN_VIEWS
Publishes every PNG of FOLDER (sorted; rgb8, header stamp = its index + 1 in seconds) on
`/NAMESPACE/color/image_raw` with the default QoS a stock node uses (reliable, keep last 10) at HZ,
once the calibration node's subscription is matched (up to 30 s); then calls
`/NAMESPACE/calibrate` (min_views=MIN_VIEWS) and prints the response as one JSON line.
Run it with no project DDS variables: what `ros2 run` and `ros2 service call` have.
"""

import json
import sys
import time
from pathlib import Path

import cv2
import rclpy
from sensor_msgs.msg import Image
from std_msgs.msg import String

from depth_annotation.srv import Calibrate


def main() -> int:
    ns, folder, hz, min_views = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    files = sorted(Path(folder).glob("*.png"))
    rclpy.init()
    node = rclpy.create_node("stock_board_waver")
    pub = node.create_publisher(Image, f"/{ns}/color/image_raw", 10)
    client = node.create_client(Calibrate, f"/{ns}/calibrate")
    statuses: list[str] = []
    node.create_subscription(String, f"/{ns}/calibration_node/status", lambda m: statuses.append(m.data), 10)
    deadline = time.monotonic() + 30
    while (pub.get_subscription_count() == 0 or not client.service_is_ready()) and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    if pub.get_subscription_count() == 0 or not client.service_is_ready():
        print(json.dumps({"error": "calibration node not discovered within 30 s"}), flush=True)
        return 1
    for i, f in enumerate(files):
        rgb = cv2.cvtColor(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2RGB)
        msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=rgb.shape[1] * 3)
        msg.header.stamp.sec = i + 1
        msg.header.frame_id = "camera_color_optical_frame"
        msg.data = rgb.tobytes()
        pub.publish(msg)
        end = time.monotonic() + 1.0 / hz
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.01)
    # The node detects each view in turn: call the service once its status counts every view.
    deadline = time.monotonic() + 60
    while not any(text.startswith(f"{len(files)}/") for text in statuses) and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    future = client.call_async(Calibrate.Request(min_views=min_views))
    rclpy.spin_until_future_complete(node, future, timeout_sec=120)
    result = future.result()
    if result is None:
        print(json.dumps({"error": "no response from the calibrate service"}), flush=True)
        return 1
    print(
        json.dumps(
            {
                "success": result.success,
                "message": result.message,
                "views_used": result.views_used,
                "view_stamps_ns": list(result.view_stamps_ns),
                "last_status": statuses[-1] if statuses else "",
                "k": list(result.k),
            }
        ),
        flush=True,
    )
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
