"""Damaged and wrong input bags: recovery of every complete message, named errors, `reindex`.

Known answers come from the intact file, not from the recovering reader: which
mcap chunks survive a cut is read from the intact file's chunk index (the `mcap`
library's summary), and the frames a truncated bag must give are the intact
export's frames whose depth and colour messages lie in those chunks.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import rosbags.rosbag2
import yaml
from mcap.reader import make_reader
from mcap.records import Message
from mcap.stream_reader import StreamReader, breakup_chunk
from mcap.writer import CompressionType
from mcap_ros2.writer import Writer as Ros2McapWriter
from ros_harness import VENV_BIN

from depth_annotation.cli.main import main
from depth_annotation.common import SyntheticScene, default_intrinsics, orbit_pose
from depth_annotation.dataset import DEFAULT_TOPICS, bag_io, bag_recovery, write_synthetic_bag

W, H, FRAMES = 320, 240, 24
WANTED = [DEFAULT_TOPICS[k] for k in ("depth", "color", "info", "quality")]


def write_other_writer_bag(directory: Path, compression: CompressionType = CompressionType.ZSTD) -> Path:
    """A depth + colour + camera_info recording written by mcap-ros2-support (its own CDR encoder,
    zstd chunks with CRCs), no metadata.yaml: another writer than ours."""
    directory.mkdir()
    path = directory / "other.mcap"
    scene, intr = SyntheticScene(1), default_intrinsics(W, H)
    with path.open("wb") as f, Ros2McapWriter(f, chunk_size=256 * 1024, compression=compression) as w:
        schemas = {
            name: w.register_msgdef(name, bag_io.TYPESTORE.generate_msgdef(name, ros_version=2)[0])
            for name in ("sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo")
        }
        f_ = intr.to_camera_info_fields()
        for i in range(FRAMES):
            frame = scene.render(intr, orbit_pose(i / 30), frame_seed=i)
            stamp = 1_700_000_000_000_000_000 + i * 33_333_333
            hdr = {"stamp": {"sec": stamp // 10**9, "nanosec": stamp % 10**9}, "frame_id": "cam"}

            def img(arr: np.ndarray, enc: str, step: int, hdr: dict = hdr) -> dict:
                rows, cols = arr.shape[:2]
                return {
                    "header": hdr,
                    "height": rows,
                    "width": cols,
                    "encoding": enc,
                    "is_bigendian": 0,
                    "step": step,
                    "data": arr.tobytes(),
                }

            w.write_message(
                DEFAULT_TOPICS["color"],
                schemas["sensor_msgs/msg/Image"],
                img(frame.color, "rgb8", 3 * W),
                log_time=stamp + 2_000_000,
            )
            w.write_message(
                DEFAULT_TOPICS["depth"],
                schemas["sensor_msgs/msg/Image"],
                img(frame.depth_mm.astype("<u2"), "16UC1", 2 * W),
                log_time=stamp + 3_000_000,
            )
            info = {
                "header": hdr,
                "height": H,
                "width": W,
                "distortion_model": f_["distortion_model"],
                "d": list(f_["d"]),
                "k": list(f_["k"]),
                "r": list(f_["r"]),
                "p": list(f_["p"]),
                "binning_x": 0,
                "binning_y": 0,
                "roi": {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False},
            }
            w.write_message(
                DEFAULT_TOPICS["info"], schemas["sensor_msgs/msg/CameraInfo"], info, log_time=stamp + 3_100_000
            )
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("recovery")
    ours = root / "ours"
    write_synthetic_bag(ours, frames=FRAMES, width=W, height=H)
    other = write_other_writer_bag(root / "other")
    sqlite = root / "sqlite"
    write_synthetic_bag(sqlite, frames=FRAMES, width=W, height=H, storage="sqlite3")
    intact = {}
    for name, bag in (("ours", ours), ("other", other.parent), ("sqlite", sqlite)):
        out = root / f"intact_{name}"
        assert main(["export", "--quiet", str(bag), "--out", str(out)]) == 0
        intact[name] = read_export(out)
    return root, {"ours": next(ours.glob("*.mcap")), "other": other, "sqlite": next(sqlite.glob("*.db3"))}, intact


def read_export(out: Path) -> dict[str, np.ndarray]:
    with h5py.File(out / "export" / "dataset.h5") as f:
        g = f["episode_0"]
        return {k: g[k][()] for k in ("depth", "color", "timestamps_ns")}


def complete_chunk_messages(intact: Path, cut: int) -> list[tuple[str, int, bytes]]:
    """(topic, log time, data) of the messages in chunks that end before byte `cut`, from the intact
    file's chunk index: what a reader of the cut file can recover."""
    with intact.open("rb") as f:
        summary = make_reader(f).get_summary()
        channels = {c.id: c.topic for c in summary.channels.values()}
        out = []
        for ci in sorted(summary.chunk_indexes, key=lambda c: c.chunk_start_offset):
            if ci.chunk_start_offset + ci.chunk_length > cut:
                break
            f.seek(ci.chunk_start_offset)
            raw = io.BytesIO(f.read(ci.chunk_length))
            chunk = next(StreamReader(raw, skip_magic=True, emit_chunks=True).records)
            for rec in breakup_chunk(chunk):
                if isinstance(rec, Message):
                    out.append((channels[rec.channel_id], rec.log_time, rec.data))
    return out


