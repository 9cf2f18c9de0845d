"""The dataset's HDF5 writer (dataset/hdf5_writer.py) on tiny episodes: every dataset, attribute and summary
value against numbers worked out by hand (checksums by xxhash directly), and the file's life cycle
(partial file, commit, abort, refusals). Codec round trips are in test_chunk_codecs.py."""

import json
import os

import h5py
import numpy as np
import pytest
import xxhash

from depth_annotation.common import Extrinsics, Intrinsics, rotation_from_euler_xyz
from depth_annotation.dataset import EpisodeMeta, ExportError, Hdf5DatasetWriter, chunk_codecs, open_h5

H, W = 8, 12
INTR = Intrinsics(W, H, 10.5, 11.0, 5.5, 3.5, d=(0.1, -0.02, 0.001, 0.002, 0.003))
D2C = Extrinsics(rotation_from_euler_xyz(0.1, -0.2, 0.3), np.array([0.015, 0.0, -0.001]), "depth", "color")


def meta(**kw):
    base = {"scene_id": "kitchen", "source": "bag_1", "topics": {"depth": "/d", "color": "/c"}, "intrinsics": INTR}
    return EpisodeMeta(**{**base, **kw})


def frame(i, fill=None):
    depth = np.full((H, W), 1000 + i if fill is None else fill, np.uint16)
    color = np.full((H, W, 3), i % 256, np.uint8)
    color[0, 0] = (1, 2, 3)
    return depth, color


def xxh(a):
    return xxhash.xxh3_64_intdigest(np.ascontiguousarray(a).tobytes())


@pytest.mark.parametrize("codec", ["gzip", "lzf", "none"])
def test_an_episode_as_stored(tmp_path, codec):
    path = tmp_path / "d.h5"
    frames = [frame(i) for i in range(3)]
    frames[1][0][2, 3] = 0
    with Hdf5DatasetWriter(path, codec=codec) as w:
        ep = w.begin_episode(
            meta(frame_id="cam_color_optical_frame", depth_to_color=D2C, extra={"robot": "r1"}), (H, W)
        )
        for i, (d, c) in enumerate(frames):
            ep.append(10 + 5 * i, d, c)
        ep.finish()
    assert not (tmp_path / "d.h5.partial").exists()
    with open_h5(path) as f:
        assert f.attrs["schema_version"] == 1
        assert f.attrs["layout"] == "/episode_N/{depth,color,timestamps_ns,camera_intrinsics,K,D,depth_to_color,qc/*}"
        g = f["episode_0"]
        assert np.array_equal(g["depth"][:], np.stack([d for d, _ in frames]))
        assert np.array_equal(g["color"][:], np.stack([c for _, c in frames]))
        assert g["timestamps_ns"].dtype == np.int64 and g["timestamps_ns"][:].tolist() == [10, 15, 20]
        assert g["camera_intrinsics"].dtype == np.float32 and g["camera_intrinsics"][:].tolist() == [
            10.5,
            11.0,
            5.5,
            3.5,
        ]
        assert np.array_equal(g["K"][:], [[10.5, 0, 5.5], [0, 11.0, 3.5], [0, 0, 1]])
        assert g["D"][:].tolist() == [0.1, -0.02, 0.001, 0.002, 0.003]
        expected = np.eye(4)
        expected[:3, :3], expected[:3, 3] = D2C.rotation, D2C.translation
        assert np.allclose(g["depth_to_color"][:], expected)
        cs = g["checksums"]
        assert cs.attrs["algorithm"] == "xxh3_64"
        assert cs.attrs["over"] == "each frame's raw bytes (C order) before compression"
        assert cs["depth"].dtype == np.uint64 and cs["depth"][:].tolist() == [xxh(d) for d, _ in frames]
        assert cs["color"][:].tolist() == [xxh(c) for _, c in frames]
        assert "qc" not in g
        assert dict(g.attrs) == {
            "schema_version": 1,
            "depth_scale": 0.001,
            "depth_unit": "mm",
            "color_encoding": "rgb8",
            "scene_id": "kitchen",
            "source": "bag_1",
            "topics": json.dumps({"depth": "/d", "color": "/c"}),
            "frame_id": "cam_color_optical_frame",
            "distortion_model": "plumb_bob",
            "width": W,
            "height": H,
            "depth_to_color_known": True,
            "robot": "r1",
        }


