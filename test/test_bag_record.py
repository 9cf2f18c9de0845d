"""Bag writing (`dataset/bag_writer.py`) and `depth-annotation record` / `play` between real processes.

Known answers come from outside the code under test: rosbag2's own sources (metadata.yaml
schema per version, transcribed below with file and branch), rosidl's generated type
descriptions in the installed message packages (RIHS01 hashes), zlib's CRC-32 (chunk CRCs),
and a publisher process that logs every frame it sent (SIGKILL loss).
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from mcap.records import Chunk, Message
from mcap.stream_reader import StreamReader
from ros_harness import REPO, VENV_BIN, NodeProcess, stock_environment, wait_until
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader as RosbagsReader

from depth_annotation.dataset import BagTruncatedError, BagWriter, bag_io

SHARE = Path(sys.prefix) / "share"
CHUNK_BYTES = 1024 * 1024  # the chunk size the README promises
IMAGE_BYTES = 640 * 480 * 3
FRAMES_PER_CHUNK = math.ceil(CHUNK_BYTES / IMAGE_BYTES)  # the writer closes a chunk once it holds CHUNK_BYTES


def _qos(reliability: QosReliability) -> Qos:
    zero = QosTime(0, 0)
    return Qos(
        QosHistory.KEEP_LAST, 5, reliability, QosDurability.VOLATILE, zero, zero, QosLiveliness.AUTOMATIC, zero, False
    )


def _small_bag(path: Path, *, storage: str = "mcap", distro: str = "kilted", n: int = 5) -> None:
    t = bag_io.TYPESTORE.types
    with BagWriter(path, storage=storage, distro=distro) as w:
        w.add_topic("/img", "sensor_msgs/msg/Image", qos=[_qos(QosReliability.BEST_EFFORT)])
        w.add_topic("/chatter", "std_msgs/msg/String", qos=[_qos(QosReliability.RELIABLE)])
        for i in range(n):
            w.write("/img", 1_000 + i, bag_io.image(np.full((3, 4), i, np.uint8), "mono8", 1_000 + i, "cam"))
            w.write("/chatter", 1_000 + i, t["std_msgs/msg/String"](data=f"hello {i}"))


# --- mcap contents ---------------------------------------------------------------------------------


def _type_hash_from_rosidl(msgtype: str) -> str:
    """The RIHS01 hash rosidl generated into the installed package's type description JSON."""
    pkg, _, name = msgtype.split("/")
    desc = json.loads((SHARE / pkg / "msg" / f"{name}.json").read_text())
    hashes = {h["type_name"]: h["hash_string"] for h in desc["type_hashes"]}
    return hashes[msgtype]


