"""The dataset's HDF5 file: `/episode_N/...`, one frame per chunk, written crash-safe and in parallel.

Layout per episode (the guide's, as Diffusion Policy / ACT loaders expect):

    /episode_N/depth              uint16 (T, H, W), millimetres, 0 = no depth
    /episode_N/color              uint8  (T, H, W, 3), RGB
    /episode_N/timestamps_ns      int64  (T,)   header stamps
    /episode_N/camera_intrinsics  float32 (4,)  fx, fy, cx, cy
    /episode_N/K, /episode_N/D    float64       full intrinsic matrix and distortion
    /episode_N/depth_to_color     float64 (4, 4) when known
    /episode_N/qc/...             per-frame QC (status, valid_fraction, ...) when recorded

Chunks are one frame. With gzip (the default, zlib level 4: readable by any HDF5
reader) chunks are deflated by a thread pool (zlib releases the GIL) and stored
with `write_direct_chunk`, so compression uses every core. `gzip-fast` writes
the same gzip filter data (any HDF5 reader opens it) but deflates with Intel's
ISA-L (`isal`, level 0-3, default 2): about 5x faster than zlib-4 for a few
percent more bytes. `lzf` is h5py-only; `none` stores raw. Datasets grow in
blocks and are trimmed when the episode ends. The file is written as `<name>.partial` and
renamed only when complete: a killed export never leaves a final file behind.
"""

from __future__ import annotations

import json
import os
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .camera import Extrinsics, Intrinsics
from .coverage import median_mm

SCHEMA_VERSION = 1
CODECS = ("gzip", "gzip-fast", "lzf", "none")
GROW = 64  # frames added to a dataset's capacity at a time


class ExportError(RuntimeError):
    """The export cannot proceed (existing output, bad frames); the message says why."""


@dataclass
class EpisodeMeta:
    scene_id: str
    source: str
    topics: dict[str, str]
    intrinsics: Intrinsics
    frame_id: str = ""
    depth_to_color: Extrinsics | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _ChunkedStack:
    """A (T, ...) dataset grown one frame at a time, compressed off the calling thread."""

    def __init__(self, group: h5py.Group, name: str, frame_shape: tuple[int, ...], dtype, codec: str, level: int,
                 pool: ThreadPoolExecutor | None) -> None:
        kwargs: dict[str, Any] = {}
        if codec in ("gzip", "gzip-fast"):
            kwargs = {"compression": "gzip", "compression_opts": level}
        elif codec == "lzf":
            kwargs = {"compression": "lzf"}
        self.ds = group.create_dataset(name, shape=(0, *frame_shape), maxshape=(None, *frame_shape),
                                       chunks=(1, *frame_shape), dtype=dtype, **kwargs)
        self.frame_shape, self.dtype = frame_shape, np.dtype(dtype)
        self.direct = codec in ("gzip", "gzip-fast", "none")
        self.codec, self.level, self.pool = codec, level, pool
        self.compress = None
        if codec == "gzip":
            self.compress = zlib.compress
        elif codec == "gzip-fast":
            from isal import isal_zlib

            self.compress = isal_zlib.compress
        self.pending: deque[tuple[int, Future | bytes]] = deque()
        self.n = 0

    def append(self, frame: np.ndarray) -> None:
        if frame.shape != self.frame_shape or frame.dtype != self.dtype:
            raise ExportError(f"{self.ds.name}: frame {frame.dtype}{frame.shape} does not match {self.dtype}{self.frame_shape}")
        index = self.n
        self.n += 1
        if self.n > self.ds.shape[0]:
            self.ds.resize(self.ds.shape[0] + GROW, axis=0)
        if not self.direct:
            self.ds[index] = frame
            return
        raw = np.ascontiguousarray(frame)  # compressors take the buffer directly: no extra copy
        if self.compress is not None and self.pool is not None:
            self.pending.append((index, self.pool.submit(self.compress, raw, self.level)))
            while len(self.pending) > 8:
                self._write_one()
        else:
            data = self.compress(raw, self.level) if self.compress is not None else raw.tobytes()
            self.ds.id.write_direct_chunk((index,) + (0,) * len(self.frame_shape), data)

    def _write_one(self) -> None:
        index, fut = self.pending.popleft()
        self.ds.id.write_direct_chunk((index,) + (0,) * len(self.frame_shape), fut.result())

    def flush(self) -> None:
        while self.pending:
            self._write_one()

    def trim(self) -> None:
        """Drop the unused capacity (call once the episode is complete)."""
        self.flush()
        if self.ds.shape[0] != self.n:
            self.ds.resize(self.n, axis=0)


