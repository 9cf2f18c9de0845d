"""Every bag rosbag2 itself writes reads completely, plays and exports (or says why not).

The bags are rosbag2's own test resources in ../shared/data/rosbag2/ (see its README):
talker bags with metadata.yaml version 4 (QoS as a YAML string), cdr_test bags, and
split bags without metadata.yaml, each in mcap and sqlite3. Known answers come from
outside our reader: SQLite's own rows (stdlib sqlite3), metadata.yaml, and the fact
that rosbag2 wrote each mcap bag with the same messages as its sqlite3 twin.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import rosbags.rosbag2
import yaml
from ros_harness import REPO, VENV_BIN, NodeProcess, stock_environment, wait_until
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import CompressionFormat, CompressionMode, Writer

from depth_annotation.dataset import (
    DEFAULT_TOPICS,
    BagError,
    BagShortReadError,
    bag_io,
    bag_recovery,
    write_synthetic_bag,
)

BAGS = [
    "mcap_talker",
    "sqlite3_talker",
    "mcap_cdr_test",
    "sqlite3_cdr_test",
    "mcap_multiple_files",
    "sqlite3_multiple_files",
]
TWINS = ["talker", "cdr_test", "multiple_files"]
HELLO = [f"Hello, world! {i}" for i in range(10)]  # what rosbag2's talker published on /topic


def sqlite_rows(bag: Path) -> list[tuple[str, int, bytes]]:
    """(topic, time, CDR bytes) of every message, straight from SQLite, files in order, time-sorted."""
    rows: list[tuple[str, int, bytes]] = []
    for f in sorted(bag.glob("*.db3")):
        con = sqlite3.connect(f"file:{f}?mode=ro&immutable=1", uri=True)  # writes nothing beside a WAL-mode bag
        rows += [
            (str(n), int(t), bytes(d))
            for n, t, d in con.execute(
                "SELECT topics.name, timestamp, data FROM messages JOIN topics ON topics.id = messages.topic_id"
            )
        ]
        con.close()
    return sorted(rows, key=lambda r: r[1])


def read_all(bag: Path) -> list[tuple[str, int, bytes]]:
    with bag_io.open_bag(bag) as r:
        return [(m.topic, m.time_ns, bytes(m.data)) for m in r.raw_messages(r.topics)]


def counts(rows: list[tuple[str, int, bytes]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for topic, _, _ in rows:
        out[topic] = out.get(topic, 0) + 1
    return out


@pytest.mark.parametrize("name", TWINS)
def test_every_rosbag2_bag_reads_all_its_messages(shared_data, name):
    rows = sqlite_rows(shared_data / "rosbag2" / f"sqlite3_{name}")
    assert rows, "SQLite holds the messages"
    for storage in ("sqlite3", "mcap"):
        bag = shared_data / "rosbag2" / f"{storage}_{name}"
        got = read_all(bag)
        # the same messages, bytes and receive times as SQLite's rows (rosbag2 wrote both twins alike)
        assert sorted(got) == sorted(rows), bag
        assert [t for _, t, _ in got] == sorted(t for _, t, _ in got), f"{bag}: not in time order"
        with bag_io.open_bag(bag) as r:
            info = bag_io.topics(r)
            assert {t: i.count for t, i in info.items() if i.count} == counts(rows)
            meta = bag / "metadata.yaml"
            if meta.exists():  # what rosbag2 wrote at the end of the recording agrees
                doc = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
                expected = {e["topic_metadata"]["name"]: e["message_count"] for e in doc["topics_with_message_count"]}
                assert {t: i.count for t, i in info.items()} == expected
                assert {t: i.metadata_count for t, i in info.items()} == expected


def test_split_bags_without_metadata_are_read_from_their_files(shared_data):
    for storage in ("sqlite3", "mcap"):
        bag = shared_data / "rosbag2" / f"{storage}_multiple_files"
        assert not (bag / "metadata.yaml").exists()
        suffix = ".mcap" if storage == "mcap" else ".db3"
        with bag_io.open_bag(bag) as r:
            assert [f.name for f in r.layout.files] == [f"multiple_files_{i}{suffix}" for i in range(3)]
            assert r.topics["/chatter"].msgtype == "std_msgs/msg/String"
            texts = {m.data for _, _, m in bag_io.messages(r, ["/chatter"])}
        assert texts == {"test"}


def test_talker_messages_decode_and_the_embedded_placeholder_definitions_do_not_break_them(shared_data):
    for storage in ("sqlite3", "mcap"):
        with bag_io.open_bag(shared_data / "rosbag2" / f"{storage}_talker") as r:
            got = list(bag_io.messages(r, ["/topic", "/rosout"]))
        assert [m.data for t, _, m in got if t == "/topic"] == HELLO
        # the sqlite3 twin embeds `uint8 level` as rcl_interfaces/msg/Log; the real layout decodes it
        logs = [m for t, _, m in got if t == "/rosout"]
        assert [m.msg for m in logs] == [f"Publishing: '{h}'" for h in HELLO]
        assert {m.name for m in logs} == {"minimal_publisher"} and {m.level for m in logs} == {20}


def test_cdr_test_bags_decode_types_known_only_from_the_bag(shared_data):
    for storage in ("sqlite3", "mcap"):
        with bag_io.open_bag(shared_data / "rosbag2" / f"{storage}_cdr_test") as r:
            basic = [m for _, _, m in bag_io.messages(r, ["/test_topic"])]
        assert [type(m).__name__ for m in basic] == ["test_msgs__msg__BasicTypes"] * 3
        assert [m.int32_value for m in basic] == [123, 123, 123]  # the value rosbag2's test wrote


def test_rosbags_directory_reader_still_loses_the_talker_bags(shared_data):
    """The upstream bug our reader works around (README, "Bags"): if this fails, rosbags was fixed."""
    for storage in ("sqlite3", "mcap"):
        with rosbags.rosbag2.Reader(shared_data / "rosbag2" / f"{storage}_talker") as r:
            assert r.message_count == 20
            assert sum(1 for _ in r.messages()) == 0


def test_what_is_not_a_bag_is_named(shared_data, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BagError, match=r"empty: not a rosbag2 bag \(no metadata.yaml, no .mcap or .db3 file\)"):
        bag_io.bag_layout(empty)
    listed = tmp_path / "listed"
    shutil.copytree(shared_data / "rosbag2" / "mcap_talker", listed)
    listed.chmod(0o755)  # the shared data is read-only
    (listed / "talker.mcap").unlink()
    with pytest.raises(BagError, match=r"lists storage files that are missing: talker\.mcap"):
        bag_io.bag_layout(listed)
    both = tmp_path / "both"
    both.mkdir()
    for f in ("mcap_talker/talker.mcap", "sqlite3_talker/talker.db3"):
        shutil.copy(shared_data / "rosbag2" / f, both)
    with pytest.raises(BagError, match=r"has both \.mcap and \.db3 files and no metadata\.yaml"):
        bag_io.bag_layout(both)


def _qos(reliability: QosReliability, durability: QosDurability) -> Qos:
    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, 7, reliability, durability, zero, zero, QosLiveliness.AUTOMATIC, zero, False)


@pytest.mark.parametrize("version", [8, 9])
def test_recorded_qos_in_both_metadata_formats(tmp_path, version):
    bag = tmp_path / f"v{version}"
    with bag_io.BagWriter(bag, storage="sqlite3", version=version) as w:
        w.add_topic(
            "/latched", "std_msgs/msg/String", qos=[_qos(QosReliability.BEST_EFFORT, QosDurability.TRANSIENT_LOCAL)]
        )
        w.add_topic("/plain", "std_msgs/msg/String", qos=[_qos(QosReliability.RELIABLE, QosDurability.VOLATILE)])
        w.write("/latched", 1, bag_io.TYPESTORE.types["std_msgs/msg/String"](data="x"))
    offered = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"][
        "topics_with_message_count"
    ][0]["topic_metadata"]["offered_qos_profiles"]
    assert isinstance(offered, str if version == 8 else list)  # the two formats
    with bag_io.open_bag(bag) as r:
        info = bag_io.topics(r)
    assert bag_io.recorded_qos(info["/latched"].qos) == bag_io.RecordedQos(False, True, 7)
    assert bag_io.recorded_qos(info["/plain"].qos) == bag_io.RecordedQos(True, False, 7)


def test_recorded_qos_of_rosbag2_talker_and_of_several_publishers(shared_data):
    with bag_io.open_bag(shared_data / "rosbag2" / "sqlite3_talker") as r:
        info = bag_io.topics(r)
    # metadata.yaml v4: "reliability: 1 (reliable), durability: 1 (transient local) / 2 (volatile)", history unknown
    assert bag_io.recorded_qos(info["/rosout"].qos) == bag_io.RecordedQos(True, True, None)
    assert bag_io.recorded_qos(info["/topic"].qos) == bag_io.RecordedQos(True, False, None)
    mixed = [
        _qos(QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL),
        _qos(QosReliability.BEST_EFFORT, QosDurability.VOLATILE),
    ]
    assert bag_io.recorded_qos(mixed) == bag_io.RecordedQos(False, False, 7)  # what every subscriber accepted
    assert bag_io.recorded_qos([]) is None


@pytest.mark.parametrize("mode", [CompressionMode.FILE, CompressionMode.MESSAGE])
def test_zstd_compressed_bags(tmp_path, mode):
    bag = tmp_path / "zstd"
    store = bag_io.TYPESTORE
    writer = Writer(bag, version=9, storage_plugin=rosbags.rosbag2.StoragePlugin.MCAP)
    writer.set_compression(mode, CompressionFormat.ZSTD)
    with writer:
        conn = writer.add_connection("/topic", "std_msgs/msg/String", typestore=store)
        for i, text in enumerate(HELLO):
            writer.write(
                conn, 1000 + i, store.serialize_cdr(store.types["std_msgs/msg/String"](data=text), conn.msgtype)
            )
    with bag_io.open_bag(bag) as r:
        assert [m.data for _, _, m in bag_io.messages(r, ["/topic"])] == HELLO


def drop_last_message(monkeypatch, topic: str) -> None:
    """Inject a reader that loses one message: rosbags' per-file reader skips the last one of `topic`."""
    original = rosbags.rosbag2.Reader.messages

    def lossy(self, connections=(), start=None, stop=None):
        msgs = list(original(self, connections, start, stop))
        last = [i for i, (conn, _, _) in enumerate(msgs) if conn.topic == topic]
        if last:
            del msgs[last[-1]]
        return iter(msgs)

    monkeypatch.setattr(rosbags.rosbag2.Reader, "messages", lossy)
    # mcap messages come from the mcap library's reader (bag_recovery.McapFile): lose one there too
    original_mcap = bag_recovery.McapFile.messages

    def lossy_mcap(self, want):
        msgs = list(original_mcap(self, want))
        last = [i for i, (conn, _, _) in enumerate(msgs) if conn.topic == topic]
        if last:
            del msgs[last[-1]]
        return iter(msgs)

    monkeypatch.setattr(bag_recovery.McapFile, "messages", lossy_mcap)


