"""Damaged bags from an adversarial review of the recovering reader (issue 15): small cuts, flipped
opcodes, hidden causes, `reindex` twice, message compression, killed sqlite3 writers, zstd files.

Known answers come from the intact bag (its chunk index, its export), never from the reader under test.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from mcap.records import Message
from mcap.stream_reader import StreamReader, breakup_chunk

from depth_annotation.cli.main import main
from depth_annotation.dataset import DEFAULT_TOPICS, write_synthetic_bag

W, H, FRAMES = 320, 240, 24


def read_export(out: Path) -> dict[str, np.ndarray]:
    with h5py.File(out / "export" / "dataset.h5") as f:
        g = f["episode_0"]
        return {k: g[k][()] for k in ("depth", "color", "timestamps_ns")}


@pytest.fixture(scope="module")
def mcap_bag(tmp_path_factory):
    root = tmp_path_factory.mktemp("review")
    bag = root / "bag"
    write_synthetic_bag(bag, frames=FRAMES, width=W, height=H)
    assert main(["export", "--quiet", str(bag), "--out", str(root / "intact")]) == 0
    return next(bag.glob("*.mcap")), read_export(root / "intact")


def chunk_offsets(path: Path) -> list[tuple[int, int]]:
    with path.open("rb") as f:
        return sorted((c.chunk_start_offset, c.chunk_length) for c in make_reader(f).get_summary().chunk_indexes)


def summary_start(path: Path) -> int:
    data = path.read_bytes()
    footer = len(data) - 8 - (1 + 8 + 8 + 8 + 4)  # magic at the end; Footer: opcode, length, 2 offsets, crc
    assert data[footer] == 0x02
    return int(struct.unpack_from("<Q", data, footer + 9)[0])


def depth_stamps_before(path: Path, end: int) -> set[int]:
    """Header stamps of the depth messages in chunks that end before byte `end` (from the intact file)."""
    stamps = set()
    with path.open("rb") as f:
        summary = make_reader(f).get_summary()
        depth_ids = {c.id for c in summary.channels.values() if c.topic == DEFAULT_TOPICS["depth"]}
        for start, length in chunk_offsets(path):
            if start + length > end:
                break
            f.seek(start)
            chunk = next(StreamReader(io.BytesIO(f.read(length)), skip_magic=True, emit_chunks=True).records)
            for rec in breakup_chunk(chunk):
                if isinstance(rec, Message) and rec.channel_id in depth_ids:
                    sec, nsec = struct.unpack_from("<iI", rec.data, 4)
                    stamps.add(sec * 10**9 + nsec)
    return stamps


def copy_bag(src: Path, dest: Path, data: bytes) -> Path:
    dest.mkdir()
    shutil.copy(src.parent / "metadata.yaml", dest)
    (dest / src.name).write_bytes(data)
    return dest


def run_cli(capsys, argv: list[str]) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(argv)
    return rc, capsys.readouterr().err


# --- A: small cuts are truncations, never tracebacks -------------------------------------------------


CUTS = [
    "1 byte short",
    "8 bytes",
    "20 bytes",
    "first chunk header",
    "third chunk length",
    "summary start",
    "inside the summary",
]


@pytest.mark.parametrize("where", CUTS)
def test_small_cuts_are_reported_not_raised(mcap_bag, tmp_path, capsys, caplog, where):
    src, intact = mcap_bag
    data = src.read_bytes()
    chunks = chunk_offsets(src)
    cut = {
        "1 byte short": len(data) - 1,
        "8 bytes": 8,
        "20 bytes": 20,
        "first chunk header": chunks[0][0] + 12,  # inside message_start_time
        "third chunk length": chunks[2][0] + 4,  # inside the record length after the opcode
        "summary start": summary_start(src),  # DataEnd is the last record before it
        "inside the summary": summary_start(src) + 5,
    }[where]
    bag = copy_bag(src, tmp_path / "bag", data[:cut])
    before = hashlib.sha256(data[:cut]).hexdigest()
    survivors = depth_stamps_before(src, cut)
    strict, err = run_cli(capsys, ["export", "--quiet", str(bag), "--out", str(tmp_path / "strict")])
    partial, err_p = run_cli(capsys, ["export", "--quiet", str(bag), "--out", str(tmp_path / "p"), "--allow-partial"])
    assert "Traceback" not in err + err_p
    if where in ("1 byte short", "summary start", "inside the summary"):  # every message is there: nothing to allow
        assert strict == partial == 0, err
        assert "summary missing or cut, data section complete: no message lost" in caplog.text
        got = read_export(tmp_path / "strict")
        for key in got:
            assert np.array_equal(got[key], intact[key]), key
    elif not survivors:  # nothing before the cut: one line naming the file and the offset, exit 2
        damaged_at = 8 if cut < chunks[0][0] else chunks[0][0]
        for rc, text in ((strict, err), (partial, err_p)):
            lines = text.strip().splitlines()
            assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), text
            assert f"{bag / src.name} at byte {damaged_at}: cut short" in lines[0]
    else:
        assert strict == 2 and partial == 0, err + err_p
        assert f"bag {bag}: truncated after " in err and f"{bag / src.name} at byte {chunks[2][0]}: cut short" in err
        got = read_export(tmp_path / "p")
        n = len(got["timestamps_ns"])
        assert set(got["timestamps_ns"].tolist()) == survivors and n == len(survivors)
        for key in got:
            assert np.array_equal(got[key], intact[key][:n]), key
    assert main(["reindex", str(bag)]) == 0  # a fresh metadata.yaml and a readable copy, no traceback
    assert hashlib.sha256((bag / src.name).read_bytes()).hexdigest() == before
    with (bag / (src.stem + ".recovered.mcap")).open("rb") as f:
        assert make_reader(f).get_summary() is not None


# --- D: with --allow-partial, the cause is named -------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite_bag(tmp_path_factory):
    bag = tmp_path_factory.mktemp("review_sqlite") / "bag"
    write_synthetic_bag(bag, frames=FRAMES, width=W, height=H, storage="sqlite3")
    return next(bag.glob("*.db3"))


@pytest.mark.parametrize("damage", ["cut to 50 bytes", "page 4 zeroed"])
def test_allow_partial_names_the_cause_when_nothing_is_read(sqlite_bag, tmp_path, capsys, damage):
    data = bytearray(sqlite_bag.read_bytes())
    page = struct.unpack(">H", data[16:18])[0]
    if damage == "cut to 50 bytes":
        data = data[:50]
    else:
        data[3 * page : 4 * page] = bytes(page)  # page 4 (pages count from 1)
    bag = copy_bag(sqlite_bag, tmp_path / "bag", bytes(data))
    rc, err = run_cli(capsys, ["export", "--quiet", str(bag), "--out", str(tmp_path / "p"), "--allow-partial"])
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: no frames were exported"), err
    assert f"{bag / sqlite_bag.name}: " in lines[0]  # the file and its problem, not only "no frames"


# --- B: a reserved, undefined opcode is damage, not a record to skip -----------------------------------


def test_flipped_chunk_opcode_stops_the_read(mcap_bag, tmp_path, capsys):
    src, intact = mcap_bag
    data = bytearray(src.read_bytes())
    chunks = chunk_offsets(src)
    start = chunks[3][0]
    assert data[start] == 0x06  # a Chunk record
    data[start] = 0x16  # reserved by the mcap format, undefined: the mcap library skips it as unknown
    bag = copy_bag(src, tmp_path / "bag", bytes(data))
    rc, err = run_cli(capsys, ["export", "--quiet", str(bag), "--out", str(tmp_path / "s")])
    assert rc == 2 and f"{bag / src.name} at byte {start}: unreadable record (record opcode 0x16" in err, err
    assert main(["export", "--quiet", str(bag), "--out", str(tmp_path / "p"), "--allow-partial"]) == 0
    got = read_export(tmp_path / "p")
    survivors = depth_stamps_before(src, start)
    assert set(got["timestamps_ns"].tolist()) == survivors  # nothing after the damaged record
    for key in got:
        assert np.array_equal(got[key], intact[key][: len(survivors)]), key


def test_flipped_message_opcode_in_an_unchunked_file(tmp_path, capsys):
    """An unchunked mcap (no CRC anywhere): a Message record with a flipped opcode is not skipped."""
    from mcap.writer import Writer

    path = tmp_path / "bag" / "plain.mcap"
    path.parent.mkdir()
    with path.open("wb") as f:
        w = Writer(f, use_chunking=False)
        w.start(profile="ros2", library="test")
        ch = w.register_channel("/x", "cdr", 0)
        for i in range(10):
            w.add_message(ch, log_time=i * 1000, data=bytes([i + 1]) * 64, publish_time=i * 1000)
        w.finish()
    data = bytearray(path.read_bytes())
    # spec: opcode, length (8), channel id (2), sequence (4), log and publish time (8 each), then data
    offsets = [data.index(bytes([i + 1]) * 64) - 31 for i in range(10)]
    assert all(data[o] == 0x05 for o in offsets)  # Message records where the writer put them
    data[offsets[6]] = 0x45
    path.write_bytes(bytes(data))
    from depth_annotation.dataset import BagTruncatedError, bag_io

    got = []
    with bag_io.open_bag(path.parent) as reader, pytest.raises(BagTruncatedError) as exc:
        for m in reader.raw_messages(["/x"]):
            got.append(m.time_ns)
    assert got == [i * 1000 for i in range(6)]
    assert f"{path} at byte {offsets[6]}: unreadable record (record opcode 0x45" in str(exc.value)


# --- F, G: reindex keeps the original metadata and the compression -------------------------------------


def test_reindex_twice_keeps_the_original_metadata(mcap_bag, tmp_path):
    src, _ = mcap_bag
    bag = copy_bag(src, tmp_path / "bag", src.read_bytes())
    original = (bag / "metadata.yaml").read_bytes()
    assert main(["reindex", str(bag)]) == 0
    assert (bag / "metadata.yaml.bak").read_bytes() == original
    assert main(["reindex", str(bag)]) == 0
    assert (bag / "metadata.yaml.bak").read_bytes() == original  # not the first reindex's output


def write_rosbags_bag(path: Path, source: Path, mode, storage) -> None:
    """The messages of `source` written again by rosbags' Writer (another writer than ours)."""
    from rosbags.rosbag2 import CompressionFormat, StoragePlugin, Writer

    from depth_annotation.dataset import bag_io

    with bag_io.open_bag(source) as reader:
        msgs = list(reader.raw_messages(list(reader.topics)))
        topics = reader.topics
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    w = Writer(path, version=8, storage_plugin=plugin)
    if mode is not None:
        w.set_compression(mode, CompressionFormat.ZSTD)
    with w:
        conns = {t: w.add_connection(t, info.msgtype, typestore=bag_io.TYPESTORE) for t, info in topics.items()}
        for m in msgs:
            w.write(conns[m.topic], m.time_ns, bytes(m.data))