def test_summary_values_by_hand(tmp_path):
    """min, max and median come from every 4th pixel each way (rows 0, 4; columns 0, 4, 8), the valid
    fraction from every pixel."""
    with Hdf5DatasetWriter(tmp_path / "d.h5", codec="none") as w:
        ep = w.begin_episode(meta(), (H, W))
        d0 = np.full((H, W), 700, np.uint16)
        d0[4, 8] = 2500  # on the grid: the maximum
        d0[1, 1] = 9000  # off the grid: not seen by min/max/median
        d0[:, :6] = 0  # half the frame without depth (the grid keeps (0, 8) and (4, 8))
        d1 = np.full((H, W), 900, np.uint16)
        d1[0, 0] = 650  # the minimum
        d2 = np.zeros((H, W), np.uint16)
        d2[3, 3] = 5000  # valid but off the grid: no median for this frame
        for i, d in enumerate((d0, d1, d2)):
            ep.append(i + 1, d, frame(i)[1])
        summary = ep.finish()
    # grid medians: frame 0 -> (700, 2500) -> 1600; frame 1 -> 650 and five 900s -> 900; frame 2 -> none
    assert summary == {
        "episode": "episode_0",
        "scene_id": "kitchen",
        "source": "bag_1",
        "frames": 3,
        "width": W,
        "height": H,
        "depth_min_mm": 650,
        "depth_max_mm": 2500,
        "depth_median_mm": (1600 + 900) / 2,
        "mean_valid_fraction": pytest.approx((0.5 + 1.0 + 1 / 96) / 3),
        "qc_flagged": 0,
        "qc_missing": None,
    }
    assert type(summary["depth_min_mm"]) is int and type(summary["depth_max_mm"]) is int


def test_summary_of_an_episode_without_depth(tmp_path):
    with Hdf5DatasetWriter(tmp_path / "d.h5", codec="none") as w:
        empty = w.begin_episode(meta(), (H, W))
        assert empty.summary()["mean_valid_fraction"] is None and empty.frames == 0
        holes = w.begin_episode(meta(scene_id="b"), (H, W))
        holes.append(1, np.zeros((H, W), np.uint16), frame(0)[1])
        s = holes.finish()
        empty.finish()
    assert s["episode"] == "episode_1" and s["frames"] == 1
    assert (s["depth_min_mm"], s["depth_max_mm"], s["depth_median_mm"], s["mean_valid_fraction"]) == (
        None,
        None,
        None,
        0.0,
    )


def test_qc_rows_and_frames_without_qc(tmp_path):
    path = tmp_path / "d.h5"
    rows = [
        {"status": 0, "valid_fraction": 0.9, "roi_valid_fraction": 0.95, "reasons": []},
        None,
        {"status": 2, "valid_fraction": 0.5, "roi_valid_fraction": 0.25, "reasons": ["low_coverage", "holes"]},
        {"status": 2, "valid_fraction": 0.6, "roi_valid_fraction": 0.5, "reasons": ["low_coverage"]},
        None,
    ]
    with Hdf5DatasetWriter(path, codec="none") as w:
        ep = w.begin_episode(meta(), (H, W))
        for i, qc in enumerate(rows):
            ep.append(i + 1, *frame(i), qc=qc)
        summary = ep.finish()
    assert summary["qc_flagged"] == 2 and summary["qc_missing"] == 2
    with h5py.File(path) as f:
        qg = f["episode_0/qc"]
        assert qg.attrs["status_values"] == "0 GOOD, 1 WARN, 2 FLAGGED, 3 ERROR, 255 no QC"
        assert qg["status"].dtype == np.uint8 and qg["status"][:].tolist() == [0, 255, 2, 2, 255]
        for key, expected in (
            ("valid_fraction", [0.9, None, 0.5, 0.6, None]),
            ("roi_valid_fraction", [0.95, None, 0.25, 0.5, None]),
        ):
            got = qg[key][:]
            assert got.dtype == np.float32
            assert [None if np.isnan(v) else pytest.approx(v) for v in got] == expected
        reasons = [json.loads(r) for r in qg["reasons"].asstr()[:]]
        assert reasons == [[], ["no_qc"], ["low_coverage", "holes"], ["low_coverage"], ["no_qc"]]


