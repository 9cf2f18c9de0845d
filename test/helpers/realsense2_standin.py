"""A stand-in for realsense-ros's `realsense2_camera` node: its topic names, frame ids, TF tree and QoS.

python realsense2_standin.py [camera_namespace] [camera_name] [seconds]

Publishes, as realsense2_camera (4.x) with `align_depth.enable:=true` does, under
/<camera_namespace>/<camera_name>/ (default /camera/camera/):
  color/image_raw (rgb8), color/camera_info,
  aligned_depth_to_color/image_raw (16UC1, mm), aligned_depth_to_color/camera_info,
  depth/image_rect_raw (16UC1), depth/camera_info
with the SystemDefault (reliable, keep last) QoS realsense-ros uses for images, frame ids
`<camera_name>_color_optical_frame` / `<camera_name>_depth_optical_frame`, and /tf_static
`<camera_name>_link` -> `<camera_name>_<stream>_frame` -> `<camera_name>_<stream>_optical_frame`
(realsense-ros's tfs.cpp). The scene: a tilted plane 0.8-1.2 m away with a textured colour image,
640x480 at 30 fps. Prints one line per second with the frames sent.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import rclpy
from geometry_msgs.msg import TransformStamped
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

WIDTH, HEIGHT, FPS = 640, 480, 30
FX = FY = 615.0
OPTICAL = (-0.5, 0.5, -0.5, 0.5)  # body -> optical, xyzw


def camera_info(header: Header) -> CameraInfo:
    info = CameraInfo(header=header, width=WIDTH, height=HEIGHT, distortion_model="plumb_bob")
    info.d = [0.0] * 5
    info.k = [FX, 0.0, WIDTH / 2, 0.0, FY, HEIGHT / 2, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [FX, 0.0, WIDTH / 2, 0.0, 0.0, FY, HEIGHT / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def image(array: np.ndarray, encoding: str, header: Header) -> Image:
    return Image(
        header=header,
        height=array.shape[0],
        width=array.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=array.strides[0],
        data=array.tobytes(),
    )


def static_tf(name: str, stamp) -> TFMessage:
    out = []
    for stream, y in (("depth", 0.0), ("color", 0.015)):
        for parent, child, rot, ty in (
            (f"{name}_link", f"{name}_{stream}_frame", (0.0, 0.0, 0.0, 1.0), y),
            (f"{name}_{stream}_frame", f"{name}_{stream}_optical_frame", OPTICAL, 0.0),
        ):
            t = TransformStamped()
            t.header.stamp, t.header.frame_id, t.child_frame_id = stamp, parent, child
            t.transform.translation.y = ty
            t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z, t.transform.rotation.w = rot
            out.append(t)
    return TFMessage(transforms=out)


def main() -> None:
    namespace = sys.argv[1] if len(sys.argv) > 1 else "camera"
    name = sys.argv[2] if len(sys.argv) > 2 else "camera"
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 3600.0
    rclpy.init()
    node = rclpy.create_node(name, namespace=namespace)
    system_default = QoSProfile(depth=10)  # reliable, volatile, keep last: realsense-ros's image default
    pubs = {
        topic: node.create_publisher(msg_type, f"~/{topic}", system_default)  # realsense-ros: private names
        for topic, msg_type in (
            ("color/image_raw", Image),
            ("color/camera_info", CameraInfo),
            ("aligned_depth_to_color/image_raw", Image),
            ("aligned_depth_to_color/camera_info", CameraInfo),
            ("depth/image_rect_raw", Image),
            ("depth/camera_info", CameraInfo),
        )
    }
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_publisher(TFMessage, "/tf_static", latched).publish(static_tf(name, node.get_clock().now().to_msg()))
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH]
    depth_mm = (800 + 400 * u / WIDTH).astype(np.uint16)  # a tilted plane, 0.8 to 1.2 m
    texture = ((u // 40 + v // 40) % 2 * 160 + 40).astype(np.uint8)
    color = np.dstack([texture, np.roll(texture, 7, axis=1), texture // 2])
    node.get_logger().info(f"ready: /{namespace}/{name}/... {WIDTH}x{HEIGHT} at {FPS} fps")
    sent, start, last_log = 0, time.monotonic(), time.monotonic()
    while rclpy.ok() and time.monotonic() - start < seconds:
        stamp = node.get_clock().now().to_msg()
        color_h = Header(stamp=stamp, frame_id=f"{name}_color_optical_frame")
        depth_h = Header(stamp=stamp, frame_id=f"{name}_depth_optical_frame")
        pubs["color/image_raw"].publish(image(color, "rgb8", color_h))
        pubs["color/camera_info"].publish(camera_info(color_h))
        pubs["aligned_depth_to_color/image_raw"].publish(image(depth_mm, "16UC1", color_h))
        pubs["aligned_depth_to_color/camera_info"].publish(camera_info(color_h))
        pubs["depth/image_rect_raw"].publish(image(depth_mm, "16UC1", depth_h))
        pubs["depth/camera_info"].publish(camera_info(depth_h))
        sent += 1
        if time.monotonic() - last_log >= 1.0:
            print(f"sent {sent}", flush=True)
            last_log = time.monotonic()
        rclpy.spin_once(node, timeout_sec=0.0)
        time.sleep(max(0.0, start + sent / FPS - time.monotonic()))
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
