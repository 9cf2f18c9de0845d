"""`reindex`: a fresh metadata.yaml for a bag directory, and a readable copy of each damaged mcap file.

What `ros2 bag reindex` (metadata.yaml from the storage files) and `mcap recover`
(a complete file from a cut one) do, without ROS: the storage files are read from
their start (`bag_recovery`); a damaged mcap file's complete chunks are rewritten
by the `mcap` library's Writer as `<name>.recovered.mcap` (with chunk CRCs and a
summary, so any mcap reader opens it) and metadata.yaml points to that copy. The
original storage files are never modified; an existing metadata.yaml is kept as
`metadata.yaml.bak`.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from mcap.reader import make_reader
from mcap.records import Channel, Message, Schema
from mcap.writer import CompressionType, Writer
from rosbags.interfaces import ConnectionExtRosbag2
from rosbags.rosbag2.metadata import dump_qos_v9

from depth_annotation.common import atomic_io

from .bag_recovery import (
    ROLLED_BACK,
    FileDamage,
    McapFile,
    SqliteFile,
    applied_copy,
    is_rollback_journal,
    pending_log,
    storage_kind,
)
from .errors import BagPermissionError, NotABagError

RECOVERED_SUFFIX = ".recovered.mcap"
ZSTD_FRAME_MAGIC = b"\x28\xb5\x2f\xfd"  # RFC 8878: every zstd frame starts with these bytes
log = logging.getLogger(__name__)


@dataclass
class ReindexResult:
    bag: Path
    metadata: Path
    storage: str
    messages: int = 0
    topics: int = 0
    files: list[Path] = field(default_factory=list)  # what metadata.yaml lists
    recovered: list[tuple[Path, Path, FileDamage]] = field(default_factory=list)  # (damaged, copy, where)
    damaged: list[FileDamage] = field(default_factory=list)  # sqlite3 files read up to their damage
    replaced_metadata: bool = False  # the old metadata.yaml is now metadata.yaml.bak
    compression: tuple[str, str] = ("", "")  # (compression_format, compression_mode) written


def _split_key(path: Path) -> tuple[str, int, str]:
    m = re.fullmatch(r"(.*)_(\d+)", path.stem)
    return (m.group(1), int(m.group(2)), path.name) if m else (path.stem, -1, path.name)


def _storage_files(bag: Path) -> tuple[str, list[Path]]:
    mcaps = sorted((f for f in bag.glob("*.mcap") if not f.name.endswith(RECOVERED_SUFFIX)), key=_split_key)
    dbs = sorted(bag.glob("*.db3"), key=_split_key)
    if mcaps and dbs:
        raise NotABagError(f"{bag}: has both .mcap and .db3 files: reindex one bag at a time")
    if not mcaps and not dbs:
        raise NotABagError(f"{bag}: not a rosbag2 bag (no .mcap or .db3 file to reindex)")
    return ("mcap", mcaps) if mcaps else ("sqlite3", dbs)


class _Stats:
    def __init__(self) -> None:
        self.count = 0
        self.first: int | None = None
        self.last: int | None = None
        self.first_data = b""  # the first bytes of the first message (per-message compression shows there)

    def add(self, t: int, data: bytes | None = None) -> None:
        if self.count == 0 and data is not None:
            self.first_data = bytes(data[:4])
        self.count += 1
        self.first = t if self.first is None else min(self.first, t)
        self.last = t if self.last is None else max(self.last, t)


def _copy_mcap(src: McapFile, out: Path, topics: dict[str, dict[str, Any]], stats: _Stats) -> None:
    """The complete chunks of `src` into `out` through the mcap Writer (written beside, then renamed)."""
    tmp = out.with_name(out.name + ".partial")
    schema_ids: dict[int, int] = {}
    channel_ids: dict[int, int] = {}
    try:
        with tmp.open("wb") as f:
            w = Writer(f, compression=CompressionType.ZSTD)
            w.start(profile="ros2", library="depth_annotation reindex")
            for rec in src.raw_records():
                if isinstance(rec, Schema):
                    schema_ids[rec.id] = w.register_schema(rec.name, rec.encoding, rec.data)
                elif isinstance(rec, Channel):
                    channel_ids[rec.id] = w.register_channel(
                        rec.topic, rec.message_encoding, schema_ids.get(rec.schema_id, 0), dict(rec.metadata)
                    )
                elif isinstance(rec, Message):
                    w.add_message(channel_ids[rec.channel_id], rec.log_time, rec.data, rec.publish_time, rec.sequence)
                    stats.add(rec.log_time, rec.data)
                    _count(topics, src, rec)
            w.finish()  # type: ignore[no-untyped-call]
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _compression(bag: Path, first_data: bytes) -> tuple[str, str]:
    """(compression_format, compression_mode): the original metadata's (the backup of a former reindex,
    else metadata.yaml) when it names one, else per-message zstd when the first message starts with a
    zstd frame (a CDR message starts with its encapsulation header, 00 01 00 00 or 00 00 00 00)."""
    for name in ("metadata.yaml.bak", "metadata.yaml"):
        try:
            info = yaml.safe_load((bag / name).read_text())["rosbag2_bagfile_information"]
        except (OSError, UnicodeDecodeError, yaml.YAMLError, TypeError, KeyError):
            continue  # absent or unreadable (a reason to reindex): the next source says
        if isinstance(info, dict):
            fmt, mode = str(info.get("compression_format") or ""), str(info.get("compression_mode") or "")
            if mode.lower() not in ("", "none"):
                return fmt, mode
            break  # "no compression" (or a former reindex's blank): the data itself says
    if first_data.startswith(ZSTD_FRAME_MAGIC):
        log.warning("%s: messages are zstd-compressed (a zstd frame starts each): compression_mode message", bag)
        return ("zstd", "message")
    return ("", "")


def _count_sqlite(f: Path, topics: dict[str, dict[str, Any]], stats: _Stats, result: ReindexResult) -> None:
    db = SqliteFile(f)
    try:
        for conn in db.connections:
            topics.setdefault(conn.topic, {"conn": conn, "count": 0})
        for stamp, _, tid in db.rows():
            known = db.topic_of(tid)
            if known is not None:
                stats.add(stamp)
                topics[known.topic]["count"] += 1
        if db.damage is not None:
            result.damaged.append(db.damage)
        for _, _, data in db.messages({c.topic for c in db.connections}):
            stats.first_data = data[:4]
            break
    finally:
        db.close()


def _footer_readable(path: Path) -> bool:
    """Whether an mcap reader that seeks to the footer (rosbags, `ros2 bag`) can open the file."""
    try:
        with path.open("rb") as f:
            make_reader(f).get_summary()
    except Exception:  # the mcap library raises struct.error, EndOfFile, InvalidMagic, ... for a cut footer
        return False
    return True


def _count(topics: dict[str, dict[str, Any]], src: McapFile, rec: Message) -> None:
    conn = src.channel(rec.channel_id)
    entry = topics.setdefault(conn.topic, {"conn": conn, "count": 0})
    entry["count"] += 1


def reindex(bag: str | Path) -> ReindexResult:
    """Write `bag/metadata.yaml` from the storage files (and recovered copies of damaged mcap files)."""
    p = Path(bag)
    if not p.is_dir():
        raise NotABagError(f"{p}: reindex takes a bag directory")
    if not os.access(p, os.R_OK | os.X_OK | os.W_OK):
        raise BagPermissionError(f"{p}: permission denied (reindex reads and writes the bag directory)")
    storage, files = _storage_files(p)
    result = ReindexResult(p, p / "metadata.yaml", storage)
    topics: dict[str, dict[str, Any]] = {}
    file_entries: list[dict[str, Any]] = []
    first_data = b""
    for f in files:
        if storage_kind(f) != storage:
            raise NotABagError(f"{f}: its content is not {storage}")
        stats = _Stats()
        listed = f
        if storage == "mcap":
            src = McapFile(f)
            damage = src.damage
            if damage is None and not _footer_readable(f):  # every message there, the summary/footer cut
                damage = FileDamage(
                    f, "summary or footer cut short (data section complete: no message lost)", src.data_end
                )
            if damage is not None:
                listed = f.with_name(f.stem + RECOVERED_SUFFIX)
                _copy_mcap(src, listed, topics, stats)
                result.recovered.append((f, listed, damage))
            else:
                for rec in src.raw_records():
                    if isinstance(rec, Message):
                        stats.add(rec.log_time, rec.data)
                        _count(topics, src, rec)
        else:
            log_file = pending_log(f)
            with tempfile.TemporaryDirectory(prefix="reindex-applied-log-") as tmp:
                if log_file is not None and is_rollback_journal(log_file):  # other tools roll back on opening
                    result.damaged.append(FileDamage(f, ROLLED_BACK.format(journal=log_file.name)))
                # the committed rows: a hot journal rolled back, a WAL checkpointed, on a copy
                counted = applied_copy(f, log_file, Path(tmp)) if log_file else f
                _count_sqlite(counted, topics, stats, result)
        first_data = first_data or stats.first_data
        result.files.append(listed)
        result.messages += stats.count
        file_entries.append(
            {
                "path": listed.name,
                "starting_time": {"nanoseconds_since_epoch": stats.first or 0},
                "duration": {"nanoseconds": (stats.last or 0) - (stats.first or 0)},
                "message_count": stats.count,
            }
        )
    compression = _compression(p, first_data)
    result.compression = compression
    starts = [e["starting_time"]["nanoseconds_since_epoch"] for e in file_entries if e["message_count"]]
    ends = [e["starting_time"]["nanoseconds_since_epoch"] + e["duration"]["nanoseconds"] for e in file_entries]
    start = min(starts) if starts else 0
    info = {
        "version": 9,
        "storage_identifier": storage,
        "duration": {"nanoseconds": (max(ends) - start) if starts else 0},
        "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": result.messages,
        "topics_with_message_count": [
            {
                "topic_metadata": {
                    "name": name,
                    "type": entry["conn"].msgtype,
                    "serialization_format": (
                        entry["conn"].ext.serialization_format
                        if isinstance(entry["conn"].ext, ConnectionExtRosbag2)
                        else "cdr"
                    ),
                    "offered_qos_profiles": dump_qos_v9(
                        list(entry["conn"].ext.offered_qos_profiles)
                        if isinstance(entry["conn"].ext, ConnectionExtRosbag2)
                        else []
                    ),
                    "type_description_hash": "",
                },
                "message_count": entry["count"],
            }
            for name, entry in topics.items()
        ],
        "compression_format": compression[0],
        "compression_mode": compression[1],
        "relative_file_paths": [f.name for f in result.files],
        "files": file_entries,
        "custom_data": None,
        "ros_distro": "depth_annotation reindex",
    }
    result.topics = len(topics)
    backup = p / "metadata.yaml.bak"
    if result.metadata.exists() and not backup.exists():
        os.replace(result.metadata, backup)
        result.replaced_metadata = True
    elif result.metadata.exists():  # a reindex ran before: the backup holds the recorder's original
        log.warning("%s: kept as it is (the original metadata); %s replaced", backup, result.metadata)
    atomic_io.write_text(result.metadata, yaml.safe_dump({"rosbag2_bagfile_information": info}, sort_keys=True))
    return result
