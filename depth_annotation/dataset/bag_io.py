"""rosbag2 reading and writing without ROS: `rosbags` underneath, every read checked against the storage.

A bag is a directory of storage files (mcap or sqlite3), usually with the
`metadata.yaml` rosbag2 wrote; a directory without one (a split recording whose
metadata was never written) and a single `.mcap`/`.db3` file are read from the
storage files alone.

Messages come from each storage file through `rosbags`' per-file readers, merged
in time order and matched to topics by name. `rosbags`' directory reader is not
used for messages: it pairs a file's topics with metadata.yaml's by name, type
*and* offered QoS, so a bag whose metadata.yaml writes the QoS differently from
its storage file yields nothing, without an error (rosbag2's own talker test
bags: see the README's "Bags" section). After a complete read the number of
messages per topic is compared with what the storage itself holds (`SELECT
COUNT(*)` per topic through the stdlib `sqlite3`; the mcap summary's statistics,
read by `rosbags`' index reader), and a shortfall raises `BagShortReadError`
naming the bag, the topic and both counts: never an empty success.

`rosbag2_py` is used by nothing here: it is not installable from PyPI. Our own
message types (`depth_annotation/msg/*`) are registered from the `.msg` files
shipped with the package, so DepthQuality and friends deserialise even from bags
whose writer did not embed definitions; definitions a bag embeds win for it.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import os
import re
import sqlite3
import struct
import sys
import tempfile
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, NamedTuple

import numpy as np
import yaml
from rosbags.interfaces import (
    Connection,
    ConnectionExtRosbag2,
    MessageDefinitionFormat,
    Qos,
    QosDurability,
    QosHistory,
    QosReliability,
)
from rosbags.rosbag2 import Reader, ReaderError
from rosbags.rosbag2.metadata import parse_qos
from rosbags.typesys import Stores, TypesysError, get_types_from_idl, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from depth_annotation.common import Intrinsics, array_to_fields, depth_to_metres, image_to_array, image_to_rgb

from . import bag_recovery
from .bag_recovery import McapFile, RecoveryReport, SqliteFile
from .errors import (
    BagError,
    BagMetadataError,
    BagPermissionError,
    BagShortReadError,
    BagTruncatedError,
    NotABagError,
    UnknownStorageError,
)

if sys.version_info >= (3, 14):  # pragma: no cover - the stdlib module `rosbags` uses from 3.14 on
    from compression import zstd
else:
    from backports import zstd

PACKAGE = "depth_annotation"
STORAGE_SUFFIX = {"mcap": ".mcap", "sqlite3": ".db3"}

Typesdict = dict[str, Any]


def _msg_dir() -> Path | None:
    here = Path(__file__).resolve()
    candidates = [
        here.parents[2] / "msg",  # a checkout
        Path(sys.prefix) / "share" / PACKAGE / "msg",  # installed into a prefix (venv, colcon install)
    ]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE)) / "msg")
    except Exception:  # no ament index (pip install): the other candidates stand
        pass
    return next((c for c in candidates if c.is_dir()), None)


def make_typestore() -> Typestore:
    """Kilted's standard types plus ours (and tf2_msgs/TFMessage)."""
    store = get_typestore(Stores.ROS2_KILTED)
    types: Typesdict = {}
    msg_dir = _msg_dir()
    if msg_dir is not None:
        for f in sorted(msg_dir.glob("*.msg")):
            types.update(get_types_from_msg(f.read_text(), f"{PACKAGE}/msg/{f.stem}"))
    store.register(types)
    return store


TYPESTORE = make_typestore()


@dataclass(frozen=True)
class TopicInfo:
    """A topic of a bag: `count` is what its storage files hold (what a complete read returns)."""

    topic: str
    msgtype: str
    count: int
    qos: tuple[Qos, ...] = ()  # offered QoS profiles as recorded (metadata.yaml, else the storage)
    metadata_count: int | None = None  # what metadata.yaml says, when the bag has one


class RawMessage(NamedTuple):
    topic: str
    msgtype: str
    time_ns: int  # receive (log) time
    data: bytes | memoryview  # CDR, as recorded


@dataclass(frozen=True)
class RecordedQos:
    """What playback takes from the recorded offers, as `ros2 bag play` does: reliability and
    durability (a publisher offering less than its subscribers request would match none of them),
    and the history depth when one was recorded."""

    reliable: bool
    transient_local: bool
    depth: int | None  # None: not recorded (history unknown or depth 0)


