"""A peer process for the interface tests: echoes DepthQuality and serves Calibrate.

It answers on `echo_in` -> `echo_out` (valid_fraction doubled, so the test knows
the message crossed this process) and serves `calibrate` with a response derived
from the request. Exits on SIGINT or after --lifetime seconds.
"""

import argparse
import time

import rclpy
from rclpy.executors import ExternalShutdownException

from depth_annotation.msg import DepthQuality
from depth_annotation.srv import Calibrate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lifetime", type=float, default=60.0)
    args = ap.parse_args()
    rclpy.init()
    node = rclpy.create_node("interface_peer")
    pub = node.create_publisher(DepthQuality, "echo_out", 10)

    def on_quality(msg: DepthQuality) -> None:
        msg.valid_fraction = msg.valid_fraction * 2.0
        msg.reasons = list(msg.reasons) + ["echoed"]
        pub.publish(msg)

    def on_calibrate(req: Calibrate.Request, res: Calibrate.Response) -> Calibrate.Response:
        res.success = req.min_views >= 20
        res.message = f"{req.board_type}:{req.squares_x}x{req.squares_y}"
        res.rms_px = float(req.square_length_m) * 10.0
        res.per_view_error_px = [0.1] * int(req.min_views)
        res.k = [1.0, 0.0, 2.0, 0.0, 3.0, 4.0, 0.0, 0.0, 1.0]
        res.camera_info.width = 640
        return res

    node.create_subscription(DepthQuality, "echo_in", on_quality, 10)
    node.create_service(Calibrate, "calibrate", on_calibrate)
    deadline = time.monotonic() + args.lifetime
    try:
        while rclpy.ok() and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