@pytest.mark.parametrize("metadata", ["kept", "absent"])
def test_reindex_keeps_per_message_compression(mcap_bag, tmp_path, caplog, metadata):
    from rosbags.rosbag2 import CompressionMode

    src, intact = mcap_bag
    bag = tmp_path / "msgzstd"
    write_rosbags_bag(bag, src.parent, CompressionMode.MESSAGE, "mcap")
    storage = next(bag.glob("*.mcap"))
    before = hashlib.sha256(storage.read_bytes()).hexdigest()
    if metadata == "absent":
        (bag / "metadata.yaml").unlink()
    assert main(["reindex", str(bag)]) == 0
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert (info["compression_format"], info["compression_mode"]) == ("zstd", "message")
    if metadata == "absent":
        assert "messages are zstd-compressed (a zstd frame starts each): compression_mode message" in caplog.text
    assert hashlib.sha256(storage.read_bytes()).hexdigest() == before
    assert main(["export", "--quiet", str(bag), "--out", str(tmp_path / "o")]) == 0
    got = read_export(tmp_path / "o")
    for key in got:
        assert np.array_equal(got[key], intact[key]), key


# --- H: a sqlite3 bag whose writer was killed mid-write ------------------------------------------------

KILLED_WRITER = """
import sys, time
from depth_annotation.common import SyntheticScene, default_intrinsics, orbit_pose
from depth_annotation.dataset import DEFAULT_TOPICS, bag_io
intr, scene = default_intrinsics(320, 240), SyntheticScene(3)
with bag_io.BagWriter(sys.argv[1], storage="sqlite3") as w:
    w.add_topic(DEFAULT_TOPICS["color"], "sensor_msgs/msg/Image")
    w.add_topic(DEFAULT_TOPICS["depth"], "sensor_msgs/msg/Image")
    w.add_topic(DEFAULT_TOPICS["info"], "sensor_msgs/msg/CameraInfo")
    for i in range(40):
        fr = scene.render(intr, orbit_pose(i / 30), frame_seed=i)
        s = 1_700_000_000_000_000_000 + i * 50_000_000
        w.write(DEFAULT_TOPICS["color"], s + 1, bag_io.image(fr.color, "rgb8", s, "c"))
        w.write(DEFAULT_TOPICS["depth"], s + 2, bag_io.image(fr.depth_mm, "16UC1", s, "c"))
        w.write(DEFAULT_TOPICS["info"], s + 3, bag_io.camera_info(intr, s, "c"))
        print(i, flush=True)
        time.sleep(0.06)
"""


