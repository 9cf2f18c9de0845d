"""rosbag2 writing (mcap or sqlite3) that survives a kill and that each ROS distro's `ros2 bag` reads.

mcap goes through the `mcap` library's Writer, not `rosbags` (whose writer stores chunk CRC = 0,
so corruption inside a chunk went unnoticed):

* chunk CRCs on; chunks of at most `CHUNK_BYTES` (1 MiB) or `CHUNK_MAX_AGE_S` (1 s) of messages,
  each handed to the OS as soon as it is closed, so a `record` killed with SIGKILL loses at most
  the chunk it was filling. 1 MiB is one 640x480 colour image (921,600 B) or one depth image and
  some small messages; the per-chunk cost (a ~70 B header plus a message index of 16 B per
  message) is under 0.1 % for images, and the 1 s age bounds the loss on slow, small topics.
  Uncompressed, as rosbag2's default.
* schemas `ros2msg` with the full definition in rosbag2's concatenated format (the type's own
  definition, then `====...` / `MSG: pkg/Name` and each dependency), as rosbag2's
  `LocalMessageDefinitionSource` writes it (generated here by rosbags from the distro's types,
  without comments);
* channel metadata `offered_qos_profiles` (YAML, as rosbag2's `serialize_rclcpp_qos_vector`:
  integer policies up to metadata version 8, names from 9) and, from Jazzy on,
  `topic_type_hash` (RIHS01, the hash rosidl puts in each type's `.json` type description).

sqlite3 goes through `rosbags`' writer, committed at least every `SQLITE_COMMIT_S` seconds, so a
kill loses at most the last uncommitted batch (rosbags alone commits only at close: everything).

metadata.yaml is written (atomically) when the bag is closed, in the version the chosen distro's
rosbag2 writes: Humble 5, Jazzy and Kilted 9 (`rosbag2_storage/.../bag_metadata.hpp`, `int version`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import yaml
from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter
from rosbags.interfaces import Connection, Qos
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as RosbagsWriter
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from depth_annotation.common import atomic_io

from .errors import BagError

Distro = Literal["humble", "jazzy", "kilted"]
DISTROS: tuple[Distro, ...] = ("humble", "jazzy", "kilted")
#: metadata.yaml version each distro's rosbag2 writes (rosbag2 branch <distro>, bag_metadata.hpp)
DISTRO_VERSION: dict[str, int] = {"humble": 5, "jazzy": 9, "kilted": 9}
_STORES = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY, "kilted": Stores.ROS2_KILTED}

CHUNK_BYTES = 1024 * 1024
CHUNK_MAX_AGE_S = 1.0
SQLITE_COMMIT_S = 1.0
STORAGE_SUFFIX = {"mcap": ".mcap", "sqlite3": ".db3"}

_typestores: dict[str, Typestore] = {}


def typestore_for(distro: str) -> Typestore:
    """The distro's standard types plus ours (from the package's .msg files)."""
    if distro not in _STORES:
        raise BagError(f"distro must be one of {', '.join(DISTROS)}, got {distro!r}")
    if distro == "kilted":
        from .bag_io import TYPESTORE

        return TYPESTORE  # the reader's store: the same recipe, one instance
    if distro not in _typestores:
        from .bag_io import _msg_dir

        store = get_typestore(_STORES[distro])
        types: dict[str, Any] = {}
        msg_dir = _msg_dir()
        if msg_dir is not None:
            for f in sorted(msg_dir.glob("*.msg")):
                types.update(get_types_from_msg(f.read_text(), f"depth_annotation/msg/{f.stem}"))
        store.register(types)
        _typestores[distro] = store
    return _typestores[distro]


def qos_profiles(profiles: Sequence[Qos], version: int) -> list[dict[str, Any]]:
    """rosbag2's YAML node for offered QoS: integer policies before version 9, lower-case names from 9."""

    def policy(p: Any) -> int | str:
        return int(p.value) if version < 9 else str(p.name).lower()

    def duration(t: Any) -> dict[str, int]:
        return {"sec": int(t.sec), "nsec": int(t.nsec)}

    return [
        {
            "history": policy(q.history),
            "depth": int(q.depth),
            "reliability": policy(q.reliability),
            "durability": policy(q.durability),
            "deadline": duration(q.deadline),
            "lifespan": duration(q.lifespan),
            "liveliness": policy(q.liveliness),
            "liveliness_lease_duration": duration(q.liveliness_lease_duration),
            "avoid_ros_namespace_conventions": bool(q.avoid_ros_namespace_conventions),
        }
        for q in profiles
    ]


