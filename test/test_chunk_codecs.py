"""Every chunk codec round-trips exactly, writes the filter data its readers expect, and fails clearly."""

import subprocess
import sys
import zlib

import numpy as np
import pytest

from depth_annotation.common import default_intrinsics
from depth_annotation.dataset import (
    CODECS,
    CodecError,
    EpisodeMeta,
    ExportError,
    Hdf5DatasetWriter,
    chunk_codecs,
    open_h5,
    resolve_codec,
)

H, W, T = 48, 64, 5


def _frames(seed: int = 0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    depth = [(800 + 3 * yy + xx + rng.integers(0, 4, (H, W))).astype(np.uint16) for _ in range(T)]
    for d in depth:
        d[:5, :7] = 0  # holes must survive as zeros
    color = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(T)]
    return depth, color


def _write(path, codec, level=None):
    depth, color = _frames()
    w = Hdf5DatasetWriter(path, codec=codec, level=level)
    meta = EpisodeMeta(scene_id="s", source="test", topics={}, intrinsics=default_intrinsics(W, H))
    ep = w.begin_episode(meta, (H, W))
    for i in range(T):
        ep.append(1_000 + i, depth[i], color[i])
    ep.finish()
    w.commit()
    return depth, color


@pytest.mark.parametrize("codec", CODECS)
def test_every_codec_round_trips_exactly(codec, tmp_path):
    path = tmp_path / "d.h5"
    depth, color = _write(path, codec)
    with open_h5(path) as f:
        g = f["episode_0"]
        assert g["depth"].chunks == (1, H, W) and g["color"].chunks == (1, H, W, 3)
        assert np.array_equal(g["depth"][:], np.stack(depth))
        assert np.array_equal(g["color"][:], np.stack(color))
        if codec.startswith("blosc-"):
            assert "32001" in g["depth"]._filters  # the registered Blosc filter id


@pytest.mark.parametrize("codec", ["gzip", "gzip-fast"])
def test_gzip_codecs_store_plain_deflate_at_their_level(codec, tmp_path):
    path = tmp_path / "d.h5"
    depth, _ = _write(path, codec)
    _, level = resolve_codec(codec, None)
    with open_h5(path) as f:
        ds = f["episode_0/depth"]
        assert ds.compression == "gzip" and ds.compression_opts == level
        mask, chunk = ds.id.read_direct_chunk((2, 0, 0))
        assert mask == 0 and zlib.decompress(chunk) == depth[2].tobytes()  # the stdlib inflates it: any reader can


def test_gzip_with_zlib_ng_is_the_same_size_as_zlib(tmp_path, monkeypatch):
    pytest.importorskip("zlib_ng")
    _write(tmp_path / "ng.h5", "gzip")
    monkeypatch.setattr(chunk_codecs, "USE_ZLIB_NG", False)
    _write(tmp_path / "zlib.h5", "gzip")
    ng, ref = (tmp_path / "ng.h5").stat().st_size, (tmp_path / "zlib.h5").stat().st_size
    assert abs(ng - ref) / ref < 0.02, (ng, ref)