def test_mcap_has_chunk_crcs_full_definitions_qos_and_type_hashes(tmp_path):
    bag = tmp_path / "bag"
    _small_bag(bag)
    file = bag / "bag_0.mcap"
    with open(file, "rb") as f:
        chunks = [r for r in StreamReader(f, emit_chunks=True).records if isinstance(r, Chunk)]
    assert chunks
    for c in chunks:
        assert c.compression == ""
        assert c.uncompressed_crc != 0 and c.uncompressed_crc == zlib.crc32(c.data)
    with open(file, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert reader.get_header().profile == "ros2"
    assert summary is not None
    schemas = {s.name: s for s in summary.schemas.values()}
    assert {s.encoding for s in schemas.values()} == {"ros2msg"}
    image_def = schemas["sensor_msgs/msg/Image"].data.decode()
    # rosbag2's concatenated format: the type, then each dependency under a separator and "MSG: pkg/Name"
    assert image_def.startswith("std_msgs/Header header\n")
    assert "\n" + "=" * 80 + "\nMSG: std_msgs/Header\n" in image_def
    assert "\nMSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec" in image_def
    channels = {c.topic: c for c in summary.channels.values()}
    for topic, msgtype, reliability in (
        ("/img", "sensor_msgs/msg/Image", "best_effort"),
        ("/chatter", "std_msgs/msg/String", "reliable"),
    ):
        meta = channels[topic].metadata
        assert channels[topic].message_encoding == "cdr"
        assert meta["topic_type_hash"] == _type_hash_from_rosidl(msgtype)
        offered = yaml.safe_load(meta["offered_qos_profiles"])  # version 9: names, as Jazzy's rosbag2
        assert offered[0]["reliability"] == reliability and offered[0]["depth"] == 5
        assert offered[0]["history"] == "keep_last" and offered[0]["durability"] == "volatile"


def test_a_corrupted_byte_inside_a_chunk_is_detected(tmp_path):
    bag = tmp_path / "bag"
    _small_bag(bag)
    file = bag / "bag_0.mcap"
    data = bytearray(file.read_bytes())
    where = data.index(b"hello 3")
    data[where + 6] ^= 0xFF
    file.write_bytes(bytes(data))
    with open(file, "rb") as f, pytest.raises(Exception, match=r"(?i)crc"):
        list(StreamReader(f, validate_crcs=True).records)


# --- metadata.yaml per distro ------------------------------------------------------------------------

# rosbag2's metadata.yaml schema per version, transcribed from its sources:
#  v5: ros2/rosbag2 branch humble, rosbag2_storage/src/rosbag2_storage/metadata_io.cpp
#      (convert<BagMetadata>::encode; TopicMetadata encodes offered_qos_profiles as the string
#      rosbag2_transport/src/rosbag2_transport/qos.cpp dumps: integer policies)
#  v9: ros2/rosbag2 branch jazzy, rosbag2_storage/include/rosbag2_storage/yaml.hpp (encode;
#      TopicMetadata adds type_description_hash from v7, QoS as a list with policy names from v9,
#      rosbag2_storage/src/rosbag2_storage/qos.cpp), custom_data (v6+), ros_distro (v8+).
#      rolling's bag_metadata.hpp also says `int version = 9` (Kilted branched from it).
TOP_V5 = [
    "version",
    "storage_identifier",
    "duration",
    "starting_time",
    "message_count",
    "topics_with_message_count",
    "compression_format",
    "compression_mode",
    "relative_file_paths",
    "files",
]
TOP_V9 = [*TOP_V5, "custom_data", "ros_distro"]
TOPIC_V5 = ["name", "type", "serialization_format", "offered_qos_profiles"]
TOPIC_V9 = [*TOPIC_V5, "type_description_hash"]
QOS_KEYS = [
    "history",
    "depth",
    "reliability",
    "durability",
    "deadline",
    "lifespan",
    "liveliness",
    "liveliness_lease_duration",
    "avoid_ros_namespace_conventions",
]
FILE_KEYS = ["path", "starting_time", "duration", "message_count"]


@pytest.mark.parametrize(
    ("distro", "storage"), [("humble", "mcap"), ("jazzy", "mcap"), ("kilted", "mcap"), ("humble", "sqlite3")]
)
def test_metadata_yaml_matches_rosbag2s_schema_for_the_distro_and_rosbags_reads_it(tmp_path, distro, storage):
    expected_version = {"humble": 5, "jazzy": 9, "kilted": 9}[distro]
    bag = tmp_path / f"bag_{distro}"
    _small_bag(bag, storage=storage, distro=distro, n=5)
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert list(info) == (TOP_V5 if expected_version == 5 else TOP_V9)
    assert info["version"] == expected_version
    assert info["storage_identifier"] == storage
    assert info["message_count"] == 10
    assert info["starting_time"] == {"nanoseconds_since_epoch": 1_000}
    assert info["duration"] == {"nanoseconds": 4}
    assert info["compression_format"] == "" and info["compression_mode"] == ""
    file = next(p.name for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))
    assert info["relative_file_paths"] == [file]
    assert [list(f) for f in info["files"]] == [FILE_KEYS]
    assert info["files"][0]["message_count"] == 10 and info["files"][0]["path"] == file
    if expected_version >= 9:
        assert info["ros_distro"] == distro and info["custom_data"] == {}
    for entry in info["topics_with_message_count"]:
        assert list(entry) == ["topic_metadata", "message_count"] and entry["message_count"] == 5
        tm = entry["topic_metadata"]
        assert list(tm) == (TOPIC_V5 if expected_version == 5 else TOPIC_V9)
        assert tm["serialization_format"] == "cdr"
        offered = tm["offered_qos_profiles"]
        if expected_version == 5:
            assert isinstance(offered, str)  # Humble decodes it with .as<std::string>()
            offered = yaml.safe_load(offered)
            assert isinstance(offered[0]["reliability"], int) and offered[0]["history"] == 1  # KEEP_LAST
        else:
            assert isinstance(offered, list) and offered[0]["history"] == "keep_last"
            assert tm["type_description_hash"] == _type_hash_from_rosidl(tm["type"])
        assert list(offered[0]) == QOS_KEYS
    with RosbagsReader(bag) as r:
        assert r.message_count == 10
        got = [(c.topic, t) for c, t, _ in r.messages()]
    assert len(got) == 10 and {t for _, t in got} == {1000, 1001, 1002, 1003, 1004}
    with bag_io.open_bag(bag) as r:
        assert sum(1 for _ in r.raw_messages(["/img", "/chatter"])) == 10