class EpisodeWriter:
    def __init__(self, file: "Hdf5DatasetWriter", index: int, meta: EpisodeMeta, shape: tuple[int, int]) -> None:
        self.index, self.meta = index, meta
        self.group = file.h5.create_group(f"episode_{index}")
        h, w = shape
        self.depth = _ChunkedStack(self.group, "depth", (h, w), np.uint16, file.codec, file.level, file.pool)
        self.color = _ChunkedStack(self.group, "color", (h, w, 3), np.uint8, file.codec, file.level, file.pool)
        self.stamps: list[int] = []
        self.qc_rows: list[dict[str, Any] | None] = []  # None: no DepthQuality matched this frame
        self.valid_fraction: list[float] = []
        self.depth_min = np.inf
        self.depth_max = 0
        self.medians: list[float] = []

    @property
    def frames(self) -> int:
        return len(self.stamps)

    def append(self, stamp_ns: int, depth_mm: np.ndarray, color_rgb: np.ndarray, qc: dict[str, Any] | None = None) -> None:
        if depth_mm.shape != color_rgb.shape[:2]:
            raise ExportError(
                f"depth {depth_mm.shape[1]}x{depth_mm.shape[0]} and colour {color_rgb.shape[1]}x{color_rgb.shape[0]} "
                "differ: export depth aligned to colour (aligned_depth_to_color)"
            )
        if self.stamps and stamp_ns <= self.stamps[-1]:
            raise ExportError(f"stamps must increase within an episode ({stamp_ns} after {self.stamps[-1]})")
        self.depth.append(depth_mm)
        self.color.append(color_rgb)
        self.stamps.append(int(stamp_ns))
        sub = depth_mm[::4, ::4]
        valid = sub[sub > 0]
        self.valid_fraction.append(float(np.count_nonzero(depth_mm) / depth_mm.size))
        if valid.size:
            self.depth_min = min(self.depth_min, int(valid.min()))
            self.depth_max = max(self.depth_max, int(valid.max()))
            self.medians.append(median_mm(valid))
        self.qc_rows.append(qc)

    def finish(self) -> dict[str, Any]:
        self.depth.trim()
        self.color.trim()
        g, m = self.group, self.meta
        g.create_dataset("timestamps_ns", data=np.asarray(self.stamps, np.int64))
        g.create_dataset("camera_intrinsics", data=m.intrinsics.as_vector())
        g.create_dataset("K", data=m.intrinsics.k)
        g.create_dataset("D", data=m.intrinsics.dist_coeffs)
        if m.depth_to_color is not None:
            g.create_dataset("depth_to_color", data=m.depth_to_color.matrix)
        known = [r for r in self.qc_rows if r is not None]
        if known:
            # Frames without a matched DepthQuality get status 255 (unknown), NaN fractions, reasons ["no_qc"].
            qg = g.create_group("qc")
            qg.attrs["status_values"] = "0 GOOD, 1 WARN, 2 FLAGGED, 3 ERROR, 255 no QC message for this frame"
            qg.create_dataset("status", data=np.array([r["status"] if r else 255 for r in self.qc_rows], np.uint8))
            for key in ("valid_fraction", "roi_valid_fraction"):
                qg.create_dataset(key, data=np.array([r[key] if r else np.nan for r in self.qc_rows], np.float32))
            qg.create_dataset("reasons", data=[json.dumps(r["reasons"] if r else ["no_qc"]) for r in self.qc_rows],
                              dtype=h5py.string_dtype())
        attrs = {
            "schema_version": SCHEMA_VERSION, "depth_scale": 0.001, "depth_unit": "mm", "color_encoding": "rgb8",
            "scene_id": m.scene_id, "source": m.source, "topics": json.dumps(m.topics), "frame_id": m.frame_id,
            "distortion_model": m.intrinsics.distortion_model, "width": m.intrinsics.width, "height": m.intrinsics.height,
            "depth_to_color_known": m.depth_to_color is not None,
        }
        for key, value in {**attrs, **m.extra}.items():
            g.attrs[key] = value
        return self.summary()

    def summary(self) -> dict[str, Any]:
        return {
            "episode": f"episode_{self.index}", "scene_id": self.meta.scene_id, "source": self.meta.source,
            "frames": self.frames, "width": self.meta.intrinsics.width, "height": self.meta.intrinsics.height,
            "depth_min_mm": int(self.depth_min) if self.medians else None, "depth_max_mm": int(self.depth_max) if self.medians else None,
            "depth_median_mm": float(np.median(self.medians)) if self.medians else None,
            "mean_valid_fraction": float(np.mean(self.valid_fraction)) if self.valid_fraction else None,
            "qc_flagged": int(sum(1 for r in self.qc_rows if r and r["status"] == 2)),
            "qc_missing": int(sum(1 for r in self.qc_rows if r is None)) if any(self.qc_rows) else None,
        }