def recorded_qos(profiles: Sequence[Qos]) -> RecordedQos | None:
    """The QoS to republish a topic with, from its recorded offers (None: nothing recorded).

    Several publishers may have offered different profiles: reliable only if none was
    best effort, transient-local only if all were (what every recorded subscriber accepted).
    """
    if not profiles:
        return None
    depths = [p.depth for p in profiles if p.history == QosHistory.KEEP_LAST and p.depth > 0]
    return RecordedQos(
        reliable=all(p.reliability != QosReliability.BEST_EFFORT for p in profiles),
        transient_local=all(p.durability == QosDurability.TRANSIENT_LOCAL for p in profiles),
        depth=max(depths) if depths else None,
    )


# --- where a bag's storage is ----------------------------------------------------------------------


@dataclass(frozen=True)
class BagLayout:
    storage: str  # "mcap" | "sqlite3"
    files: tuple[Path, ...]  # storage files in recording order
    metadata: dict[str, Any] | None  # rosbag2_bagfile_information, when metadata.yaml exists


def _split_index(path: Path) -> tuple[str, int, str]:
    """Sort key: rosbag2 numbers split files `<name>_<N>.<ext>`; N=10 comes after N=9."""
    m = re.fullmatch(r"(.*)_(\d+)", path.stem)
    return (m.group(1), int(m.group(2)), path.name) if m else (path.stem, -1, path.name)