def kill_writer_at_frame(script: str, bag: Path, frame: int) -> Path:
    """Run a bag-writing script and SIGKILL it once it has written `frame`; returns the .db3 file."""
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", script, str(bag)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # past the first commit (every second), before the end
        if int(line) >= frame:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return next(bag.glob("*.db3"))


def committed_depth_rows(db: Path, log: Path, ref: Path) -> int:
    """The known answer, from SQLite itself on a copy of our own (db and its log): the committed
    depth messages."""
    import sqlite3

    ref.mkdir()
    shutil.copy(db, ref / db.name)
    shutil.copy(log, ref / log.name)
    with sqlite3.connect(ref / db.name) as con:
        return int(
            con.execute(
                "SELECT COUNT(*) FROM messages JOIN topics ON topics.id = topic_id WHERE topics.name = ?",
                (DEFAULT_TOPICS["depth"],),
            ).fetchone()[0]
        )


def assert_rendered_frames(got: dict[str, np.ndarray], n: int) -> None:
    """The first n frames are bit-identical to what KILLED_WRITER rendered."""
    from depth_annotation.common import SyntheticScene, default_intrinsics, orbit_pose

    intr, scene = default_intrinsics(W, H), SyntheticScene(3)
    for i in range(n):
        fr = scene.render(intr, orbit_pose(i / 30), frame_seed=i)
        assert np.array_equal(got["depth"][i], fr.depth_mm) and np.array_equal(got["color"][i], fr.color), i