class Hdf5DatasetWriter:
    """Context manager; episodes are appended with `begin_episode`."""

    def __init__(self, path: str | Path, *, codec: str = "gzip", level: int = 4, overwrite: bool = False,
                 workers: int | None = None) -> None:
        if codec not in CODECS:
            raise ExportError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
        if codec == "gzip-fast":
            level = 2 if level == 4 else level  # the default level means "the default" for ISA-L too
            if not 0 <= level <= 3:
                raise ExportError(f"gzip-fast (ISA-L) levels are 0..3, got {level}")
        elif not 0 <= level <= 9:
            raise ExportError(f"gzip level must be 0..9, got {level}")
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        if self.path.exists() and not overwrite:
            raise ExportError(f"{self.path} exists: refusing to overwrite it (use --overwrite)")
        self.codec, self.level = codec, level
        self.pool = ThreadPoolExecutor(workers or os.cpu_count() or 2) if codec in ("gzip", "gzip-fast") else None
        self.episodes: list[EpisodeWriter] = []
        self.restarted = self.partial.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial.unlink(missing_ok=True)  # an interrupted earlier export: start over cleanly
        self.h5 = h5py.File(self.partial, "w")
        self.h5.attrs["schema_version"] = SCHEMA_VERSION
        self.h5.attrs["layout"] = "/episode_N/{depth,color,timestamps_ns,camera_intrinsics,K,D,depth_to_color,qc/*}"

    def begin_episode(self, meta: EpisodeMeta, shape: tuple[int, int]) -> EpisodeWriter:
        ep = EpisodeWriter(self, len(self.episodes), meta, shape)
        self.episodes.append(ep)
        return ep

    def commit(self) -> Path:
        """Flush, close and atomically publish the file."""
        for ep in self.episodes:
            ep.depth.trim()
            ep.color.trim()
        self.h5.close()
        with open(self.partial, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(self.partial, self.path)
        self._shutdown_pool()
        return self.path

    def abort(self) -> None:
        """Close and delete the partial file."""
        try:
            self.h5.close()
        finally:
            self.partial.unlink(missing_ok=True)
            self._shutdown_pool()

    def _shutdown_pool(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