def header_stamp(data: bytes) -> int:
    sec, nsec = np.frombuffer(data[4:12], "<u4")  # CDR: 4-byte encapsulation, then header.stamp
    return int(sec) * 10**9 + int(nsec)


def cut_copy(src: Path, dest_dir: Path, fraction: float, *, with_metadata: bool = True) -> tuple[Path, int]:
    dest_dir.mkdir()
    if with_metadata and (src.parent / "metadata.yaml").exists():
        shutil.copy(src.parent / "metadata.yaml", dest_dir)
    data = src.read_bytes()
    cut = int(len(data) * fraction)
    (dest_dir / src.name).write_bytes(data[:cut])
    return dest_dir, cut


TRUNCATION = re.compile(r"bag (\S+): truncated after (\d+) messages at ([\d.]+) s \(recovered (\d+)(?: of ~(\d+))?")


@pytest.mark.parametrize("writer", ["ours", "other"])
@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_cut_mcap_exports_every_complete_frame(sources, tmp_path, capsys, writer, fraction):
    _, files, intact = sources
    bag, cut = cut_copy(files[writer], tmp_path / "cut", fraction)
    survivors = complete_chunk_messages(files[writer], cut)
    wanted = [m for m in survivors if m[0] in WANTED]
    stamps = {t: {header_stamp(d) for topic, _, d in survivors if topic == t} for t in WANTED[:3]}
    expected = [i for i, s in enumerate(intact[writer]["timestamps_ns"]) if all(s in stamps[t] for t in WANTED[:2])]
    assert 0 < len(expected) < len(intact[writer]["timestamps_ns"])

    capsys.readouterr()
    assert main(["export", "--quiet", str(bag), "--out", str(tmp_path / "strict")]) == 2
    err = capsys.readouterr().err
    m = TRUNCATION.search(err)
    assert m, err
    assert m.group(1) == str(bag) and int(m.group(2)) == int(m.group(4)) == len(wanted)
    times = [t for _, t, _ in wanted]
    assert float(m.group(3)) == pytest.approx((max(times) - min(times)) / 1e9, abs=1e-3)
    if writer == "ours":  # metadata.yaml lists every message of the four topics
        assert int(m.group(5)) == 4 * FRAMES
    assert str(files[writer].name) in err and "cut short" in err

    assert main(["export", "--quiet", str(bag), "--out", str(tmp_path / "partial"), "--allow-partial"]) == 0
    got = read_export(tmp_path / "partial")
    for key in ("timestamps_ns", "depth", "color"):
        assert np.array_equal(got[key], intact[writer][key][expected]), key