def test_sqlite3_bag_killed_mid_write_exports_the_committed_frames(tmp_path, capsys):
    bag = tmp_path / "killed"
    db = kill_writer_at_frame(KILLED_WRITER, bag, 28)
    journal = db.with_name(db.name + "-journal")
    assert journal.stat().st_size > 0  # a hot journal: the kill came inside a transaction
    hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in bag.iterdir()}
    committed = committed_depth_rows(db, journal, tmp_path / "ref")
    assert 0 < committed < 40

    rc, err = run_cli(capsys, ["export", "--quiet", str(bag), "--out", str(tmp_path / "s")])
    assert rc == 2 and f"{db}: killed mid-write: its uncommitted transaction (hot journal" in err, err
    rc, err = run_cli(capsys, ["export", "--quiet", str(bag), "--out", str(tmp_path / "p"), "--allow-partial"])
    assert rc == 0, err
    got = read_export(tmp_path / "p")
    assert len(got["timestamps_ns"]) == committed
    assert_rendered_frames(got, committed)
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in bag.iterdir()} == hashes
    rc, err = run_cli(capsys, ["reindex", str(bag)])  # counts the committed rows, on a copy too
    assert rc == 0, err
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    counts = {t["topic_metadata"]["name"]: t["message_count"] for t in info["topics_with_message_count"]}
    assert counts[DEFAULT_TOPICS["depth"]] == committed
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (db, journal)} == {
        p.name: hashes[p.name] for p in (db, journal)
    }


