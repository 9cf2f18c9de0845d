"""rosbag2 reading and writing without ROS: `rosbags` (sqlite3 and mcap), our types registered.

`rosbag2_py` is used by nothing here: it is not installable from PyPI, and
`rosbags` reads and writes the same files (bags from `ros2 bag record` included).
Our own message types (`depth_annotation/msg/*`) are registered from the `.msg`
files shipped with the package, so DepthQuality and friends deserialise even
from bags whose writer did not embed definitions.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from depth_annotation.common import array_to_fields

from .errors import BagError

PACKAGE = "depth_annotation"


def _msg_dir() -> Path | None:
    here = Path(__file__).resolve()
    candidates = [
        here.parents[2] / "msg",  # a checkout
        Path(sys.prefix) / "share" / PACKAGE / "msg",  # installed into a prefix (venv, colcon install)
    ]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE)) / "msg")
    except Exception:
        pass
    return next((c for c in candidates if c.is_dir()), None)


def make_typestore():
    """Kilted's standard types plus ours (and tf2_msgs/TFMessage)."""
    store = get_typestore(Stores.ROS2_KILTED)
    types: dict = {}
    msg_dir = _msg_dir()
    if msg_dir is not None:
        for f in sorted(msg_dir.glob("*.msg")):
            types.update(get_types_from_msg(f.read_text(), f"{PACKAGE}/msg/{f.stem}"))
    store.register(types)
    return store


TYPESTORE = make_typestore()


@dataclass(frozen=True)
class TopicInfo:
    topic: str
    msgtype: str
    count: int


@contextmanager
def open_bag(path: str | Path) -> Iterator[AnyReader]:
    """Open a rosbag2 directory (sqlite3 or mcap) or a single .mcap/.db3 file."""
    p = Path(path)
    if not p.exists():
        raise BagError(f"bag not found: {p}")
    try:
        reader = AnyReader([p], default_typestore=TYPESTORE)
        reader.open()
    except Exception as exc:
        raise BagError(f"cannot open bag {p}: {exc}") from None
    try:
        yield reader
    finally:
        reader.close()


def topics(reader: AnyReader) -> dict[str, TopicInfo]:
    out: dict[str, TopicInfo] = {}
    for c in reader.connections:
        prev = out.get(c.topic)
        out[c.topic] = TopicInfo(c.topic, c.msgtype, (prev.count if prev else 0) + c.msgcount)
    return out


def require_topics(reader: AnyReader, wanted: list[str]) -> None:
    have = topics(reader)
    missing = [t for t in wanted if t not in have]
    if missing:
        listing = ", ".join(f"{t.topic} [{t.msgtype}]" for t in sorted(have.values(), key=lambda t: t.topic)) or "none"
        raise BagError(f"topic(s) {', '.join(missing)} not in the bag; it has: {listing}")


def stamp_of(msg: Any) -> int:
    """A message's header stamp in nanoseconds (rosbags and rclpy messages alike)."""
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def messages(reader: AnyReader, wanted: list[str]) -> Iterator[tuple[str, int, Any]]:
    """(topic, receive time ns, deserialised message) in time order."""
    conns = [c for c in reader.connections if c.topic in wanted]
    for conn, timestamp, raw in reader.messages(connections=conns):
        yield conn.topic, timestamp, reader.deserialize(raw, conn.msgtype)


# --- building messages for writing (tests, recorder, exporter fixtures) ------------------------------


def _types():
    return TYPESTORE.types


def header(stamp_ns: int, frame_id: str):
    t = _types()
    return t["std_msgs/msg/Header"](
        stamp=t["builtin_interfaces/msg/Time"](sec=int(stamp_ns // 10**9), nanosec=int(stamp_ns % 10**9)),
        frame_id=frame_id,
    )


def image(arr: np.ndarray, encoding: str, stamp_ns: int, frame_id: str):
    f = array_to_fields(arr, encoding)
    return _types()["sensor_msgs/msg/Image"](
        header=header(stamp_ns, frame_id),
        height=f.height,
        width=f.width,
        encoding=f.encoding,
        is_bigendian=f.is_bigendian,
        step=f.step,
        data=np.frombuffer(f.data, np.uint8),
    )


def camera_info(intr, stamp_ns: int, frame_id: str):
    t = _types()
    f = intr.to_camera_info_fields()
    roi = t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return t["sensor_msgs/msg/CameraInfo"](
        header=header(stamp_ns, frame_id),
        height=f["height"],
        width=f["width"],
        distortion_model=f["distortion_model"],
        d=np.asarray(f["d"], np.float64),
        k=np.asarray(f["k"], np.float64),
        r=np.asarray(f["r"], np.float64),
        p=np.asarray(f["p"], np.float64),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


class BagWriter:
    """A rosbag2 writer (sqlite3 or mcap) that refuses to overwrite; a context manager."""

    def __init__(self, path: str | Path, *, storage: str = "mcap") -> None:
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path} exists: refusing to overwrite a bag")
        plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}.get(storage)
        if plugin is None:
            raise BagError(f"storage must be mcap or sqlite3, got {storage!r}")
        self._writer = Writer(self.path, version=9, storage_plugin=plugin)
        self._conns: dict[str, Any] = {}

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(self, *exc) -> None:
        self._writer.close()

    def add_topic(self, topic: str, msgtype: str, *, qos: list | None = None) -> None:
        if topic not in self._conns:
            self._conns[topic] = self._writer.add_connection(
                topic, msgtype, typestore=TYPESTORE, offered_qos_profiles=qos or ()
            )

    def write(self, topic: str, time_ns: int, msg: Any) -> None:
        """Serialise a rosbags message object (see image(), camera_info())."""
        conn = self._conns.get(topic)
        if conn is None:
            raise BagError(f"write to {topic}: add_topic first")
        self._writer.write(conn, int(time_ns), TYPESTORE.serialize_cdr(msg, conn.msgtype))

    def write_raw(self, topic: str, time_ns: int, data: bytes) -> None:
        """Write an already CDR-serialised message (what a raw rclpy subscription receives)."""
        self._writer.write(self._conns[topic], int(time_ns), data)