def test_corrupt_chunk_is_named_with_its_offset(sources, tmp_path, capsys):
    """Chunks with a CRC (mcap library writers) are verified: 200 flipped bytes of image data inside an
    uncompressed chunk (nothing else would notice) are found."""
    _, _, intact = sources
    src = write_other_writer_bag(tmp_path / "plain", CompressionType.NONE)
    with src.open("rb") as f:
        chunks = sorted(make_reader(f).get_summary().chunk_indexes, key=lambda c: c.chunk_start_offset)
    target = chunks[len(chunks) // 2]
    data = bytearray(src.read_bytes())
    mid = target.chunk_start_offset + target.chunk_length // 2
    data[mid : mid + 200] = bytes(b ^ 0xFF for b in data[mid : mid + 200])
    bag = tmp_path / "corrupt"
    bag.mkdir()
    (bag / src.name).write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["export", "--quiet", str(bag), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{bag / src.name} at byte {target.chunk_start_offset}: corrupt chunk (CRCValidationError" in err, err
    assert main(["export", "--quiet", str(bag), "--out", str(tmp_path / "p"), "--allow-partial"]) == 0
    got = read_export(tmp_path / "p")
    n = len(got["timestamps_ns"])
    assert 0 < n < len(intact["other"]["timestamps_ns"])
    assert np.array_equal(got["depth"], intact["other"]["depth"][:n])


def _zero_page(src: Path, dest: Path, fraction: float) -> None:
    data = bytearray(src.read_bytes())
    page = 4096
    start = (int(len(data) * fraction) // page) * page
    data[start : start + page] = bytes(page)
    dest.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["cut", "zeroed page"])
def test_damaged_sqlite3_exports_what_precedes_the_damage(sources, tmp_path, capsys, damage):
    _, files, intact = sources
    src = files["sqlite"]
    if damage == "cut":
        bag, _ = cut_copy(src, tmp_path / "bag", 0.5)
    else:
        bag = tmp_path / "bag"
        bag.mkdir()
        shutil.copy(src.parent / "metadata.yaml", bag)
        _zero_page(src, bag / src.name, 0.5)
    capsys.readouterr()
    assert main(["export", "--quiet", str(bag), "--out", str(tmp_path / "strict")]) == 2
    err = capsys.readouterr().err
    m = TRUNCATION.search(err)
    assert m and int(m.group(5)) == 4 * FRAMES and str(bag / src.name) in err, err
    assert main(["export", "--quiet", str(bag), "--out", str(tmp_path / "p"), "--allow-partial"]) == 0
    got = read_export(tmp_path / "p")
    n = len(got["timestamps_ns"])
    assert FRAMES // 4 < n < FRAMES  # half the file is intact: about half the frames, never all
    for key in ("timestamps_ns", "depth", "color"):
        assert np.array_equal(got[key], intact["sqlite"][key][:n]), key


def test_missing_metadata_export_and_reindex(sources, tmp_path):
    _, files, intact = sources
    bag = tmp_path / "nometa"
    bag.mkdir()
    shutil.copy(files["ours"], bag)
    cmd = [str(VENV_BIN / "depth-annotation"), "export", "--quiet", str(bag), "--out", str(tmp_path / "o")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"bag {bag}: no metadata.yaml: topics and counts reconstructed from the storage files" in res.stderr
    got = read_export(tmp_path / "o")
    for key in ("timestamps_ns", "depth", "color"):
        assert np.array_equal(got[key], intact["ours"][key]), key

    before = hashlib.sha256(files["ours"].read_bytes()).hexdigest()
    res = subprocess.run(
        [str(VENV_BIN / "depth-annotation"), "reindex", str(bag)], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0 and "reconstructed metadata from the storage files" in res.stdout, res.stderr
    assert hashlib.sha256((bag / files["ours"].name).read_bytes()).hexdigest() == before
    # other tools read it now: rosbags' directory reader goes by metadata.yaml alone
    with rosbags.rosbag2.Reader(bag) as r:
        counts = {c.topic: c.msgcount for c in r.connections}
        assert r.message_count == 4 * FRAMES + 1
    assert counts[DEFAULT_TOPICS["depth"]] == FRAMES and counts["/tf_static"] == 1


def test_reindex_writes_a_recovered_mcap_beside_a_cut_one(sources, tmp_path, capsys):
    _, files, _ = sources
    bag, cut = cut_copy(files["other"], tmp_path / "cut", 0.6, with_metadata=False)
    original = (bag / files["other"].name).read_bytes()
    survivors = complete_chunk_messages(files["other"], cut)
    capsys.readouterr()
    assert main(["reindex", str(bag)]) == 0
    out = capsys.readouterr().out
    copy = bag / "other.recovered.mcap"
    assert "damaged (cut short" in out and "other.recovered.mcap" in out and "reconstructed metadata" in out
    assert (bag / files["other"].name).read_bytes() == original  # the original bytes are untouched
    with copy.open("rb") as f:  # a complete file: the seeking reader finds its summary
        reader = make_reader(f)
        assert reader.get_summary() is not None
        got = [(c.topic, m.log_time, m.data) for _, c, m in reader.iter_messages(log_time_order=False)]
    assert got == survivors
    with rosbags.rosbag2.Reader(bag) as r:
        assert r.message_count == len(survivors)
        assert [c.topic for c in r.connections] == [DEFAULT_TOPICS[k] for k in ("color", "depth", "info")]
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["relative_file_paths"] == ["other.recovered.mcap"] and meta["message_count"] == len(survivors)


def _one_error_line(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_bad_inputs_get_one_line_naming_the_file(sources, tmp_path, capsys, monkeypatch):
    _, files, _ = sources
    out = ["--out", str(tmp_path / "o"), "--quiet"]

    empty = tmp_path / "empty"
    empty.mkdir()
    assert f"{empty}: not a rosbag2 bag" in _one_error_line(capsys, ["export", str(empty), *out])

    random_dir = tmp_path / "random"
    random_dir.mkdir()
    (random_dir / "x.mcap").write_bytes(np.random.default_rng(0).bytes(4096))
    line = _one_error_line(capsys, ["export", str(random_dir), *out])
    assert f"{random_dir / 'x.mcap'}: not an mcap or sqlite3 file" in line

    def bag_with_metadata(name: str, text: str) -> Path:
        d = tmp_path / name
        d.mkdir()
        shutil.copy(files["ours"], d)
        (d / "metadata.yaml").write_text(text)
        return d

    meta = (files["ours"].parent / "metadata.yaml").read_text()
    unknown = bag_with_metadata("unknown", meta.replace("storage_identifier: mcap", "storage_identifier: rosbag_v1"))
    line = _one_error_line(capsys, ["export", str(unknown), *out])
    assert f"{unknown / 'metadata.yaml'}: storage 'rosbag_v1' is not supported" in line

    broken = bag_with_metadata("broken", "rosbag2_bagfile_information: [unclosed\n  : :")
    assert f"{broken / 'metadata.yaml'}: metadata.yaml does not parse" in _one_error_line(
        capsys, ["export", str(broken), *out]
    )

    assert f"- {files['ours'].name}" in meta
    missing = bag_with_metadata("missing", meta.replace(f"- {files['ours'].name}", "- gone_0.mcap"))
    line = _one_error_line(capsys, ["export", str(missing), *out])
    assert f"{missing / 'metadata.yaml'} lists storage files that are missing: gone_0.mcap" in line

    # Tests run as root, which chmod cannot stop: permission denied is injected at the file layer.
    denied = tmp_path / "denied"
    denied.mkdir()
    shutil.copy(files["ours"], denied)
    real_open = Path.open

    def no_read(self, *a, **k):
        if self.parent == denied:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *a, **k)

    monkeypatch.setattr(Path, "open", no_read)
    line = _one_error_line(capsys, ["export", str(denied), *out])
    assert line == f"error: {denied / files['ours'].name}: permission denied"
    assert not (tmp_path / "o" / "export" / "dataset.h5").exists()


def test_recovering_reader_reads_a_cut_file_of_our_writer_with_crc_zero(sources, tmp_path):
    """rosbags' writer stores chunk CRC 0: those chunks cannot be verified, and are still read."""
    _, files, _ = sources
    with files["ours"].open("rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None
    bag, cut = cut_copy(files["ours"], tmp_path / "cut", 0.5, with_metadata=False)
    src = bag_recovery.McapFile(bag / files["ours"].name)
    got = list(src.messages(set(WANTED) | {"/tf_static"}))
    assert [(c.topic, t, d) for c, t, d in got] == complete_chunk_messages(files["ours"], cut)
    assert src.damage is not None and src.damage.offset is not None
