"""Chunk codecs of the exported HDF5 file: what each is, its levels, who can read it, how to compress a chunk.

Every compressor here releases the GIL, so `hdf5_writer` compresses chunks on a
thread pool and stores them with `write_direct_chunk`; `filter_kwargs` declares
the matching HDF5 filter so any reader with that filter decodes the chunks.
The Blosc chunks are exactly what the HDF5 Blosc filter (id 32001, as in
PyTables and hdf5plugin) stores: one `blosc_compress` buffer per chunk.
`gzip` chunks are deflated with zlib-ng at the requested level: the same
deflate stream format and level semantics as zlib (the baseline's file size
within 0.5 %), about twice as fast; set `USE_ZLIB_NG = False` for the stdlib zlib.
Compression libraries are imported only when their codec is used.
"""

from __future__ import annotations

import importlib.util
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import CodecError

USE_ZLIB_NG = True  # gzip chunks with zlib-ng (when installed) rather than the stdlib zlib


@dataclass(frozen=True)
class Codec:
    name: str
    levels: tuple[int, int] | None  # inclusive range; None: no level
    default_level: int | None
    readers: str  # who can open the file
    needs: tuple[str, ...] = ()  # Python packages the codec imports

    @property
    def parallel(self) -> bool:
        """Chunks compressed here, on the writer's pool (every codec with a level); lzf and none are not."""
        return self.levels is not None


BLOSC_READERS = "HDF5 readers with the Blosc filter (Python: import hdf5plugin)"
BLOSC_NEEDS = ("blosc", "hdf5plugin")
CODEC_TABLE = {
    c.name: c
    for c in (
        Codec("gzip", (0, 9), 4, "any HDF5 reader"),
        Codec("gzip-fast", (0, 3), 2, "any HDF5 reader (standard deflate data)", needs=("isal",)),
        Codec("blosc-lz4", (1, 9), 5, BLOSC_READERS, needs=BLOSC_NEEDS),
        Codec("blosc-zstd", (1, 9), 1, BLOSC_READERS, needs=BLOSC_NEEDS),
        Codec("lzf", None, None, "h5py only"),
        Codec("none", None, None, "any HDF5 reader"),
    )
}
CODECS = tuple(CODEC_TABLE)


def resolve_codec(codec: str, level: int | None) -> tuple[Codec, int | None]:
    """The codec and its level (None: the codec's default); CodecError with the valid choices otherwise,
    or when a package the codec needs is not installed."""
    spec = CODEC_TABLE.get(codec)
    if spec is None:
        raise CodecError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    missing = [m for m in spec.needs if importlib.util.find_spec(m) is None]
    if missing:
        raise CodecError(
            f"codec {codec} needs the Python package(s) {', '.join(missing)}: pip install {' '.join(missing)}"
        )
    if level is None:
        return spec, spec.default_level
    if spec.levels is None:
        raise CodecError(f"{codec} takes no level (got {level})")
    lo, hi = spec.levels
    if not lo <= level <= hi:
        raise CodecError(f"{codec} levels are {lo}..{hi}, got {level}")
    return spec, level


def compressor(codec: str, level: int | None, itemsize: int) -> Callable[[Any], bytes] | None:
    """bytes-like -> chunk bytes for `write_direct_chunk`, or None (no compression / written through HDF5)."""
    level = _level(codec, level)
    if codec == "gzip":
        deflate = zlib.compress
        if USE_ZLIB_NG:
            try:
                from zlib_ng import zlib_ng

                deflate = zlib_ng.compress
            except ImportError:
                pass
        return lambda buf: deflate(buf, level)
    if codec == "gzip-fast":
        from isal import isal_zlib

        return lambda buf: isal_zlib.compress(buf, level)
    if codec.startswith("blosc-"):
        import blosc

        # The pool supplies the parallelism: one Blosc thread per call, and the GIL released inside it.
        blosc.set_nthreads(1)
        blosc.set_releasegil(True)
        cname = codec.split("-", 1)[1]
        return lambda buf: blosc.compress(buf, typesize=itemsize, clevel=level, shuffle=blosc.SHUFFLE, cname=cname)
    return None


def _level(codec: str, level: int | None) -> int:
    """The level to use (the codec's default for None; 0 for codecs without levels, where it is unused)."""
    if level is not None:
        return level
    spec = CODEC_TABLE.get(codec)
    return spec.default_level if spec is not None and spec.default_level is not None else 0


def filter_kwargs(codec: str, level: int | None) -> dict[str, Any]:
    """create_dataset arguments that declare the codec's filter pipeline."""
    if codec in ("gzip", "gzip-fast"):
        return {"compression": "gzip", "compression_opts": _level(codec, level)}
    if codec.startswith("blosc-"):
        import hdf5plugin

        blosc: Any = hdf5plugin.Blosc  # its cname is a Literal of the Blosc compressor names
        return dict(blosc(cname=codec.split("-", 1)[1], clevel=_level(codec, level), shuffle=blosc.SHUFFLE))
    if codec == "lzf":
        return {"compression": "lzf"}
    return {}


def open_h5(path: str | os.PathLike[str], mode: str = "r") -> Any:
    """h5py.File with every codec here readable: registers the Blosc filter when hdf5plugin is installed."""
    import h5py

    try:
        import hdf5plugin  # noqa: F401 - registers the Blosc/LZ4/Zstd filters with HDF5
    except ImportError:
        pass
    return h5py.File(path, mode)
