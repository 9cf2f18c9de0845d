"""Reading damaged rosbag2 storage files: every complete message before the damage, and what was lost.

A recording cut short (power loss, a killed recorder, a full disk) leaves an mcap
file without its summary and footer, or a sqlite3 file with missing or corrupt
pages. Both formats can still be read from the start:

* mcap is read sequentially with the `mcap` library's `StreamReader` (the record
  reader behind its `NonSeekingReader`), chunk by chunk. A chunk whose CRC is
  non-zero is verified before its messages are used; a chunk that fails, a cut
  record or an undecodable chunk ends the read, and the damage names the file and
  byte offset. Chunks with CRC 0 (older rosbags writers) cannot be verified.
* sqlite3 is read through the stdlib, row by row in rowid (insertion) order,
  stopping at the first error SQLite reports ("database disk image is malformed"
  for a cut file or a zeroed page).

`RecoveryReport` is the result a user acts on: how many messages came back, the
time of the last one, and what metadata.yaml expected.
"""

from __future__ import annotations

import functools
import shutil
import sqlite3
import struct
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mcap.exceptions import EndOfFile, McapError
from mcap.opcode import Opcode
from mcap.records import Channel, Chunk, DataEnd, McapRecord, Message, Schema
from mcap.stream_reader import StreamReader, get_chunk_data_stream
from rosbags.interfaces import (
    Connection,
    ConnectionExtRosbag2,
    MessageDefinition,
    MessageDefinitionFormat,
)
from rosbags.rosbag2.metadata import parse_qos

from .errors import BagError

MCAP_MAGIC = b"\x89MCAP0\r\n"
SQLITE_MAGIC = b"SQLite format 3\x00"
_DEFINITION_FORMATS = {"ros2msg": MessageDefinitionFormat.MSG, "ros2idl": MessageDefinitionFormat.IDL}


@dataclass(frozen=True)
class FileDamage:
    """Where reading one storage file stopped and why."""

    file: Path
    cause: str
    offset: int | None = None  # byte offset of the damaged record (mcap)

    def __str__(self) -> str:
        at = f" at byte {self.offset}" if self.offset is not None else ""
        return f"{self.file}{at}: {self.cause}"


@dataclass
class RecoveryReport:
    """What reading a bag recovered: complete unless `damage` lists a file."""

    bag: Path
    messages: int = 0  # messages read (all topics read)
    first_time_ns: int | None = None
    last_time_ns: int | None = None
    expected: int | None = None  # total message count metadata.yaml lists (None: no metadata.yaml)
    damage: list[FileDamage] = field(default_factory=list)
    reconstructed_metadata: bool = False  # no metadata.yaml: topics and counts from the storage files

    def seen(self, time_ns: int) -> None:
        self.messages += 1
        if self.first_time_ns is None or time_ns < self.first_time_ns:
            self.first_time_ns = time_ns
        if self.last_time_ns is None or time_ns > self.last_time_ns:
            self.last_time_ns = time_ns

    @property
    def truncated(self) -> bool:
        return bool(self.damage)

    def summary(self) -> str:
        """`bag X: truncated after N messages at T s (recovered N of ~M expected from metadata)`."""
        t = 0.0
        if self.first_time_ns is not None and self.last_time_ns is not None:
            t = (self.last_time_ns - self.first_time_ns) / 1e9
        expected = (
            f"recovered {self.messages} of ~{self.expected} expected from metadata"
            if self.expected is not None
            else f"recovered {self.messages}; no metadata.yaml to compare with"
        )
        where = "; ".join(str(d) for d in self.damage)
        return f"bag {self.bag}: truncated after {self.messages} messages at {t:.3f} s ({expected}): {where}"


def storage_kind(file: Path) -> str:
    """'mcap' or 'sqlite3' from the file's first bytes; NotABagFileError otherwise."""
    from .errors import BagPermissionError, NotABagFileError

    try:
        with file.open("rb") as f:
            head = f.read(16)
    except PermissionError:
        raise BagPermissionError(f"{file}: permission denied") from None
    except OSError as exc:
        raise BagError(f"{file}: cannot read: {exc.strerror or exc}") from None
    if head.startswith(MCAP_MAGIC):
        return "mcap"
    if head.startswith(SQLITE_MAGIC):
        return "sqlite3"
    what = "empty" if not head else f"starts with {head[:8]!r}"
    raise NotABagFileError(f"{file}: not an mcap or sqlite3 file ({what})")