def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except PermissionError:
        raise BagPermissionError(f"{path}: permission denied") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BagMetadataError(f"{path}: cannot read rosbag2 metadata: {exc}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        cause = str(getattr(exc, "problem", None) or type(exc).__name__)
        raise BagMetadataError(f"{path}: metadata.yaml does not parse{line}: {cause}") from None
    info = doc.get("rosbag2_bagfile_information") if isinstance(doc, dict) else None
    if not isinstance(info, dict):
        raise BagMetadataError(f"{path}: not rosbag2 metadata (no rosbag2_bagfile_information)")
    return info


def bag_layout(path: str | Path) -> BagLayout:
    """The storage files of a bag directory (with or without metadata.yaml) or of one storage file."""
    p = Path(path)
    if not p.exists():
        raise BagError(f"bag not found: {p}")
    if p.is_file():
        storage = next((s for s, suffix in STORAGE_SUFFIX.items() if p.suffix == suffix), None)
        if storage is None:
            raise NotABagError(f"{p}: not a rosbag2 storage file (expected .mcap or .db3)")
        return BagLayout(bag_recovery.storage_kind(p), (p,), None)
    if not os.access(p, os.R_OK | os.X_OK):
        raise BagPermissionError(f"{p}: permission denied (cannot list the bag directory)")
    meta_path = p / "metadata.yaml"
    if meta_path.exists():
        info = _read_metadata(meta_path)
        storage = str(info.get("storage_identifier", ""))
        if storage not in STORAGE_SUFFIX:
            raise UnknownStorageError(f"{meta_path}: storage {storage!r} is not supported (mcap or sqlite3)")
        # Before version 4 the paths included the bag directory's name: the file name is what counts.
        files = tuple(p / PurePath(str(f)).name for f in info.get("relative_file_paths") or [])
        missing = [f.name for f in files if not f.exists()]
        if missing:
            raise BagMetadataError(f"{meta_path} lists storage files that are missing: {', '.join(missing)}")
        if not files:
            raise BagMetadataError(f"{meta_path} lists no storage files")
        return BagLayout(storage, files, info)
    found = {s: sorted(p.glob(f"*{suffix}"), key=_split_index) for s, suffix in STORAGE_SUFFIX.items()}
    kinds = [s for s, fs in found.items() if fs]
    if not kinds:
        raise NotABagError(f"{p}: not a rosbag2 bag (no metadata.yaml, no .mcap or .db3 file)")
    if len(kinds) > 1:
        raise BagError(f"{p}: has both .mcap and .db3 files and no metadata.yaml: open one file")
    return BagLayout(kinds[0], tuple(found[kinds[0]]), None)


# --- what the storage itself says -------------------------------------------------------------------


def sqlite_topic_counts(file: Path) -> Counter[str]:
    """Messages per topic in a rosbag2 sqlite3 file, counted by SQLite itself (stdlib, read-only)."""
    try:
        con = sqlite3.connect(bag_recovery.read_only_uri(file), uri=True)
    except sqlite3.Error as exc:
        raise BagError(f"{file}: cannot open the sqlite3 file: {exc}") from None
    try:
        rows = con.execute(
            "SELECT topics.name, COUNT(messages.id) FROM topics "
            "LEFT JOIN messages ON messages.topic_id = topics.id GROUP BY topics.id"
        ).fetchall()
    except sqlite3.Error as exc:
        raise BagError(f"{file}: not a readable rosbag2 sqlite3 file: {exc}") from None
    finally:
        con.close()
    counts: Counter[str] = Counter()
    for name, n in rows:
        counts[str(name)] += int(n)
    return counts


def _storage_counts(file: Path, storage: str, reader: Reader) -> Counter[str]:
    if storage == "sqlite3":
        return sqlite_topic_counts(file)
    # mcap: rosbags reads the summary's Statistics record (without one: the chunk indexes;
    # without a summary: a sequential scan of the records), not the message stream.
    counts: Counter[str] = Counter()
    for conn in reader.connections:
        counts[conn.topic] += conn.msgcount
    return counts


def _bag_types(connections: Sequence[Connection]) -> Typesdict:
    """Message definitions a bag embeds (mcap schemas, sqlite3 message_definitions)."""
    typs: Typesdict = {}
    for conn in connections:
        fmt, text = conn.msgdef.format, conn.msgdef.data
        try:
            if fmt == MessageDefinitionFormat.MSG:
                typs.update(get_types_from_msg(text, conn.msgtype))
            elif fmt == MessageDefinitionFormat.IDL:
                # Several IDL texts, each after a line of 80 '=' and an 'IDL: <type>' line (rosbag2's layout).
                sep = "=" * 80 + "\n"
                if text.startswith(f"{sep}IDL: "):
                    for part in text.split(sep)[1:]:
                        typs.update(get_types_from_idl(part.split("\n", 1)[1]))
                else:
                    typs.update(get_types_from_idl(text))
        except TypesysError:
            continue  # an unparsable embedded definition: the standard one (if any) is used
    return typs


def _typestores_for(typs: Typesdict) -> list[Typestore]:
    """The stores to deserialise with, in order: the bag's own definitions first (they describe
    its bytes) over the standard ones, then TYPESTORE alone (some writers embed placeholders:
    rosbag2's sqlite3 talker test bag defines rcl_interfaces/msg/Log as just `uint8 level`)."""

    def fields(defn: Any) -> list[tuple[str, Any]]:
        return [(name.lower(), kind) for name, kind in defn[1]]

    if all(k in TYPESTORE.fielddefs and fields(TYPESTORE.fielddefs[k]) == fields(v) for k, v in typs.items()):
        return [TYPESTORE]
    store = get_typestore(Stores.EMPTY)
    try:
        store.register({**{k: v for k, v in TYPESTORE.fielddefs.items() if k not in typs}, **typs})
    except (TypesysError, SyntaxError, ValueError):
        return [TYPESTORE]  # definitions rosbags cannot turn into a type: the standard ones only
    return [store, TYPESTORE]


# --- reading ----------------------------------------------------------------------------------------

log = logging.getLogger(__name__)


def _ext(conn: Connection) -> ConnectionExtRosbag2 | None:
    return conn.ext if isinstance(conn.ext, ConnectionExtRosbag2) else None


class _IndexedFile:
    """An intact sqlite3 file through `rosbags` (time order from its index); damage found while
    iterating (a page SQLite's COUNT did not touch) ends the read like a recovering one."""

    def __init__(self, path: Path, reader: Reader) -> None:
        self.path = path
        self._reader = reader
        self.connections = list(reader.connections)
        self.counts = sqlite_topic_counts(path)
        self.damage: bag_recovery.FileDamage | None = None

    def messages(self, want: set[str]) -> Iterator[tuple[Connection, int, bytes]]:
        self.damage = None
        conns = [c for c in self.connections if c.topic in want]
        if not conns:  # rosbags reads every connection when given none
            return
        try:
            yield from self._reader.messages(connections=conns)
        except Exception as exc:  # rosbags/apsw raise their own types for a corrupt page
            self.damage = bag_recovery.FileDamage(self.path, f"{type(exc).__name__}: {exc}")


_StorageFile = _IndexedFile | McapFile | SqliteFile


class BagReader:
    """An open bag: its topics, raw messages in time order (checked for completeness), deserialisation.

    Each storage file is read by the most complete reader that can: mcap files by the `mcap`
    library from the start of the file, verifying chunk CRCs (with the summary's channels and
    counts when the file has one, else a first pass finds them); sqlite3 files through
    `rosbags` when SQLite can count their messages, else row by row (`bag_recovery`). A
    damaged file yields every complete message before the damage, and the read then raises
    `BagTruncatedError` with a `RecoveryReport`.
    """

    def __init__(self, path: Path, layout: BagLayout, stack: ExitStack) -> None:
        self.path = path
        self.layout = layout
        self.storage = layout.storage
        info = layout.metadata or {}
        mode = str(info.get("compression_mode") or "").lower()
        mode = "" if mode == "none" else mode
        if mode and str(info.get("compression_format") or "") != "zstd":
            raise BagError(f"{path}: compression {info.get('compression_format')!r} is not supported (zstd only)")
        self.compression = mode  # "", "file" or "message"
        self.reconstructed_metadata = layout.metadata is None
        self._origin: dict[Path, Path] = {}  # a temporary copy read instead of a storage file -> that file
        self._opened_damage: list[bag_recovery.FileDamage] = []  # found on opening: hot journals, cut zstd files
        files = list(layout.files)
        if mode == "file":
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bag-")))
            files = [self._decompressed(f, tmp) for f in files]
        self.files: list[_StorageFile] = []
        counts: Counter[str] = Counter()
        for f in files:
            source = self._open_file(f, stack)
            self.files.append(source)
            counts.update(source.counts)
        self.topics = self._topics(counts, info)
        if self.reconstructed_metadata and path.is_dir():
            log.warning(
                "bag %s: no metadata.yaml: topics and counts reconstructed from the storage files "
                "(`depth-annotation reindex %s` writes one)",
                path,
                path,
            )
        self._stores = _typestores_for(_bag_types([c for f in self.files for c in f.connections]))
        self._store_of: dict[str, Typestore] = {}  # msgtype -> the store that deserialised it

    def _open_file(self, f: Path, stack: ExitStack) -> _StorageFile:
        kind = bag_recovery.storage_kind(f)
        if kind != self.storage:
            raise BagError(f"{f}: a {kind} file in a bag whose storage is {self.storage}")
        log_file = bag_recovery.pending_log(f) if kind == "sqlite3" else None
        if log_file is not None:
            f = self._applied_copy(f, log_file, stack)
        if kind == "sqlite3" and bag_recovery.sqlite_full_size(f) is not None:  # cut inside its pages
            source = SqliteFile(f)
            stack.callback(source.close)
            return source
        reader = Reader(f)
        try:
            reader.open()
        # No summary or footer, unreadable pages: read from the start. rosbags raises TypeError or
        # struct.error (not ReaderError) for an mcap file cut inside its header or footer.
        except (ReaderError, OSError, TypeError, ValueError, EOFError, struct.error) as exc:
            log.debug("%s: rosbags cannot open it (%s): recovering", f, exc)
            if kind == "mcap":
                recovered = McapFile(f)
                if recovered.data_complete:
                    log.warning("%s: summary missing or cut, data section complete: no message lost", f)
                return recovered
            source = SqliteFile(f)
            stack.callback(source.close)
            return source
        stack.callback(reader.close)
        if kind == "mcap":
            return McapFile(f, list(reader.connections))
        try:
            return _IndexedFile(f, reader)
        except BagError:  # SQLite cannot count the messages: a damaged file
            source = SqliteFile(f)
            stack.callback(source.close)
            return source

    def _applied_copy(self, db: Path, log_file: Path, stack: ExitStack) -> Path:
        """The committed rows of a sqlite3 file with a pending log (`bag_recovery.pending_log`), as a copy
        in a temporary directory with the log applied (`bag_recovery.applied_copy`): the originals are
        untouched. A rolled-back transaction lost messages (damage); a checkpointed WAL lost none."""
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bag-applied-log-")))
        copy = bag_recovery.applied_copy(db, log_file, tmp)
        self._origin[copy] = db
        if bag_recovery.is_rollback_journal(log_file):
            damage = bag_recovery.ROLLED_BACK.format(journal=log_file.name)
            self._opened_damage.append(bag_recovery.FileDamage(db, damage))
            log.warning("%s: hot journal %s (writer killed mid-write): reading a rolled-back copy", db, log_file.name)
        else:
            log.warning("%s: committed rows in %s (not checkpointed): reading a checkpointed copy", db, log_file.name)
        return copy

    def _decompressed(self, file: Path, tmp: Path) -> Path:
        """A whole-file zstd storage file decompressed into `tmp`, streaming. A file cut short (or
        damaged) gives what decompresses before the damage, and the recovering reader reads that
        partial storage file like any cut one; the report names the compressed file."""
        out = tmp / (file.stem if file.suffix == ".zstd" else file.name)
        written = 0
        cause = ""
        with file.open("rb") as src, out.open("wb") as dst:
            unpack = zstd.ZstdDecompressor()
            in_frame = False  # a frame begun and not finished
            while block := src.read(1 << 20):
                try:
                    while block:
                        data = unpack.decompress(block)
                        in_frame = True
                        dst.write(data)
                        written += len(data)
                        block = b""
                        if unpack.eof:  # several frames: each is decompressed on its own
                            block, unpack, in_frame = unpack.unused_data, zstd.ZstdDecompressor(), False
                except zstd.ZstdError as exc:
                    cause = f"zstd data corrupt ({exc})"
                    break
            if not cause and (in_frame or not written):
                cause = "zstd-compressed file cut short"
        self._origin[out] = Path(f"{file} (decompressed)")
        if cause:
            self._opened_damage.append(
                bag_recovery.FileDamage(file, f"{cause}: {written} bytes decompressed, read up to their damage")
            )
            log.warning("%s: %s: reading the %d bytes decompressed before it", file, cause, written)
            try:
                bag_recovery.storage_kind(out)
            except BagError:
                raise BagError(f"{file}: {cause}: nothing usable ({written} bytes decompressed)") from None
        return out

    def _topics(self, counts: Counter[str], info: dict[str, Any]) -> dict[str, TopicInfo]:
        """metadata.yaml's topics (type, QoS) with the storage's counts; the storage's alone without it."""
        out: dict[str, TopicInfo] = {}
        for entry in info.get("topics_with_message_count") or []:
            try:
                meta = entry["topic_metadata"]
                name, msgtype = str(meta["name"]), str(meta["type"])
                fmt = str(meta.get("serialization_format", "cdr"))
                qos = tuple(parse_qos(meta.get("offered_qos_profiles") or []))
            except (KeyError, TypeError, ReaderError) as exc:
                raise BagMetadataError(f"{self.path / 'metadata.yaml'}: bad topic entry ({exc})") from None
            if fmt != "cdr":
                raise BagError(f"{self.path}: topic {name} is serialized as {fmt!r}; only cdr is supported")
            out[name] = TopicInfo(name, msgtype, counts.get(name, 0), qos, int(entry.get("message_count", 0)))
        for source in self.files:
            for conn in source.connections:
                if conn.topic not in out:
                    ext = _ext(conn)
                    qos = tuple(ext.offered_qos_profiles) if ext else ()
                    out[conn.topic] = TopicInfo(conn.topic, conn.msgtype, counts[conn.topic], qos)
        return out

    def raw_messages(self, wanted: Collection[str]) -> Iterator[RawMessage]:
        """Messages of the `wanted` topics in receive-time order, as recorded (CDR bytes).

        When the iteration completes: `BagTruncatedError` (with a `RecoveryReport`) if a
        storage file was damaged, after every message before the damage was yielded; else
        the count per topic is checked against the storage's own count (`BagShortReadError`).
        """
        want = set(wanted)
        report = self._new_report(want)
        read: Counter[str] = Counter()
        streams = [self._file_messages(source, want) for source in self.files]
        for msg in heapq.merge(*streams, key=lambda m: m.time_ns):
            read[msg.topic] += 1
            report.seen(msg.time_ns)
            yield msg
        report.damage = self.damage
        if report.damage:
            raise BagTruncatedError(report)
        short = {
            t: (read[t], self.topics[t].count)
            for t in sorted(want & self.topics.keys())
            if read[t] < self.topics[t].count
        }
        if short:
            raise BagShortReadError(self.path, short)

    def _new_report(self, want: set[str]) -> RecoveryReport:
        report = RecoveryReport(self.path, reconstructed_metadata=self.reconstructed_metadata)
        if self.layout.metadata is not None:
            report.expected = sum(t.metadata_count or 0 for name, t in self.topics.items() if name in want)
        return report

    def _file_messages(self, source: _StorageFile, want: set[str]) -> Iterator[RawMessage]:
        for conn, stamp, data in source.messages(want):
            if self.compression == "message":
                try:
                    data = zstd.decompress(data)
                except zstd.ZstdError as exc:
                    raise BagError(f"{source.path}: a {conn.topic} message does not decompress: {exc}") from None
            yield RawMessage(conn.topic, conn.msgtype, stamp, data)

    @property
    def truncated(self) -> bool:
        """True once a read found a damaged storage file."""
        return bool(self.damage)

    @property
    def damage(self) -> list[bag_recovery.FileDamage]:
        """Where each damaged storage file stopped (file and byte offset), as far as read."""
        found = [source.damage for source in self.files if source.damage is not None]
        named = [dataclasses.replace(d, file=self._origin.get(d.file, d.file)) for d in found]
        return self._opened_damage + named

    def deserialize(self, data: bytes | memoryview, msgtype: str) -> Any:
        known = self._store_of.get(msgtype)
        errors = []
        for store in [known] if known else self._stores:
            try:
                msg = store.deserialize_cdr(data, msgtype)
            except Exception as exc:  # rosbags raises KeyError, SerdeError, struct.error, ... for bad input
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            self._store_of[msgtype] = store
            return msg
        raise BagError(f"{self.path}: cannot deserialise a {msgtype} message: {'; '.join(errors)}")


@contextmanager
def open_bag(path: str | Path) -> Iterator[BagReader]:
    """Open a rosbag2 directory (mcap or sqlite3, with or without metadata.yaml) or one .mcap/.db3 file."""
    p = Path(path)
    layout = bag_layout(p)
    with ExitStack() as stack:
        yield BagReader(p, layout, stack)


def topics(reader: BagReader) -> dict[str, TopicInfo]:
    return reader.topics


def require_topics(reader: BagReader, wanted: list[str]) -> None:
    have = topics(reader)
    missing = [t for t in wanted if t not in have]
    if missing:
        listing = ", ".join(f"{t.topic} [{t.msgtype}]" for t in sorted(have.values(), key=lambda t: t.topic)) or "none"
        raise BagError(f"topic(s) {', '.join(missing)} not in the bag; it has: {listing}")


def stamp_of(msg: Any) -> int:
    """A message's header stamp in nanoseconds (rosbags and rclpy messages alike)."""
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def messages(reader: BagReader, wanted: Collection[str]) -> Iterator[tuple[str, int, Any]]:
    """(topic, receive time ns, deserialised message) in time order; checked like `raw_messages`."""
    for msg in reader.raw_messages(wanted):
        yield msg.topic, msg.time_ns, reader.deserialize(msg.data, msg.msgtype)


def colour_frames_with_depth(
    path: str | Path, topic: str, depth_topic: str | None
) -> Iterator[tuple[str, np.ndarray, np.ndarray | None]]:
    """(header stamp as text, RGB, depth in metres with the same stamp or None) per colour image of a bag.

    The input `depth-annotation mono --bag` (and its batch form) runs the model on.
    """
    with open_bag(path) as reader:
        wanted = [topic] + ([depth_topic] if depth_topic else [])
        require_topics(reader, wanted)
        depth_by_stamp: dict[int, np.ndarray] = {}
        pending = []
        for name, _, msg in messages(reader, wanted):
            stamp = stamp_of(msg)
            if name == depth_topic:
                depth_by_stamp[stamp] = depth_to_metres(image_to_array(msg), msg.encoding)
                continue
            pending.append((stamp, image_to_rgb(msg)))
        for stamp, rgb in pending:
            yield str(stamp), rgb, depth_by_stamp.get(stamp)


# --- building messages for writing (tests, recorder, exporter fixtures) ------------------------------


def _types() -> dict[str, Any]:
    return TYPESTORE.types


def header(stamp_ns: int, frame_id: str) -> Any:
    t = _types()
    return t["std_msgs/msg/Header"](
        stamp=t["builtin_interfaces/msg/Time"](sec=int(stamp_ns // 10**9), nanosec=int(stamp_ns % 10**9)),
        frame_id=frame_id,
    )


def image(arr: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Any:
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


def camera_info(intr: Intrinsics, stamp_ns: int, frame_id: str) -> Any:
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


# The writer lives in bag_writer.py (mcap library, chunk CRCs, per-distro metadata); kept importable here.
from .bag_writer import BagWriter as BagWriter  # noqa: E402