def test_sqlite3_commits_while_recording(tmp_path):
    bag = tmp_path / "bag"
    t = bag_io.TYPESTORE.types
    with BagWriter(bag, storage="sqlite3") as w:
        w.add_topic("/chatter", "std_msgs/msg/String")
        for i in range(3):
            w.write("/chatter", i, t["std_msgs/msg/String"](data=str(i)))
        time.sleep(1.1)
        w.write("/chatter", 3, t["std_msgs/msg/String"](data="3"))
        # another connection (what is on disk if the process died now) sees every message so far
        with sqlite3.connect(bag / "bag.db3") as other:
            assert other.execute("SELECT COUNT(*) FROM messages").fetchone() == (4,)


# --- record between processes ------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = stock_environment()
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _start(procs, cmd: list[str], name: str) -> NodeProcess:
    procs.log_dir.mkdir(parents=True, exist_ok=True)
    log = procs.log_dir / f"{name}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=_env(), cwd=REPO)
    return procs._track(NodeProcess(name, proc, log), False)


def _publisher(procs, hz: float, count: int, width: int = 640, height: int = 480) -> NodeProcess:
    script = REPO / "test" / "helpers" / "frame_publisher.py"
    return _start(procs, [sys.executable, str(script), "/frames", str(width), str(height), str(hz), str(count)], "pub")


def _record(procs, out: Path, duration: float, *extra: str) -> NodeProcess:
    cmd = [str(VENV_BIN / "depth-annotation"), "record", "/frames", "--out", str(out), "--duration", str(duration)]
    return _start(procs, [*cmd, *extra], "record")


def _sent(pub: NodeProcess) -> dict[int, float]:
    out = {}
    for line in pub.output().splitlines():
        if line.startswith("sent "):
            _, n, t = line.split()
            out[int(n)] = float(t)
    return out


def _frames_in_cut_mcap(file: Path) -> list[int]:
    """Frame numbers of every message in intact chunks, read without the summary (mcap's non-seeking reader)."""
    frames = []
    with open(file, "rb") as f:
        try:
            for rec in StreamReader(f, validate_crcs=True).records:
                if isinstance(rec, Message):
                    msg = bag_io.TYPESTORE.deserialize_cdr(rec.data, "sensor_msgs/msg/Image")
                    frames.append(int(msg.header.frame_id))
        except Exception:  # the cut: a record that ends early
            pass
    return frames


@pytest.mark.parametrize("sig, rc", [(signal.SIGINT, 0), (signal.SIGTERM, 143)])
def test_record_finishes_the_bag_on_sigint_and_sigterm(procs, tmp_path, sig, rc):
    out = tmp_path / "rec"
    pub = _publisher(procs, hz=20, count=2000, width=32, height=24)
    rec = _record(procs, out, 60)
    assert wait_until(lambda: "recording 1 topics" in rec.output(), 40), rec.output()
    assert wait_until(lambda: len(_sent(pub)) > 20, 30), pub.output()
    rec.proc.send_signal(sig)
    assert rec.proc.wait(20) == rc, rec.output()  # Ctrl-C is a normal stop; SIGTERM says it was ended (as our nodes)
    text = rec.output()
    assert "Traceback" not in text and f"stopped by {signal.Signals(sig).name}: bag finished" in text
    n = int(text.split("recorded ")[1].split()[0])
    assert n > 10
    assert (out / "metadata.yaml").exists()
    with bag_io.open_bag(out) as r:
        assert sum(1 for _ in r.raw_messages(["/frames"])) == n