def test_a_short_read_is_a_named_error(shared_data, monkeypatch):
    bag = shared_data / "rosbag2" / "mcap_talker"
    drop_last_message(monkeypatch, "/topic")
    with bag_io.open_bag(bag) as r, pytest.raises(BagShortReadError) as err:
        list(bag_io.messages(r, ["/topic", "/rosout"]))
    assert err.value.shortfalls == {"/topic": (9, 10)}
    assert str(err.value) == (
        f"bag {bag}: the reader returned fewer messages than the storage holds (/topic: read 9 of 10)"
    )


def test_a_short_read_fails_export_with_the_named_error(tmp_path, monkeypatch, capsys):
    from depth_annotation.cli.main import main

    bag = tmp_path / "bag"
    write_synthetic_bag(bag, frames=6, width=64, height=48, storage="sqlite3")
    drop_last_message(monkeypatch, DEFAULT_TOPICS["depth"])
    out = tmp_path / "ds"
    assert main(["export", "--quiet", str(bag), "--out", str(out), "--allow-partial"]) == 2
    err = capsys.readouterr().err
    assert f"error: bag {bag}: the reader returned fewer messages than the storage holds" in err
    assert f"{DEFAULT_TOPICS['depth']}: read 5 of 6" in err
    assert not (out / "export").exists() or not any((out / "export").iterdir())  # no dataset, no partial file


