"""Property of the chunk codecs (dataset/chunk_codecs.py): every chunk decodes to its input.

Twice for each codec and level: by the codec's reference decoder (stdlib zlib for the deflate codecs,
python-blosc for Blosc), and by HDF5 itself, reading a chunk stored the writer's way (compressed
here, `write_direct_chunk`, the filter `filter_kwargs` declares) from an in-memory file.
"""

import zlib

import h5py
import hdf5plugin  # noqa: F401 - registers the Blosc filter with HDF5, as dataset.open_h5 does for readers
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from depth_annotation.dataset import CODECS, chunk_codecs, resolve_codec

SETTINGS = settings(max_examples=120, deadline=None)


@st.composite
def codec_levels(draw):
    """A codec and a level in its range (None: the codec's default, or no level)."""
    codec = draw(st.sampled_from(CODECS))
    spec, _ = resolve_codec(codec, None)
    if spec.levels is None:
        return codec, None
    return codec, draw(st.one_of(st.none(), st.integers(*spec.levels)))


@st.composite
def frames(draw):
    """Depth (uint16) or colour (uint8 RGB) frames, random or with long runs (what compressors shortcut)."""
    dtype = draw(st.sampled_from([np.uint16, np.uint8]))
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    shape = (h, w) if dtype == np.uint16 else (h, w, 3)
    if draw(st.booleans()):
        return draw(arrays(dtype, shape))
    values = draw(st.lists(st.integers(0, np.iinfo(dtype).max), min_size=1, max_size=3))
    return np.resize(np.repeat(np.array(values, dtype), draw(st.integers(1, 200))), shape)


def reference_decode(codec: str, chunk: bytes) -> bytes:
    if codec in ("gzip", "gzip-fast"):
        return zlib.decompress(chunk)  # HDF5's deflate filter stores zlib streams
    import blosc

    return blosc.decompress(chunk)


@SETTINGS
@given(codec_levels(), frames())
def test_every_chunk_decodes_to_its_input(codec_level, frame):
    codec, level = codec_level
    spec, level = resolve_codec(codec, level)
    compress = chunk_codecs.compressor(codec, level, frame.dtype.itemsize)
    assert (compress is not None) == spec.parallel
    raw = np.ascontiguousarray(frame)
    if compress is not None:
        chunk = compress(raw)
        assert reference_decode(codec, chunk) == raw.tobytes()

    with h5py.File("chunk.h5", "w", driver="core", backing_store=False) as f:
        ds = f.create_dataset(
            "frames",
            shape=(2, *frame.shape),
            chunks=(1, *frame.shape),
            dtype=frame.dtype,
            **chunk_codecs.filter_kwargs(codec, level),
        )
        if codec == "lzf":  # written through HDF5, as the writer does
            ds[1] = frame
        else:
            ds.id.write_direct_chunk((1,) + (0,) * frame.ndim, chunk if compress is not None else raw.tobytes())
        back = ds[1]
    assert back.dtype == frame.dtype and np.array_equal(back, frame)