# --- mcap -------------------------------------------------------------------------------------------


def _msgdef(schema: Schema | None) -> MessageDefinition:
    if schema is None or schema.encoding not in _DEFINITION_FORMATS:
        return MessageDefinition(MessageDefinitionFormat.NONE, "")
    return MessageDefinition(_DEFINITION_FORMATS[schema.encoding], schema.data.decode(errors="replace"))


class _Tell:
    """A read-only stream that knows how many bytes were read (the offset of the next record).

    A read that returns fewer bytes than asked for is the end of a cut file: the `mcap`
    library raises EndOfFile only for a read that returns nothing (a partial fixed-size
    field gives `struct.error`, a partial message body short data), so it is raised here.
    """

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.pos += len(data)
        if n > 0 and len(data) < n:
            raise EndOfFile()
        return data


_KNOWN_OPCODES = frozenset(int(op) for op in Opcode)
_PRIVATE_OPCODES = 0x80  # mcap spec: 0x01-0x7F are the format's own records, 0x80-0xFF application records


class UnknownRecordError(McapError):
    """A record whose opcode the mcap format reserves but does not define: a damaged byte."""

    def __init__(self, opcode: int) -> None:
        super().__init__(f"record opcode {opcode:#04x} is reserved by the mcap format but undefined (a damaged byte)")


def _check_opcode(opcode: int) -> None:
    # The `mcap` library skips every unknown record; only 0x80-0xFF may be skipped (application
    # records), an unknown opcode below that (or 0x00, never valid) is a damaged record header.
    if opcode not in _KNOWN_OPCODES and opcode < _PRIVATE_OPCODES:
        raise UnknownRecordError(opcode)


class _CheckedStreamReader(StreamReader):
    """The library's sequential reader, refusing records with a reserved but undefined opcode."""

    def _read_record(self, opcode: int, length: int) -> McapRecord | None:
        _check_opcode(opcode)
        return super()._read_record(opcode, length)


def _chunk_records(chunk: Chunk) -> list[McapRecord]:
    """The records of a chunk (CRC verified when it has one), like `breakup_chunk`, but a
    reserved undefined opcode is damage rather than a record to skip."""
    stream, length = get_chunk_data_stream(chunk, validate_crc=True)
    records: list[McapRecord] = []
    while stream.count < length:
        opcode = stream.read1()
        size = stream.read8()
        _check_opcode(opcode)
        if opcode == Opcode.CHANNEL:
            records.append(Channel.read(stream))
        elif opcode == Opcode.MESSAGE:
            records.append(Message.read(stream, size))
        elif opcode == Opcode.SCHEMA:
            records.append(Schema.read(stream))
        else:
            stream.read(size)
    if stream.count != length:
        raise McapError(f"the last record of the chunk runs {stream.count - length} bytes past its end")
    return records