# A WAL-mode writer (rosbag2's `resilient` storage preset) killed before its checkpoint: the committed
# rows are in the -wal, which an immutable read (rosbags') does not see.
KILLED_WAL_WRITER = KILLED_WRITER.replace(
    """    w.add_topic(DEFAULT_TOPICS["color"], "sensor_msgs/msg/Image")""",
    """    con = w._rosbags.storage.conn
    con.commit()
    assert con.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    con.execute("PRAGMA wal_autocheckpoint=0")  # as if killed before any checkpoint
    w.add_topic(DEFAULT_TOPICS["color"], "sensor_msgs/msg/Image")""",
)


@pytest.mark.parametrize("stale_journal", [False, True], ids=["wal", "wal_and_stale_journal"])
def test_sqlite3_wal_bag_killed_before_its_checkpoint_exports_every_committed_frame(tmp_path, capsys, stale_journal):
    import sqlite3

    assert KILLED_WAL_WRITER != KILLED_WRITER
    bag = tmp_path / "killed_wal"
    db = kill_writer_at_frame(KILLED_WAL_WRITER, bag, 28)
    wal = db.with_name(db.name + "-wal")
    assert wal.stat().st_size > 0 and not db.with_name(db.name + "-journal").exists()
    if stale_journal:  # left from before the writer switched to WAL: taken for the pending log, the WAL too
        db.with_name(db.name + "-journal").write_bytes(bytes(512))
    names = sorted(p.name for p in bag.iterdir())
    hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in bag.iterdir()}
    committed = committed_depth_rows(db, wal, tmp_path / "ref")  # most of them in the WAL
    with sqlite3.connect(f"{db.as_uri()}?immutable=1", uri=True) as con:
        in_main_file = con.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    assert 0 < committed < 40 and in_main_file < 3 * committed  # the WAL holds rows the file does not

    rc, err = run_cli(capsys, ["export", "--quiet", str(bag), "--out", str(tmp_path / "p"), "--allow-partial"])
    assert rc == 0, err
    got = read_export(tmp_path / "p")
    assert len(got["timestamps_ns"]) == committed
    assert_rendered_frames(got, committed)
    if not stale_journal:
        assert "killed mid-write" not in err  # a WAL loses no committed row: no rollback to report
    rc, err = run_cli(capsys, ["reindex", str(bag)])
    assert rc == 0, err
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    counts = {t["topic_metadata"]["name"]: t["message_count"] for t in info["topics_with_message_count"]}
    assert counts[DEFAULT_TOPICS["depth"]] == committed
    # the originals untouched, and nothing (no -shm, no checkpoint) written beside them but metadata.yaml
    assert sorted(p.name for p in bag.iterdir()) == sorted([*names, "metadata.yaml"])
    assert {n: hashlib.sha256((bag / n).read_bytes()).hexdigest() for n in names} == hashes