@pytest.mark.parametrize("duration", ["-1", "0", "nan", "inf"])
def test_record_rejects_a_bad_duration_before_creating_anything(tmp_path, duration):
    out = tmp_path / "rec"
    start = time.monotonic()
    res = subprocess.run(
        [str(VENV_BIN / "depth-annotation"), "record", "/frames", "--out", str(out), "--duration", duration],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "--duration must be a positive" in res.stderr
    assert not out.exists()
    assert time.monotonic() - start < 20  # no discovery wait


def test_record_into_a_read_only_place_is_one_line_and_exit_2(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], capture_output=True)
    place = ro if mounted.returncode == 0 else Path("/sys")  # sysfs refuses mkdir (EPERM) even to root
    try:
        res = subprocess.run(
            [str(VENV_BIN / "depth-annotation"), "record", "/frames", "--out", str(place / "rec"), "--duration", "5"],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(),
        )
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", str(ro)], check=False)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.startswith(f"error: cannot write the bag {place / 'rec'}")
    assert "Traceback" not in res.stderr


RECORDER_LAG_S = 2.0  # how far a loaded recorder may run behind the publisher
WRITE_SLACK_S = 0.5  # from receiving the message that fills a chunk to the chunk in the file (one callback)


class ChunkWatch:
    """Watches an mcap file grow: when each complete chunk record was first seen on disk.

    Reads only record headers (opcode, length) past what it has already seen, and of a Chunk
    its message_end_time: the recorder's receive time of the chunk's newest message (mcap spec)."""

    def __init__(self, bag: Path) -> None:
        self.bag, self.offset = bag, 8  # past the magic
        self.polls: list[float] = []  # time.time() at the start of each poll
        self.chunks: list[tuple[int, int]] = []  # (message_end_time ns, index of the poll that first saw it)

    def poll(self) -> None:
        self.polls.append(time.time())
        files = list(self.bag.glob("*.mcap"))
        if not files:
            return
        with open(files[0], "rb") as f:
            size = os.fstat(f.fileno()).st_size
            while True:
                f.seek(self.offset)
                head = f.read(9)
                if len(head) < 9 or self.offset + 9 + int.from_bytes(head[1:], "little") > size:
                    return  # the record being written
                if head[0] == 0x06:  # Chunk: message_start_time u64, message_end_time u64, ...
                    end_ns = int.from_bytes(f.read(16)[8:], "little")
                    self.chunks.append((end_ns, len(self.polls) - 1))
                self.offset += 9 + int.from_bytes(head[1:], "little")

    def late_chunks(self, slack_s: float) -> list[tuple[int, float]]:
        """Chunks still missing from the file at a poll that began more than `slack_s` after the recorder
        received their last message: (chunk index, seconds late). The chunks already there at the first poll
        have no such poll and are not judged."""
        late = []
        for i, (end_ns, seen) in enumerate(self.chunks):
            if seen > 0 and self.polls[seen - 1] - end_ns / 1e9 > slack_s:
                late.append((i, round(self.polls[seen - 1] - end_ns / 1e9, 3)))
        return late


