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