# --- C: a sqlite3 file cut inside a row's last overflow page ------------------------------------------


def test_sqlite3_cut_inside_a_rows_last_page_drops_that_row(sqlite_bag, tmp_path, capsys):
    import sqlite3

    assert main(["export", "--quiet", str(sqlite_bag.parent), "--out", str(tmp_path / "intact")]) == 0
    intact = read_export(tmp_path / "intact")
    data = sqlite_bag.read_bytes()
    with sqlite3.connect(f"{sqlite_bag.as_uri()}?mode=ro", uri=True) as con:
        depth = con.execute(
            "SELECT messages.id, data FROM messages JOIN topics ON topics.id = topic_id WHERE topics.name = ? "
            "ORDER BY messages.id",
            (DEFAULT_TOPICS["depth"],),
        ).fetchall()
    bag = tmp_path / "bag"
    for rowid, payload in depth[len(depth) // 3 :]:
        # A cut inside the row's last overflow page (the end of its data), 16 bytes of the data past the
        # end. Whether SQLite then reads the row at all depends on where its b-tree leaf page lies: the
        # row used is the first one that SQLite returns with a zero-filled tail and no error.
        tail = bytes(payload[-32:])
        assert data.count(tail) == 1
        cut = data.index(tail) + 16
        shutil.rmtree(bag, ignore_errors=True)
        copy_bag(sqlite_bag, bag, data[:cut])
        with sqlite3.connect(f"{(bag / sqlite_bag.name).as_uri()}?mode=ro", uri=True) as con:
            con.execute("PRAGMA writable_schema = ON")  # what the recovering reader needs to open a cut file
            try:
                naive = con.execute("SELECT data FROM messages WHERE id = ?", (rowid,)).fetchone()[0]
            except sqlite3.DatabaseError:
                continue
        assert naive != payload and naive[:-16] == payload[:-16] and not any(naive[-16:])
        break
    else:
        pytest.fail("no cut gives a zero-filled row")

    rc, err = run_cli(capsys, ["export", "--quiet", str(bag), "--out", str(tmp_path / "s")])
    assert rc == 2 and f"the data of message {rowid} reaches past the end of the file" in err, err
    assert main(["export", "--quiet", str(bag), "--out", str(tmp_path / "p"), "--allow-partial"]) == 0
    got = read_export(tmp_path / "p")
    n = len(got["timestamps_ns"])
    assert 0 < n < len(intact["timestamps_ns"])
    for key in got:  # every exported frame bit-identical to the intact export's
        assert np.array_equal(got[key], intact[key][:n]), key


# --- E: a whole-file zstd bag cut short ----------------------------------------------------------------


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_cut_file_compressed_bag_exports_what_decompresses(mcap_bag, tmp_path, capsys, storage):
    from rosbags.rosbag2 import CompressionMode

    src, intact = mcap_bag
    bag = tmp_path / "filezstd"
    write_rosbags_bag(bag, src.parent, CompressionMode.FILE, storage)
    packed = next(bag.glob("*.zstd"))
    assert main(["export", "--quiet", str(bag), "--out", str(tmp_path / "whole")]) == 0  # intact: every frame
    got = read_export(tmp_path / "whole")
    for key in got:
        assert np.array_equal(got[key], intact[key]), key

    data = packed.read_bytes()
    for cut, name in ((len(data) // 2, "half"), (10, "head")):
        packed.write_bytes(data[:cut])
        rc, err = run_cli(capsys, ["export", "--quiet", str(bag), "--out", str(tmp_path / f"s{name}")])
        rc_p, err_p = run_cli(capsys, ["export", "--quiet", str(bag), "--out", str(tmp_path / name), "--allow-partial"])
        assert "Traceback" not in err + err_p
        if name == "head":  # nothing decompresses: one line, exit 2
            lines = err_p.strip().splitlines()
            assert rc == rc_p == 2 and len(lines) == 1, err_p
            assert f"{packed}: zstd-compressed file cut short: nothing usable" in lines[0]
            continue
        assert rc == 2 and f"{packed}: zstd-compressed file cut short: " in err, err
        assert rc_p == 0, err_p
        got = read_export(tmp_path / name)
        n = len(got["timestamps_ns"])
        assert 0 < n < len(intact["timestamps_ns"])
        for key in got:
            assert np.array_equal(got[key], intact[key][:n]), key


def test_sqlite3_cuts_never_raise_and_never_invent_bytes(sqlite_bag, tmp_path):
    """Cuts across the file: every message read is one of the intact file's, and a cut ends the read
    with BagTruncatedError or BagError (one line), never another exception."""
    from depth_annotation.dataset import BagError, bag_io

    with bag_io.open_bag(sqlite_bag.parent) as reader:
        intact = {(m.topic, m.time_ns, bytes(m.data)) for m in reader.raw_messages(list(reader.topics))}
    data = sqlite_bag.read_bytes()
    for cut in [*range(100_000, 420_000, 9_973), *range(len(data) // 2, len(data), len(data) // 17)]:
        bag = tmp_path / str(cut)
        copy_bag(sqlite_bag, bag, data[:cut])
        got = []
        with pytest.raises(BagError):  # BagTruncatedError is one
            with bag_io.open_bag(bag) as reader:
                got.extend((m.topic, m.time_ns, bytes(m.data)) for m in reader.raw_messages(list(reader.topics)))
        assert set(got) <= intact, cut
        shutil.rmtree(bag)


def test_mcap_cuts_never_raise_and_never_invent_bytes(mcap_bag, tmp_path):
    from depth_annotation.dataset import BagError, bag_io

    src, _ = mcap_bag
    with bag_io.open_bag(src.parent) as reader:
        intact = [(m.topic, m.time_ns, bytes(m.data)) for m in reader.raw_messages(list(reader.topics))]
    data = src.read_bytes()
    chunks = chunk_offsets(src)
    edges = [o + d for o, _ in chunks for d in (0, 1, 9, 17, 40)]  # at and inside each chunk's header fields
    for cut in [8, 9, 16, 17, 30, *edges, *range(1, len(data), len(data) // 23), len(data) - 1]:
        bag = tmp_path / str(cut)
        copy_bag(src, bag, data[:cut])
        got = []
        try:
            with bag_io.open_bag(bag) as reader:
                got.extend((m.topic, m.time_ns, bytes(m.data)) for m in reader.raw_messages(list(reader.topics)))
        except BagError:  # BagTruncatedError is one
            pass
        assert got == intact[: len(got)], cut  # a prefix of the intact messages, byte for byte
        shutil.rmtree(bag)


def test_reading_a_wal_mode_sqlite3_bag_writes_nothing_beside_it(tmp_path):
    """rosbag2 writes its sqlite3 files in WAL mode; a read-only open without `immutable` creates
    `-wal`/`-shm` files next to the bag (seen in the shared test data), which a reader must never do."""
    import sqlite3

    from depth_annotation.dataset import bag_io

    bag = tmp_path / "wal_bag"
    write_synthetic_bag(bag, frames=3, width=32, height=24, storage="sqlite3")
    (db,) = bag.glob("*.db3")
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    con.close()  # checkpointed: the -wal and -shm files are gone, the header says WAL
    assert db.read_bytes()[18:20] == b"\x02\x02"
    before = sorted(p.name for p in bag.iterdir())
    with bag_io.open_bag(bag) as reader:
        assert sum(1 for _ in reader.raw_messages([DEFAULT_TOPICS["depth"]])) == 3
    assert bag_io.sqlite_topic_counts(db)[DEFAULT_TOPICS["depth"]] == 3
    assert sorted(p.name for p in bag.iterdir()) == before
