"""Build and read ROS messages from core types: the only place nodes touch message fields.

Images and camera_info go through the ROS-free `core.images` / `core.camera`
conversions; this module only moves fields in and out of rclpy message objects.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from depth_annotation.common import Intrinsics, array_to_fields, image_to_array

NS_PER_S = 1_000_000_000


def stamp_from_ns(ns: int) -> Time:
    return Time(sec=int(ns // NS_PER_S), nanosec=int(ns % NS_PER_S))


def stamp_to_ns(stamp: Time) -> int:
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def make_header(stamp_ns: int, frame_id: str) -> Header:
    return Header(stamp=stamp_from_ns(stamp_ns), frame_id=frame_id)


def image_msg(array: np.ndarray, encoding: str, header: Header) -> Image:
    """An Image message holding `array` (see core.images.array_to_fields for checks)."""
    f = array_to_fields(array, encoding)
    msg = Image(
        header=header, height=f.height, width=f.width, encoding=f.encoding, is_bigendian=f.is_bigendian, step=f.step
    )
    msg.data = f.data
    return msg


def image_array(msg: Image) -> np.ndarray:
    """The pixels of an Image message as a numpy array (raises ImageConversionError)."""
    return image_to_array(msg)


def camera_info_msg(intr: Intrinsics, header: Header) -> CameraInfo:
    f = intr.to_camera_info_fields()
    return CameraInfo(
        header=header,
        width=f["width"],
        height=f["height"],
        distortion_model=f["distortion_model"],
        d=f["d"],
        k=f["k"],
        r=f["r"],
        p=f["p"],
    )


def diagnostic_status(
    level: bytes, name: str, message: str, values: Mapping[str, object], *, hardware_id: str = ""
) -> DiagnosticStatus:
    """One /diagnostics entry; floats shown with 4 significant digits, everything else with str()."""
    pairs = [KeyValue(key=k, value=f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in values.items()]
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id, values=pairs)


def diagnostic_array(stamp_ns: int, statuses: list[DiagnosticStatus]) -> DiagnosticArray:
    return DiagnosticArray(header=make_header(stamp_ns, ""), status=statuses)