class McapFile:
    """One mcap file read from its start: channels, message counts and messages up to the first damage.

    `connections`/`counts` come from the caller (an intact file's summary) or from a
    first sequential pass over the file (a file without summary), which also finds
    where the damage is.
    """

    def __init__(self, path: Path, connections: list[Connection] | None = None) -> None:
        self.path = path
        self.damage: FileDamage | None = None
        self.data_complete = False  # the last read reached the DataEnd record: every message was read
        self.data_end: int | None = None  # byte offset where the data section ends (when reached)
        self._channels: dict[int, Connection] = {}
        self.counts: Counter[str] = Counter()
        if connections is None:
            for conn, _, _ in self._records(want=None, data=False):
                self.counts[conn.topic] += 1
            self.connections = list({c.topic: c for c in self._channels.values()}.values())
        else:
            self.connections = connections
            for c in connections:
                self.counts[c.topic] += c.msgcount

    def messages(self, want: set[str]) -> Iterator[tuple[Connection, int, bytes]]:
        """(connection, log time ns, CDR bytes) in file order, stopping at the first damage (see `damage`)."""
        yield from self._records(want, data=True)

    def _records(self, want: set[str] | None, *, data: bool) -> Iterator[tuple[Connection, int, bytes]]:
        for rec in self.raw_records():
            if isinstance(rec, Message):
                conn = self._channels[rec.channel_id]
                if want is None or conn.topic in want:
                    yield conn, rec.log_time, rec.data if data else b""

    def raw_records(self) -> Iterator[Schema | Channel | Message]:
        """The Schema, Channel and Message records of every complete, verified chunk before the damage.

        The data section ends at its DataEnd record: a file cut after it lost its summary
        but no message, and `data_complete` says so."""
        self.damage = None
        self.data_complete = False
        schemas: dict[int, Schema] = {}
        with self.path.open("rb") as raw:
            stream = _Tell(raw)
            reader = _CheckedStreamReader(stream, emit_chunks=True)  # type: ignore[arg-type]  # duck-typed stream
            start = len(MCAP_MAGIC)  # storage_kind() has seen the leading magic
            records = iter(reader.records)
            while True:
                try:
                    record = next(records)
                except StopIteration:
                    return
                except EndOfFile:
                    self.damage = FileDamage(self.path, "cut short inside a record (no summary, no footer)", start)
                    return
                except UnknownRecordError as exc:
                    self.damage = FileDamage(self.path, f"unreadable record ({exc})", start)
                    return
                except (McapError, ValueError, OSError, EOFError, struct.error) as exc:
                    self.damage = FileDamage(self.path, f"unreadable record ({type(exc).__name__}: {exc})", start)
                    return
                if isinstance(record, DataEnd):
                    self.data_complete = True
                    self.data_end = stream.pos
                    return
                if isinstance(record, Chunk):
                    try:
                        inner = _chunk_records(record)
                    except Exception as exc:  # CRC mismatch, zstd/lz4 error, a cut inner record
                        self.damage = FileDamage(self.path, f"corrupt chunk ({type(exc).__name__}: {exc})", start)
                        return
                else:
                    inner = [record]
                start = stream.pos
                for rec in inner:
                    if isinstance(rec, Schema):
                        schemas[rec.id] = rec
                        yield rec
                    elif isinstance(rec, Channel):
                        self._channels[rec.id] = self._connection(rec, schemas.get(rec.schema_id))
                        yield rec
                    elif isinstance(rec, Message):
                        if rec.channel_id not in self._channels:
                            self.damage = FileDamage(self.path, f"message on unknown channel {rec.channel_id}", start)
                            return
                        yield rec

    def channel(self, channel_id: int) -> Connection:
        """The connection of a channel seen by `raw_records`."""
        return self._channels[channel_id]

    def _connection(self, channel: Channel, schema: Schema | None) -> Connection:
        qos_text = channel.metadata.get("offered_qos_profiles", "")
        try:
            qos = parse_qos(qos_text) if qos_text else []
        except Exception:  # QoS rosbags cannot parse: the topic is still readable without it
            qos = []
        msgtype = schema.name if schema is not None else ""
        ext = ConnectionExtRosbag2(channel.message_encoding, qos)
        return Connection(channel.id, channel.topic, msgtype, _msgdef(schema), "", 0, ext, self)


# --- sqlite3 ----------------------------------------------------------------------------------------