def test_sigkill_during_record_loses_at_most_one_chunk(procs, tmp_path):
    out = tmp_path / "rec"
    hz = 5.0  # 4.6 MB/s: data held back in the recorder (a buffer of a few MB) stays there for a second or more
    pub = _publisher(procs, hz=hz, count=400)
    rec = _record(procs, out, 60)
    assert wait_until(lambda: "recording 1 topics" in rec.output(), 40), rec.output()
    assert wait_until(lambda: len(_sent(pub)) > 5, 30), pub.output()
    # seconds of chunks in, RECORDER_LAG_S of them too recent to count (seeded: the same run every time);
    # meanwhile every chunk must reach the file as soon as its last message was received, however far
    # the recorder runs behind the publisher: nothing is held back in the process for SIGKILL to take
    watch = ChunkWatch(out)
    end = time.monotonic() + random.Random(318).uniform(3.0, 6.0)
    while time.monotonic() < end:
        watch.poll()
        time.sleep(0.1)
    killed_at = time.time()
    os.kill(rec.proc.pid, signal.SIGKILL)
    rec.proc.wait(10)
    sent = _sent(pub)
    files = list(out.glob("*.mcap"))
    assert len(files) == 1 and not (out / "metadata.yaml").exists()
    got = _frames_in_cut_mcap(files[0])
    assert got, "nothing recoverable"
    assert got == sorted(got) and len(set(got)) == len(got)
    with open(files[0], "rb") as f:  # every chunk closed at CHUNK_BYTES: at most FRAMES_PER_CHUNK frames each
        sizes = []
        try:
            for r in StreamReader(f, emit_chunks=True).records:
                if isinstance(r, Chunk):
                    sizes.append(r.uncompressed_size)
        except Exception:  # the cut
            pass
    assert sizes and max(sizes) < FRAMES_PER_CHUNK * (IMAGE_BYTES + 1024), sizes
    # frames sent after the first recorded one and more than 2 s before the kill: delivered and written by
    # then even when the recorder runs behind the publisher on two busy cores
    expected = [n for n, t in sent.items() if n >= got[0] and t < killed_at - RECORDER_LAG_S]
    lost = sorted(set(expected) - set(got))
    print(f"SIGKILL: {len(got)} frames recovered, {len(lost)} lost ({lost}); chunk = {FRAMES_PER_CHUNK} frames")
    assert len(lost) <= FRAMES_PER_CHUNK, lost
    assert all(n in sent for n in got)
    assert len(watch.chunks) >= 3, watch.chunks  # chunks were written while watched (and judged below)
    worst = max((s for _, s in watch.late_chunks(0.0)), default=0.0)
    print(f"chunks watched: {len(watch.chunks)}, the latest written {worst:.3f} s after its last message")
    assert not watch.late_chunks(WRITE_SLACK_S), watch.late_chunks(WRITE_SLACK_S)
    # Our reader (what `export` and `play` use) reads the killed bag: no metadata.yaml, no summary;
    # it yields exactly the complete chunks' frames, then says the bag was cut.
    ours = []
    with pytest.raises(BagTruncatedError, match=r"truncated after \d+ messages"), bag_io.open_bag(out) as reader:
        for _, _, msg in bag_io.messages(reader, ["/frames"]):
            ours.append(int(msg.header.frame_id))
    assert ours == got


# --- play: /clock, --loop, --remap -----------------------------------------------------------------


def test_play_clock_loop_and_remap(ros, procs, tmp_path):
    from rclpy.qos import QoSProfile
    from rosgraph_msgs.msg import Clock
    from std_msgs.msg import String

    bag = tmp_path / "bag"
    t0 = 1_000 * 10**9
    with BagWriter(bag) as w:
        w.add_topic("/chatter", "std_msgs/msg/String", qos=[_qos(QosReliability.RELIABLE)])
        for i in range(6):
            w.write("/chatter", t0 + i * 200_000_000, bag_io.TYPESTORE.types["std_msgs/msg/String"](data=f"m{i}"))
    node = ros.node("play_observer")
    clock: list[int] = []
    renamed: list[str] = []
    original: list[str] = []
    node.create_subscription(Clock, "/clock", lambda m: clock.append(m.clock.sec * 10**9 + m.clock.nanosec), 100)
    node.create_subscription(String, "/renamed", lambda m: renamed.append(m.data), QoSProfile(depth=100))
    node.create_subscription(String, "/chatter", lambda m: original.append(m.data), QoSProfile(depth=100))
    play = _start(
        procs,
        [str(VENV_BIN / "depth-annotation"), "play", str(bag), "--clock", "20", "--loop"]
        + ["--remap", "/chatter:=/renamed"],
        "play",
    )
    assert ros.spin_until(lambda: renamed.count("m5") >= 2, 60), (renamed, play.output())
    play.proc.send_signal(signal.SIGINT)
    assert play.proc.wait(20) == 0, play.output()
    ros.spin_until(lambda: False, 0.3)
    first = renamed.index("m5")
    assert renamed[: first + 1] == [f"m{i}" for i in range(6)]  # whole bag, then again
    assert renamed[first + 1 : first + 7] == [f"m{i}" for i in range(6)]
    assert original == []  # remapped, not also on the old name
    # /clock carries the bag's time: within the bag's span, advancing, and back to the start on loop
    assert clock and all(t0 <= c <= t0 + 1_000_000_000 for c in clock)
    first_pass = clock[: next(i for i in range(1, len(clock)) if clock[i] < clock[i - 1])]
    assert first_pass == sorted(first_pass) and first_pass[-1] - first_pass[0] >= 900_000_000
    assert len(first_pass) >= 15  # 1 s of bag at 20 Hz (and one per message)