def test_refusals_name_the_cause(tmp_path):
    with Hdf5DatasetWriter(tmp_path / "d.h5", codec="none") as w:
        ep = w.begin_episode(meta(), (H, W))
        d, c = frame(0)
        with pytest.raises(ExportError) as err:
            ep.append(1, d[:, :10], c)
        assert str(err.value) == (
            "depth 10x8 and colour 12x8 differ: export depth aligned to colour (aligned_depth_to_color)"
        )
        ep.append(5, d, c)
        for stamp in (5, 4):
            with pytest.raises(ExportError) as err:
                ep.append(stamp, d, c)
            assert str(err.value) == f"stamps must increase within an episode ({stamp} after 5)"
        with pytest.raises(ExportError) as err:
            ep.append(6, d.astype(np.int32), c)
        assert str(err.value) == "/episode_0/depth: frame int32(8, 12) does not match uint16(8, 12)"
        with pytest.raises(ExportError) as err:
            ep.append(6, d, c[..., :2].copy())
        assert "differ" not in str(err.value)
        assert str(err.value) == "/episode_0/color: frame uint8(8, 12, 2) does not match uint8(8, 12, 3)"
        assert ep.frames == 1
        ep.finish()
    with pytest.raises(ExportError) as err:
        Hdf5DatasetWriter(tmp_path / "x.h5", codec="zip")
    assert "zip" in str(err.value)


def test_life_cycle_commit_abort_overwrite(tmp_path):
    path = tmp_path / "sub" / "d.h5"
    partial = tmp_path / "sub" / "d.h5.partial"
    w = Hdf5DatasetWriter(path, codec="none")
    assert w.partial == partial and partial.exists() and not path.exists() and w.state == "open" and not w.restarted
    ep = w.begin_episode(meta(), (H, W))
    ep.append(1, *frame(0))
    assert w.commit() == path and w.state == "committed" and path.exists() and not partial.exists()
    assert w.commit() == path  # again: the same path, nothing else
    w.abort()  # after a commit: nothing
    assert path.exists() and w.state == "committed"
    with pytest.raises(ExportError) as err:
        w.begin_episode(meta(), (H, W))
    assert str(err.value) == f"{path}: begin_episode() after the file was committed"
    # frames appended but never finished are trimmed at commit: the dataset holds exactly what was written
    with h5py.File(path) as f:
        assert f["episode_0/depth"].shape == (1, H, W) and f["episode_0/color"].shape == (1, H, W, 3)
    with pytest.raises(ExportError) as err:
        Hdf5DatasetWriter(path)
    assert str(err.value) == f"{path} exists: refusing to overwrite it (use --overwrite)"
    w = Hdf5DatasetWriter(path, codec="none", overwrite=True)
    w.abort()
    assert w.state == "aborted" and not partial.exists() and path.exists()
    w.abort()
    with pytest.raises(ExportError) as err:
        w.commit()
    assert str(err.value) == f"{path}: commit() after abort(): nothing to publish"
    with pytest.raises(ExportError, match="after the file was aborted"):
        w.begin_episode(meta(), (H, W))


def test_a_failed_block_leaves_no_file_and_a_stale_partial_is_replaced(tmp_path):
    path = tmp_path / "d.h5"
    with pytest.raises(RuntimeError, match="boom"), Hdf5DatasetWriter(path, codec="none") as w:
        w.begin_episode(meta(), (H, W)).append(1, *frame(0))
        raise RuntimeError("boom")
    assert not path.exists() and not w.partial.exists() and w.state == "aborted"
    w.partial.write_bytes(b"left by a killed export")
    with Hdf5DatasetWriter(path, codec="none") as w:
        assert w.restarted
    assert path.exists() and not w.partial.exists()
    with h5py.File(path) as f:
        assert list(f) == []


def test_long_episodes_grow_flush_in_the_background_and_keep_frame_order(tmp_path, monkeypatch):
    """70 frames: past one block of capacity (64), four background flushes (every 16 frames), and more
    frames in flight than the compression queue holds (8), so checksums must still come in frame order."""
    path = tmp_path / "d.h5"
    frames = [frame(i, fill=i * 7) for i in range(70)]
    with Hdf5DatasetWriter(path, codec="gzip", workers=3) as w:
        assert w.pool is not None and w.pool._max_workers == 3
        kicks = []
        kick = w.flush.kick
        monkeypatch.setattr(w.flush, "kick", lambda: (kicks.append(w.episodes[0].frames), kick()))
        ep = w.begin_episode(meta(), (H, W))
        for i, (d, c) in enumerate(frames):
            ep.append(i + 1, d, c)
        assert ep.depth.ds.shape[0] == 128  # capacity grows 64 at a time
        ep.finish()
        assert kicks == [16, 32, 48, 64]
    assert w.pool is None  # shut down with the commit
    with h5py.File(path) as f:
        g = f["episode_0"]
        assert g["depth"].shape == (70, H, W) and g["color"].shape == (70, H, W, 3)
        assert g["checksums/depth"][:].tolist() == [xxh(d) for d, _ in frames]
        assert g["checksums/color"][:].tolist() == [xxh(c) for _, c in frames]
        assert np.array_equal(g["depth"][:], np.stack([d for d, _ in frames]))