def test_a_short_read_fails_play_with_the_named_error(shared_data, monkeypatch):
    from depth_annotation.cli.bag_replay import play

    bag = shared_data / "rosbag2" / "sqlite3_talker"
    drop_last_message(monkeypatch, "/rosout")
    with pytest.raises(BagShortReadError) as err:
        play(bag, rate=100.0, wait_subscribers_s=0.2, log=lambda line: None)
    assert err.value.shortfalls == {"/rosout": (9, 10)}


def test_export_of_a_bag_without_images_lists_its_topics(shared_data, tmp_path):
    res = subprocess.run(
        [str(VENV_BIN / "depth-annotation"), "export", "--quiet", str(shared_data / "rosbag2" / "mcap_talker")]
        + ["--out", str(tmp_path / "ds")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2
    assert (
        "not in the bag; it has: /parameter_events [rcl_interfaces/msg/ParameterEvent], "
        "/rosout [rcl_interfaces/msg/Log], /topic [std_msgs/msg/String]" in res.stderr
    )


# --- play, between processes ----------------------------------------------------------------------


def stock_env() -> dict[str, str]:
    env = stock_environment()
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_stock(procs, cmd: list[str], name: str) -> NodeProcess:
    procs.log_dir.mkdir(parents=True, exist_ok=True)
    log = procs.log_dir / f"{name}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=stock_env(), cwd=REPO)
    return procs._track(NodeProcess(name, proc, log), False)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_play_delivers_every_talker_message_to_another_process(shared_data, procs, storage):
    listener = start_stock(
        procs, [sys.executable, str(REPO / "test" / "helpers" / "topic_listener.py"), "/topic", "10", "60"], "listener"
    )
    assert wait_until(lambda: "listening" in listener.output(), 30), listener.output()
    play = subprocess.run(
        [str(VENV_BIN / "depth-annotation"), "play", str(shared_data / "rosbag2" / f"{storage}_talker")]
        + ["--rate", "4"],
        capture_output=True,
        text=True,
        timeout=120,
        env=stock_env(),
    )
    assert play.returncode == 0, play.stderr
    assert "published 20 messages" in play.stdout  # 10 on /topic, 10 on /rosout
    assert listener.wait_exit(60) == 0, listener.output()
    assert json.loads(listener.output().strip().splitlines()[-1]) == HELLO


def test_play_offers_the_recorded_qos_from_either_metadata_format(shared_data, ros, tmp_path):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    # the string format (v4): rosbag2's talker with metadata.yaml's /topic offer changed to
    # best effort + transient local (the storage file still says reliable + volatile)
    v4 = tmp_path / "talker_v4"
    shutil.copytree(shared_data / "rosbag2" / "sqlite3_talker", v4)
    (v4 / "metadata.yaml").chmod(0o644)
    text = (v4 / "metadata.yaml").read_text()
    topic_entry = text.index("name: /topic")
    edited = text[topic_entry:].replace("reliability: 1\\n  durability: 2", "reliability: 2\\n  durability: 1", 1)
    assert edited != text[topic_entry:]
    (v4 / "metadata.yaml").write_text(text[:topic_entry] + edited)
    # the list format (v9), written by rosbags
    v9 = tmp_path / "v9"
    with bag_io.BagWriter(v9, storage="mcap", version=9) as w:
        w.add_topic(
            "/topic", "std_msgs/msg/String", qos=[_qos(QosReliability.BEST_EFFORT, QosDurability.TRANSIENT_LOCAL)]
        )
        for i, h in enumerate(HELLO):
            w.write("/topic", 10**9 + i * 200_000_000, bag_io.TYPESTORE.types["std_msgs/msg/String"](data=h))

    node = ros.node("qos_observer")
    got: list[str] = []
    node.create_subscription(
        String, "/topic", lambda m: got.append(m.data), QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)
    )

    def offers() -> list[tuple[ReliabilityPolicy, DurabilityPolicy]]:
        return [
            (i.qos_profile.reliability, i.qos_profile.durability) for i in node.get_publishers_info_by_topic("/topic")
        ]

    for bag in (v4, v9):
        ros.spin_until(lambda: False, timeout=0.5)  # deliver what the previous player sent
        got.clear()
        play = subprocess.Popen(
            [str(VENV_BIN / "depth-annotation"), "play", str(bag)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            assert ros.spin_until(lambda: bool(offers() and got), timeout=60), bag
            assert offers() == [(ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.TRANSIENT_LOCAL)], bag
            assert set(got) <= set(HELLO)
        finally:
            _, err = play.communicate(timeout=60)
        assert play.returncode == 0, err
