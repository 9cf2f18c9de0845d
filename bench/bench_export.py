"""Offline export of a 640x480 30 fps RGB-D bag (read + sync + write).

Throughput against reading the bag alone (our checked reader and rosbags' AnyReader)
and against a single-core h5py gzip-4 write.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from depth_annotation.common import image_to_array
from depth_annotation.dataset import (
    DEFAULT_TOPICS,
    ExportOptions,
    bag_io,
    chunk_codecs,
    export_bags,
    write_synthetic_bag,
)

FRAMES = int(os.environ.get("BENCH_EXPORT_FRAMES", "150"))
ROUNDS = int(os.environ.get("BENCH_EXPORT_CHECKSUM_ROUNDS", "5"))
ONLY_CHECKSUMS = os.environ.get("BENCH_EXPORT_ONLY") == "checksums"
W, H = 640, 480
RAW_MB = (W * H * 2 + W * H * 3) / 1e6  # per RGB-D frame


def _read(bag: Path) -> tuple[float, list]:
    """Depth and colour frames through our reader (every read checked against the storage's counts)."""
    t0 = time.perf_counter()
    frames: dict[int, dict[str, np.ndarray]] = {}
    with bag_io.open_bag(bag) as r:
        for topic, _, msg in bag_io.messages(r, [DEFAULT_TOPICS["depth"], DEFAULT_TOPICS["color"]]):
            frames.setdefault(bag_io.stamp_of(msg), {})[topic] = image_to_array(msg)
    dt = time.perf_counter() - t0
    pairs = [(v[DEFAULT_TOPICS["depth"]], v[DEFAULT_TOPICS["color"]]) for v in frames.values()]
    return len(pairs) / dt, pairs


def _read_anyreader(bag: Path) -> float:
    """The same read through rosbags' AnyReader alone (the reader before bag_io, unchecked)."""
    from rosbags.highlevel import AnyReader

    t0 = time.perf_counter()
    frames: dict[int, dict[str, np.ndarray]] = {}
    with AnyReader([bag], default_typestore=bag_io.TYPESTORE) as r:
        conns = [c for c in r.connections if c.topic in (DEFAULT_TOPICS["depth"], DEFAULT_TOPICS["color"])]
        for conn, _, raw in r.messages(connections=conns):
            msg = r.deserialize(raw, conn.msgtype)
            frames.setdefault(bag_io.stamp_of(msg), {})[conn.topic] = image_to_array(msg)
    return len(frames) / (time.perf_counter() - t0)


def _h5py_single_core(pairs: list, path: Path) -> float:
    t0 = time.perf_counter()
    with h5py.File(path, "w") as f:
        d = f.create_dataset(
            "depth", (len(pairs), H, W), np.uint16, chunks=(1, H, W), compression="gzip", compression_opts=4
        )
        c = f.create_dataset(
            "color", (len(pairs), H, W, 3), np.uint8, chunks=(1, H, W, 3), compression="gzip", compression_opts=4
        )
        for i, (depth, color) in enumerate(pairs):
            d[i] = depth
            c[i] = color
    return len(pairs) / (time.perf_counter() - t0)


def _checksum_rows(bag: Path, tmp: Path) -> list[dict]:
    """Checksums on vs off with blosc-lz4 (the fastest codec, where they cost the most), interleaved
    rounds so load from other processes hits both alike; the cost is the median of per-round ratios."""
    import xxhash

    fps: dict[bool, list[float]] = {True: [], False: []}
    cpu_ms: dict[bool, list[float]] = {True: [], False: []}  # this process's CPU time (all threads) per frame
    for _ in range(ROUNDS):
        for on in (False, True):
            out = tmp / f"ds_sum_{on}"
            t0, c0 = time.perf_counter(), time.process_time()
            report = export_bags(
                [(bag, "bench")],
                ExportOptions(out_dir=out, codec="blosc-lz4", every_k=10**9, checksums=on),
                progress=False,
            )
            fps[on].append(report["frames"] / (time.perf_counter() - t0))
            cpu_ms[on].append((time.process_time() - c0) / report["frames"] * 1000)
            shutil.rmtree(out)
    ratios = sorted(on / off for on, off in zip(fps[True], fps[False], strict=True))
    cost = 100 * (1 - ratios[len(ratios) // 2])
    # CPU time is what checksums add; unlike wall-clock throughput it barely moves with other
    # processes' load on a shared machine, so it is the figure to compare with the 5 % budget there.
    cpu_ratios = sorted(on / off for on, off in zip(cpu_ms[True], cpu_ms[False], strict=True))
    cpu_cost = 100 * (cpu_ratios[len(cpu_ratios) // 2] - 1)
    depth = np.zeros((H, W), np.uint16)
    color = np.zeros((H, W, 3), np.uint8)
    t0 = time.perf_counter()
    for _ in range(200):
        xxhash.xxh3_64_intdigest(depth.data)
        xxhash.xxh3_64_intdigest(color.data)
    hash_ms = (time.perf_counter() - t0) / 200 * 1000
    rows = []
    for on in (False, True):
        med = float(np.median(fps[on]))
        rows.append(
            {
                "case": f"export --codec blosc-lz4, checksums {'on' if on else 'off'} (median of {ROUNDS})",
                "frames/s": med,
                "MB/s (raw)": med * RAW_MB,
                "x real time": med / 30,
                "x baseline": float("nan"),
                "file MB": float("nan"),
            }
        )
    rows.append(
        {
            "case": (
                f"checksum cost: {cost:.1f} % throughput, {cpu_cost:.1f} % CPU time "
                f"({np.median(cpu_ms[False]):.2f} -> {np.median(cpu_ms[True]):.2f} ms/frame; medians per round); "
                f"xxh3 {hash_ms:.3f} ms/frame, one core"
            ),
            "frames/s": float("nan"),
            "MB/s (raw)": RAW_MB / (hash_ms / 1000),
            "x real time": float("nan"),
            "x baseline": float("nan"),
            "file MB": float("nan"),
        }
    )
    return rows


def run() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bag = tmp / "bag"
        write_synthetic_bag(bag, frames=FRAMES, width=W, height=H, storage="mcap")
        if ONLY_CHECKSUMS:
            return _checksum_rows(bag, tmp)
        any_fps = _read_anyreader(bag)
        rows.append(
            {
                "case": "rosbags AnyReader read + decode, unchecked",
                "frames/s": any_fps,
                "MB/s (raw)": any_fps * RAW_MB,
                "x real time": any_fps / 30,
                "x baseline": float("nan"),
                "file MB": float("nan"),
            }
        )
        read_fps, pairs = _read(bag)
        rows.append(
            {
                "case": "bag_io read + decode, counts checked (depth, colour)",
                "frames/s": read_fps,
                "MB/s (raw)": read_fps * RAW_MB,
                "x real time": read_fps / 30,
                "x baseline": float("nan"),
                "file MB": float("nan"),
            }
        )
        base_fps = _h5py_single_core(pairs, tmp / "baseline.h5")
        rows.append(
            {
                "case": "baseline: h5py gzip-4 write, one core",
                "frames/s": base_fps,
                "MB/s (raw)": base_fps * RAW_MB,
                "x real time": base_fps / 30,
                "x baseline": 1.0,
                "file MB": (tmp / "baseline.h5").stat().st_size / 1e6,
            }
        )
        # gzip twice: zlib-ng (what the exporter uses) and the stdlib zlib the baseline's HDF5 uses.
        cases = [("gzip", True), ("gzip", False)] + [(c, True) for c in chunk_codecs.CODECS if c != "gzip"]
        for codec, zlib_ng in cases:
            chunk_codecs.USE_ZLIB_NG = zlib_ng
            out = tmp / f"ds_{codec}"
            t0 = time.perf_counter()
            report = export_bags(
                [(bag, "bench")], ExportOptions(out_dir=out, codec=codec, every_k=10**9), progress=False
            )
            fps = report["frames"] / (time.perf_counter() - t0)
            label = codec + ("" if codec != "gzip" else " (zlib-ng)" if zlib_ng else " (stdlib zlib)")
            rows.append(
                {
                    "case": f"depth-annotation export --codec {label}",
                    "frames/s": fps,
                    "MB/s (raw)": fps * RAW_MB,
                    "x real time": fps / 30,
                    "x baseline": fps / base_fps,
                    "file MB": (out / "export" / "dataset.h5").stat().st_size / 1e6,
                }
            )
            shutil.rmtree(out)
        chunk_codecs.USE_ZLIB_NG = True
        rows += _checksum_rows(bag, tmp)
    return rows