def test_pool_size_and_no_checksums(tmp_path):
    w = Hdf5DatasetWriter(tmp_path / "a.h5", codec="gzip")
    assert w.pool._max_workers == (os.cpu_count() or 2)
    w.abort()
    assert w.pool is None
    w = Hdf5DatasetWriter(tmp_path / "b.h5", codec="lzf")  # written through HDF5: no pool
    assert w.pool is None
    w.abort()
    with Hdf5DatasetWriter(tmp_path / "c.h5", codec="lzf", checksums=False) as w:
        ep = w.begin_episode(meta(), (H, W))
        ep.append(1, *frame(0))
        ep.finish()
    with h5py.File(tmp_path / "c.h5") as f:
        assert "checksums" not in f["episode_0"] and f["episode_0/depth"].shape == (1, H, W)
        assert f["episode_0"].attrs["depth_to_color_known"] == False  # noqa: E712 (numpy bool)
        assert "depth_to_color" not in f["episode_0"]


def test_chunks_are_written_directly_by_the_codec_compressor_at_its_level(tmp_path):
    """gzip level 9: every stored chunk is exactly the compressor's output for the frame (not HDF5's own
    deflate), the dataset declares level 9, and the chunks differ from level 1's."""
    rng = np.random.default_rng(5)
    depth = (1000 + rng.integers(0, 40, (H, W))).astype(np.uint16)
    color = rng.integers(0, 8, (H, W, 3), dtype=np.uint8)
    sizes = {}
    for level in (1, 9):
        path = tmp_path / f"l{level}.h5"
        with Hdf5DatasetWriter(path, codec="gzip", level=level) as w:
            ep = w.begin_episode(meta(), (H, W))
            ep.append(1, depth, color)
            ep.finish()
        with h5py.File(path) as f:
            g = f["episode_0"]
            assert g["depth"].compression_opts == level and g["color"].compression_opts == level
            _, chunk = g["depth"].id.read_direct_chunk((0, 0, 0))
            assert chunk == chunk_codecs.compressor("gzip", level, 2)(depth)
            _, chunk = g["color"].id.read_direct_chunk((0, 0, 0, 0))
            assert chunk == chunk_codecs.compressor("gzip", level, 1)(color)
            sizes[level] = len(chunk)
    assert sizes[9] != sizes[1]


def test_capacity_is_trimmed_when_frames_equal_the_image_height(tmp_path):
    with Hdf5DatasetWriter(tmp_path / "d.h5", codec="none") as w:
        ep = w.begin_episode(meta(), (H, W))
        for i in range(H):  # 8 frames of 8 rows
            ep.append(i + 1, *frame(i))
        ep.finish()
    with h5py.File(tmp_path / "d.h5") as f:
        assert f["episode_0/depth"].shape == (H, H, W)


def test_one_millimetre_is_valid_depth(tmp_path):
    with Hdf5DatasetWriter(tmp_path / "d.h5", codec="none") as w:
        ep = w.begin_episode(meta(), (H, W))
        ep.append(1, np.ones((H, W), np.uint16), frame(0)[1])
        s = ep.finish()
    assert (s["depth_min_mm"], s["depth_max_mm"], s["depth_median_mm"]) == (1, 1, 1.0)


def test_qc_reasons_are_variable_length_strings(tmp_path):
    with Hdf5DatasetWriter(tmp_path / "d.h5", codec="none") as w:
        ep = w.begin_episode(meta(), (H, W))
        ep.append(1, *frame(0), qc={"status": 1, "valid_fraction": 0.8, "roi_valid_fraction": 0.8, "reasons": ["a"]})
        ep.finish()
    with h5py.File(tmp_path / "d.h5") as f:
        info = h5py.check_string_dtype(f["episode_0/qc/reasons"].dtype)
        assert info is not None and info.length is None and info.encoding == "utf-8"


def test_compression_threads_are_named_and_folders_are_created(tmp_path):
    import threading

    path = tmp_path / "a" / "b" / "d.h5"  # two missing folders
    with Hdf5DatasetWriter(path, codec="gzip", workers=2) as w:
        ep = w.begin_episode(meta(), (H, W))
        ep.append(1, *frame(0))
        names = [t.name for t in threading.enumerate()]
        ep.finish()
    assert any(n.startswith("h5-compress") for n in names), names
    assert path.exists()


def test_abort_after_the_partial_file_vanished(tmp_path):
    w = Hdf5DatasetWriter(tmp_path / "d.h5", codec="none")
    w.h5.close()
    w.partial.unlink()  # e.g. removed by hand while the export ran
    w.abort()
    assert w.state == "aborted" and not w.partial.exists()