def test_blosc_chunks_are_blosc_buffers_and_need_the_filter_to_read(tmp_path):
    import blosc

    path = tmp_path / "d.h5"
    depth, _ = _write(path, "blosc-zstd")
    with open_h5(path) as f:
        _, chunk = f["episode_0/depth"].id.read_direct_chunk((1, 0, 0))
    assert blosc.decompress(chunk) == depth[1].tobytes()
    # A reader without the filter cannot decode it; with hdf5plugin imported it can.
    probe = (
        "import sys, h5py\n"
        "if sys.argv[2] == 'plugin': import hdf5plugin\n"
        "print(int(h5py.File(sys.argv[1], 'r')['episode_0/depth'][1].sum()))\n"
    )
    (tmp_path / "no_plugins").mkdir()
    env = {"HDF5_PLUGIN_PATH": str(tmp_path / "no_plugins")}
    bare = subprocess.run([sys.executable, "-c", probe, str(path), "bare"], capture_output=True, text=True, env=env)
    assert bare.returncode != 0 and "plugin" in bare.stderr.lower(), bare.stderr
    ok = subprocess.run([sys.executable, "-c", probe, str(path), "plugin"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and int(ok.stdout) == int(depth[1].sum())


def test_bad_codec_and_level_are_refused(tmp_path):
    with pytest.raises(ExportError, match="codec must be one of gzip, gzip-fast"):
        Hdf5DatasetWriter(tmp_path / "a.h5", codec="zip")
    with pytest.raises(ExportError, match=r"gzip-fast levels are 0\.\.3, got 4"):
        Hdf5DatasetWriter(tmp_path / "b.h5", codec="gzip-fast", level=4)
    with pytest.raises(CodecError, match="lzf takes no level"):
        resolve_codec("lzf", 3)
    assert not list(tmp_path.iterdir())  # nothing created
    assert resolve_codec("blosc-lz4", None)[1] == 5 and resolve_codec("gzip", 9)[1] == 9


# --- the codec table, levels, compressors and filter declarations, each against its library's own answer ---

PAYLOAD = (np.arange(4096, dtype=np.uint16) * 7 % 1500).tobytes()


def test_codec_table_says_what_each_codec_is():
    table = {c.name: (c.levels, c.default_level, c.needs, c.parallel) for c in chunk_codecs.CODEC_TABLE.values()}
    assert table == {
        "gzip": ((0, 9), 4, (), True),
        "gzip-fast": ((0, 3), 2, ("isal",), True),
        "blosc-lz4": ((1, 9), 5, ("blosc", "hdf5plugin"), True),
        "blosc-zstd": ((1, 9), 1, ("blosc", "hdf5plugin"), True),
        "lzf": (None, None, (), False),
        "none": (None, None, (), False),
    }
    assert CODECS == ("gzip", "gzip-fast", "blosc-lz4", "blosc-zstd", "lzf", "none")
    readers = {c.name: c.readers for c in chunk_codecs.CODEC_TABLE.values()}
    assert readers["gzip"] == readers["none"] == "any HDF5 reader" and readers["lzf"] == "h5py only"
    assert "hdf5plugin" in readers["blosc-zstd"] and "deflate" in readers["gzip-fast"]


@pytest.mark.parametrize("codec", ["gzip", "gzip-fast", "blosc-lz4", "blosc-zstd"])
def test_levels_are_inclusive_ranges(codec):
    lo, hi = chunk_codecs.CODEC_TABLE[codec].levels
    assert resolve_codec(codec, lo) == (chunk_codecs.CODEC_TABLE[codec], lo)
    assert resolve_codec(codec, hi)[1] == hi
    for bad in (lo - 1, hi + 1):
        with pytest.raises(CodecError, match=rf"^{codec} levels are {lo}\.\.{hi}, got {bad}$"):
            resolve_codec(codec, bad)
    assert resolve_codec(codec, None)[1] == chunk_codecs.CODEC_TABLE[codec].default_level


def test_unknown_codec_levelless_codecs_and_missing_packages(monkeypatch):
    with pytest.raises(CodecError, match=r"^codec must be one of gzip, gzip-fast, .*lzf, none, got 'zip'$"):
        resolve_codec("zip", None)
    assert resolve_codec("none", None)[1] is None and resolve_codec("lzf", None)[1] is None
    with pytest.raises(CodecError, match=r"^none takes no level \(got 0\)$"):
        resolve_codec("none", 0)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda m: None if m in ("blosc", "hdf5plugin") else real(m))
    with pytest.raises(
        CodecError,
        match=r"^codec blosc-lz4 needs the Python package\(s\) blosc, hdf5plugin: "
        r"pip install blosc hdf5plugin$",
    ):
        resolve_codec("blosc-lz4", 3)
    assert resolve_codec("gzip", 1)[1] == 1  # codecs that need nothing are unaffected


def test_gzip_compressors_are_their_libraries_at_the_level(monkeypatch):
    from isal import isal_zlib
    from zlib_ng import zlib_ng

    for level in (1, 6, 9):
        assert chunk_codecs.compressor("gzip", level, 2)(PAYLOAD) == zlib_ng.compress(PAYLOAD, level)
    assert chunk_codecs.compressor("gzip", None, 2)(PAYLOAD) == zlib_ng.compress(PAYLOAD, 4)  # the default
    for level in (0, 3):
        assert chunk_codecs.compressor("gzip-fast", level, 2)(PAYLOAD) == isal_zlib.compress(PAYLOAD, level)
    assert chunk_codecs.compressor("gzip-fast", None, 2)(PAYLOAD) == isal_zlib.compress(PAYLOAD, 2)
    monkeypatch.setattr(chunk_codecs, "USE_ZLIB_NG", False)
    assert chunk_codecs.compressor("gzip", 7, 2)(PAYLOAD) == zlib.compress(PAYLOAD, 7)
    assert zlib.decompress(chunk_codecs.compressor("gzip", 1, 2)(PAYLOAD)) == PAYLOAD


@pytest.mark.parametrize(("codec", "code"), [("blosc-lz4", 1), ("blosc-zstd", 4)])
def test_blosc_compressor_writes_a_shuffled_buffer_of_the_item_size(codec, code):
    """c-blosc's header: byte 2 flags (bit 0 byte shuffle, bits 5-7 the compressor: 1 lz4, 4 zstd), byte 3
    the type size."""
    import blosc

    for itemsize, level in ((2, 9), (4, 1)):
        out = chunk_codecs.compressor(codec, level, itemsize)(PAYLOAD)
        assert blosc.decompress(out) == PAYLOAD
        assert out[3] == itemsize and out[2] & 1 and out[2] >> 5 == code
        cname = codec.split("-", 1)[1]
        assert out == blosc.compress(PAYLOAD, typesize=itemsize, clevel=level, shuffle=blosc.SHUFFLE, cname=cname)
    default = chunk_codecs.CODEC_TABLE[codec].default_level
    assert chunk_codecs.compressor(codec, None, 2)(PAYLOAD) == blosc.compress(
        PAYLOAD, typesize=2, clevel=default, shuffle=blosc.SHUFFLE, cname=codec.split("-", 1)[1]
    )
    assert blosc.set_nthreads(2) == 1  # the compressor asked for one Blosc thread per call


def test_levelless_codecs_have_no_compressor_and_declare_their_filters():
    assert chunk_codecs.compressor("lzf", None, 2) is None and chunk_codecs.compressor("none", None, 2) is None
    assert chunk_codecs.filter_kwargs("gzip", 7) == {"compression": "gzip", "compression_opts": 7}
    assert chunk_codecs.filter_kwargs("gzip", None) == {"compression": "gzip", "compression_opts": 4}
    assert chunk_codecs.filter_kwargs("gzip-fast", None) == {"compression": "gzip", "compression_opts": 2}
    # hdf5plugin's Blosc options: (0, 0, 0, 0, clevel, shuffle, compressor) with lz4 = 1, zstd = 5, filter 32001
    assert chunk_codecs.filter_kwargs("blosc-zstd", 3) == {
        "compression": 32001,
        "compression_opts": (0, 0, 0, 0, 3, 1, 5),
    }
    assert chunk_codecs.filter_kwargs("blosc-lz4", None) == {
        "compression": 32001,
        "compression_opts": (0, 0, 0, 0, 5, 1, 1),
    }
    assert chunk_codecs.filter_kwargs("lzf", None) == {"compression": "lzf"}
    assert chunk_codecs.filter_kwargs("none", None) == {}
    assert chunk_codecs._level("none", None) == 0 and chunk_codecs._level("nope", None) == 0
    assert chunk_codecs._level("lzf", 3) == 3


def test_open_h5_reads_by_default_and_writes_when_asked(tmp_path):
    path = tmp_path / "x.h5"
    with open_h5(path, "w") as f:
        f["a"] = np.arange(3)
    with open_h5(path) as f:
        assert f.mode == "r" and list(f["a"][:]) == [0, 1, 2]
    with pytest.raises(FileNotFoundError):
        open_h5(tmp_path / "missing.h5")