def _dump(node: Any) -> str:
    return yaml.safe_dump(node, sort_keys=False, default_flow_style=False)


@dataclass
class _Topic:
    name: str
    msgtype: str
    qos: list[Qos]
    type_hash: str
    channel_id: int = 0
    connection: Connection | None = None
    count: int = 0
    first_ns: int | None = None
    last_ns: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class BagWriter:
    """A rosbag2 writer (mcap or sqlite3) for one distro, that refuses to overwrite; a context manager.

    `version` overrides the distro's metadata.yaml version (5, 8 or 9; 8 writes QoS as the YAML
    string Jazzy's reader also takes, as rosbags does).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        storage: str = "mcap",
        distro: str = "kilted",
        version: int | None = None,
    ) -> None:
        self.path = Path(path)
        if storage not in STORAGE_SUFFIX:
            raise BagError(f"storage must be mcap or sqlite3, got {storage!r}")
        self.typestore = typestore_for(distro)
        self.distro = distro
        self.version = DISTRO_VERSION[distro] if version is None else int(version)
        if self.version not in (5, 8, 9):
            raise BagError(f"metadata version must be 5, 8 or 9, got {self.version}")
        if self.path.exists():
            raise BagError(f"{self.path} exists: refusing to overwrite a bag")
        self.storage = storage
        # rosbag2 names its first file <bag>_0.mcap; rosbags' sqlite3 writer names it <bag>.db3
        name = f"{self.path.name}_0.mcap" if storage == "mcap" else f"{self.path.name}.db3"
        self.file = self.path / name
        self._topics: dict[str, _Topic] = {}
        self._schemas: dict[str, int] = {}
        self._stream: IO[bytes] | None = None
        self._mcap: McapWriter | None = None
        self._rosbags: RosbagsWriter | None = None
        self._chunk_started = 0.0
        self._chunk_bytes = 0
        self._last_commit = 0.0
        self._open = False

    # -- life cycle ---------------------------------------------------------------------------
    def open(self) -> BagWriter:
        """Create the bag directory and its storage file (OSError for an unwritable place)."""
        if self.storage == "mcap":
            self.path.mkdir(parents=True)
            self._stream = open(self.file, "wb")
            self._mcap = McapWriter(
                self._stream,
                chunk_size=1 << 62,  # chunks are closed here, by size and age (write_raw)
                compression=CompressionType.NONE,
                enable_crcs=True,
            )
            self._mcap.start(profile="ros2", library="depth_annotation bag_writer (mcap python)")
            self._stream.flush()
        else:
            self._rosbags = RosbagsWriter(
                self.path, version=9 if self.version >= 9 else 8, storage_plugin=StoragePlugin.SQLITE3
            )
            try:
                self._rosbags.open()
            except Exception as exc:  # rosbags wraps the mkdir error
                raise OSError(str(exc)) from exc
            self._last_commit = time.monotonic()
        self._open = True
        return self

    def __enter__(self) -> BagWriter:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Finish the storage file (mcap summary / sqlite commit) and write metadata.yaml."""
        if not self._open:
            return
        self._open = False
        if self._mcap is not None and self._stream is not None:
            self._mcap.finish()  # type: ignore[no-untyped-call]
            self._stream.close()
        if self._rosbags is not None:
            self._rosbags.close()
        atomic_io.write_text(self.path / "metadata.yaml", _dump(self.metadata()))

    # -- topics and messages --------------------------------------------------------------------
    def add_topic(self, topic: str, msgtype: str, *, qos: Sequence[Qos] | None = None) -> None:
        if not self._open:
            raise BagError(f"{self.path}: open the writer before add_topic")
        if topic in self._topics:
            return
        if msgtype not in self.typestore.types:
            raise BagError(f"{topic}: type {msgtype} is unknown to the {self.distro} typestore")
        t = _Topic(topic, msgtype, list(qos or ()), self.typestore.hash_rihs01(msgtype))
        if self._mcap is not None:
            schema_id = self._schemas.get(msgtype)
            if schema_id is None:
                text, _ = self.typestore.generate_msgdef(msgtype, ros_version=2)
                schema_id = self._mcap.register_schema(msgtype, "ros2msg", text.encode())
                self._schemas[msgtype] = schema_id
            metadata = {"offered_qos_profiles": _dump(qos_profiles(t.qos, self.version)) if t.qos else ""}
            if self.version >= 8:
                metadata["topic_type_hash"] = t.type_hash
            t.channel_id = self._mcap.register_channel(topic, "cdr", schema_id, metadata)
        elif self._rosbags is not None:
            t.connection = self._rosbags.add_connection(
                topic, msgtype, typestore=self.typestore, offered_qos_profiles=t.qos
            )
        self._topics[topic] = t

    def write(self, topic: str, time_ns: int, msg: Any) -> None:
        """Serialise a rosbags message object (see bag_io.image(), camera_info())."""
        t = self._topics.get(topic)
        if t is None:
            raise BagError(f"write to {topic}: add_topic first")
        self.write_raw(topic, time_ns, self.typestore.serialize_cdr(msg, t.msgtype))

    def write_raw(self, topic: str, time_ns: int, data: bytes | memoryview) -> None:
        """Write an already CDR-serialised message (what a raw rclpy subscription receives)."""
        t = self._topics.get(topic)
        if t is None:
            raise BagError(f"write to {topic}: add_topic first")
        time_ns = int(time_ns)
        now = time.monotonic()
        if self._mcap is not None and self._stream is not None:
            if self._chunk_bytes == 0:
                self._chunk_started = now
            self._mcap.add_message(t.channel_id, time_ns, bytes(data), time_ns, sequence=t.count)
            self._chunk_bytes += len(data)
            if self._chunk_bytes >= CHUNK_BYTES or now - self._chunk_started >= CHUNK_MAX_AGE_S:
                self._mcap.flush()  # type: ignore[no-untyped-call]  # closes the chunk, hands it to the OS
                self._chunk_bytes = 0
        elif self._rosbags is not None and t.connection is not None:
            self._rosbags.write(t.connection, time_ns, data)
            if now - self._last_commit > SQLITE_COMMIT_S:
                storage: Any = self._rosbags.storage
                storage.conn.commit()
                self._last_commit = now
        t.count += 1
        t.first_ns = time_ns if t.first_ns is None else min(t.first_ns, time_ns)
        t.last_ns = max(t.last_ns, time_ns)

    # -- metadata.yaml ----------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """metadata.yaml's node as rosbag2's `YAML::convert<BagMetadata>::encode` writes it for the version."""
        v = self.version
        counted = [t for t in self._topics.values() if t.first_ns is not None]
        start = min((t.first_ns for t in counted if t.first_ns is not None), default=0)
        end = max((t.last_ns for t in counted), default=0)
        duration = end - start if counted else 0
        total = sum(t.count for t in self._topics.values())
        topics = []
        for t in self._topics.values():
            qos = qos_profiles(t.qos, v)
            tm: dict[str, Any] = {
                "name": t.name,
                "type": t.msgtype,
                "serialization_format": "cdr",
                "offered_qos_profiles": qos if v >= 9 else (_dump(qos) if qos else ""),
            }
            if v >= 7:
                tm["type_description_hash"] = t.type_hash
            topics.append({"topic_metadata": tm, "message_count": t.count})
        info: dict[str, Any] = {
            "version": v,
            "storage_identifier": self.storage,
            "duration": {"nanoseconds": duration},
            "starting_time": {"nanoseconds_since_epoch": start},
            "message_count": total,
            "topics_with_message_count": topics,
            "compression_format": "",
            "compression_mode": "",
            "relative_file_paths": [self.file.name],
            "files": [
                {
                    "path": self.file.name,
                    "starting_time": {"nanoseconds_since_epoch": start},
                    "duration": {"nanoseconds": duration},
                    "message_count": total,
                }
            ],
        }
        if v >= 6:
            info["custom_data"] = {}
        if v >= 8:
            info["ros_distro"] = self.distro
        return {"rosbag2_bagfile_information": info}