class SqliteFile:
    """One rosbag2 sqlite3 file read row by row through the stdlib, stopping at the first error."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.damage: FileDamage | None = None
        self._con = self._connect(path)
        try:
            topics = self._con.execute(
                "SELECT id, name, type, serialization_format, offered_qos_profiles FROM topics"
            ).fetchall()
        except sqlite3.Error as exc:
            self._con.close()
            raise BagError(f"{path}: the sqlite3 file's topics table is unreadable ({exc})") from None
        # A file that ends inside its pages: SQLite reads the missing bytes as zeros, without an
        # error, so a row whose last overflow page lies past the end comes back with a zero-filled
        # tail. A copy padded with 0xFF instead is read alongside: what depends on the missing bytes
        # reads differently there, and is dropped (see `_differs`).
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._alt: sqlite3.Connection | None = None
        full = sqlite_full_size(path)
        if full is not None:
            self._tmp = tempfile.TemporaryDirectory(prefix="bag-cut-")
            alt = Path(self._tmp.name) / path.name
            shutil.copyfile(path, alt)
            with alt.open("ab") as f:
                f.write(b"\xff" * (full - path.stat().st_size))
            self._alt = self._connect(alt)
        defs = self._definitions()
        self._by_id: dict[int, Connection] = {}
        for tid, name, msgtype, fmt, qos_text in topics:
            try:
                qos = parse_qos(qos_text) if qos_text else []
            except Exception:  # unparsable QoS text: the topic is still readable
                qos = []
            msgdef = defs.get(str(msgtype), MessageDefinition(MessageDefinitionFormat.NONE, ""))
            ext = ConnectionExtRosbag2(str(fmt), qos)
            self._by_id[int(tid)] = Connection(int(tid), str(name), str(msgtype), msgdef, "", 0, ext, self)
        self.connections = list(self._by_id.values())
        # Pass 1: the row headers (no message data) in rowid order, up to the first damaged page.
        self._rows: list[tuple[int, int, int]] = []  # (timestamp, rowid, topic id)
        query = "SELECT id, topic_id, timestamp FROM messages ORDER BY id"
        alt_rows: Iterator[Any] | None = None
        if self._alt is not None:
            try:
                alt_rows = iter(self._alt.execute(query))
            except sqlite3.Error:  # the padded copy fails at once: every row depends on the missing bytes
                alt_rows = iter(())
        try:
            for row in self._con.execute(query):
                rowid, tid, stamp = row
                if not (isinstance(rowid, int) and isinstance(tid, int) and isinstance(stamp, int)):
                    self.damage = FileDamage(self.path, f"sqlite3: a damaged row after {len(self._rows)} rows")
                    break
                if alt_rows is not None and self._differs(row, lambda: next(alt_rows, None)):
                    self.damage = self._past_end(f"the header of row {rowid}", len(self._rows))
                    break
                self._rows.append((stamp, rowid, tid))
        except sqlite3.Error as exc:
            self.damage = FileDamage(self.path, f"sqlite3: {exc} after {len(self._rows)} rows")
        self._rows.sort()
        self.counts: Counter[str] = Counter(self._by_id[t].topic for _, _, t in self._rows if t in self._by_id)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        try:
            con = sqlite3.connect(read_only_uri(path), uri=True)
            # A file shorter than its header says is "malformed" before any page is read, unless
            # the schema is trusted as it is (a flag of this connection; mode=ro still writes nothing).
            con.execute("PRAGMA writable_schema = ON")
        except sqlite3.Error as exc:
            raise BagError(f"{path}: cannot open the sqlite3 file ({exc})") from None
        return con

    @staticmethod
    def _differs(value: Any, read_alt: Callable[[], Any]) -> bool:
        """Whether the padded copy reads `value` differently (or not at all): it depends on bytes
        past the end of the file."""
        try:
            return bool(read_alt() != value)
        except sqlite3.Error:
            return True

    def _alt_data(self, rowid: int) -> Any:
        assert self._alt is not None
        return self._alt.execute("SELECT data FROM messages WHERE id = ?", (rowid,)).fetchone()

    def _past_end(self, what: str, kept: int) -> FileDamage:
        return FileDamage(
            self.path,
            f"sqlite3: cut inside a page: {what} reaches past the end of the file (SQLite would read zeros "
            f"there), dropped after {kept} messages",
        )

    def rows(self) -> list[tuple[int, int, int]]:
        """(timestamp, rowid, topic id) of every readable row, in time order."""
        return list(self._rows)

    def topic_of(self, topic_id: int) -> Connection | None:
        return self._by_id.get(topic_id)

    def _definitions(self) -> dict[str, MessageDefinition]:
        try:
            rows = self._con.execute(
                "SELECT topic_type, encoding, encoded_message_definition FROM message_definitions"
            ).fetchall()
        except sqlite3.Error:  # schema before version 4, or an unreadable page: the standard types are used
            return {}
        return {
            str(t): MessageDefinition(_DEFINITION_FORMATS[str(e)], str(d))
            for t, e, d in rows
            if str(e) in _DEFINITION_FORMATS
        }

    def messages(self, want: set[str]) -> Iterator[tuple[Connection, int, bytes]]:
        """Messages in time order, each read on its own: the first unreadable one ends the read."""
        pass1 = self.damage
        read = 0
        for stamp, rowid, tid in self._rows:
            conn = self._by_id.get(tid)
            if conn is None or conn.topic not in want:
                continue
            try:
                row = self._con.execute("SELECT data FROM messages WHERE id = ?", (rowid,)).fetchone()
            except sqlite3.Error as exc:
                self.damage = FileDamage(self.path, f"sqlite3: message {rowid} unreadable: {exc}")
                return
            if row is None:
                continue
            if self._alt is not None and self._differs(row, functools.partial(self._alt_data, rowid)):
                self.damage = self._past_end(f"the data of message {rowid}", read)
                return
            read += 1
            yield conn, stamp, bytes(row[0])
        self.damage = pass1

    def close(self) -> None:
        self._con.close()
        if self._alt is not None:
            self._alt.close()
        if self._tmp is not None:
            self._tmp.cleanup()


ROLLED_BACK = (
    "killed mid-write: its uncommitted transaction (hot journal {journal}) was rolled back on a copy, "
    "the original files untouched; the committed messages were read"
)


def read_only_uri(db: Path) -> str:
    """The URI to read a sqlite3 bag file without writing beside it.

    `immutable=1` (as rosbags opens them): no locks, and no `-wal`/`-shm` files created next to a
    WAL-mode bag (rosbag2 writes WAL; `mode=ro` alone creates them wherever the directory is
    writable, in the user's bag or shared read-only data). Only when a non-empty `-wal` holds
    committed rows (a killed WAL writer) must SQLite read it: then `mode=ro` without immutable."""
    wal = db.with_name(db.name + "-wal")
    try:
        has_wal = wal.is_file() and wal.stat().st_size > 0
    except OSError:
        has_wal = False
    return f"{db.resolve().as_uri()}?mode=ro" + ("" if has_wal else "&immutable=1")


def pending_log(db: Path) -> Path | None:
    """The log beside a sqlite3 file that SQLite must apply before its rows can be read, when it
    holds something: a rollback `-journal` (a writer killed inside a transaction: SQLite refuses a
    read-only open, "attempt to write a readonly database") or a `-wal` (a WAL-mode writer, as
    rosbag2's `resilient` storage preset, stopped before its checkpoint: the committed rows are in
    the WAL, which an `immutable` read, rosbags' too, does not see)."""
    for suffix in _PENDING_LOGS:
        log = db.with_name(db.name + suffix)
        if _holds_something(log):
            return log
    return None


_PENDING_LOGS = ("-journal", "-wal")


def _holds_something(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


def is_rollback_journal(log: Path) -> bool:
    return log.name.endswith("-journal")


def applied_copy(db: Path, log: Path, tmp: Path) -> Path:
    """A copy of `db` in the directory `tmp` with its `log` applied: a hot journal rolled back, a
    WAL checkpointed; it holds exactly the committed rows.

    SQLite applies the log when the file is opened for writing; the copy (db and log side by side,
    named as SQLite pairs them) is what is opened so: the originals are never modified."""
    from .errors import BagPermissionError

    copy = tmp / db.name
    try:
        shutil.copyfile(db, copy)
        for suffix in _PENDING_LOGS:  # `log` and any other one beside it (a stale journal beside a WAL)
            other = db.with_name(db.name + suffix)
            if other == log or _holds_something(other):
                shutil.copyfile(other, tmp / other.name)
        con = sqlite3.connect(copy)
        try:
            # the first read rolls a journal back; closing the last connection checkpoints a WAL into
            # the copy and removes it (so the copy then reads with immutable=1)
            con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        finally:
            con.close()
    except PermissionError:
        raise BagPermissionError(f"{db}: permission denied") from None
    except (OSError, sqlite3.Error) as exc:
        raise BagError(f"{db}: cannot apply its {log.name} on a copy: {exc}") from None
    return copy


def sqlite_full_size(path: Path) -> int | None:
    """The size a sqlite3 file's pages need (whole pages, at least the page count its header
    gives) when the file is shorter: it was cut inside a page. None for a file of whole pages."""
    with path.open("rb") as f:
        head = f.read(100)
        size = f.seek(0, 2)
    if len(head) < 32:
        return None  # no header to go by: SQLite's own error says what is wrong
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    if page < 512 or page & (page - 1):
        return None
    full = max(-(-size // page) * page, int.from_bytes(head[28:32], "big") * page)
    return full if full > size else None


def new_report(bag: Path, metadata: dict[str, Any] | None) -> RecoveryReport:
    expected = None
    if metadata is not None:
        try:
            expected = int(metadata.get("message_count", 0))
        except (TypeError, ValueError):
            expected = None
    return RecoveryReport(bag, expected=expected, reconstructed_metadata=metadata is None)
