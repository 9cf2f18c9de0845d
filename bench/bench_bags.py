"""Bag reading: the recovering reader on a bag cut at 90 % vs the indexed reader on the intact bag.

640x480 RGB-D frames (our writer), every message of the four camera topics read as raw CDR
bytes. "ours, intact" is `bag_io.open_bag` on the intact bag (mcap: the summary for topics and
counts, chunks read and CRC-checked by the mcap library; sqlite3: rosbags through its index);
"rosbags indexed" is rosbags' own per-file reader; "ours, cut 90 %" is the same `open_bag` on a
copy cut at 90 % (mcap: a first pass for channels and counts, then the read; sqlite3: row
headers, then each row by id). MB/s counts message bytes returned.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from rosbags.rosbag2 import Reader

from depth_annotation.dataset import DEFAULT_TOPICS, BagTruncatedError, bag_io, write_synthetic_bag

FRAMES = int(os.environ.get("BENCH_BAGS_FRAMES", "90"))
WANTED = [DEFAULT_TOPICS[k] for k in ("depth", "color", "info", "quality")]


def _ours(bag: Path) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    n = nbytes = 0
    try:
        with bag_io.open_bag(bag) as r:
            for m in r.raw_messages(WANTED):
                n += 1
                nbytes += len(m.data)
    except BagTruncatedError:
        pass
    return time.perf_counter() - t0, n, nbytes


def _rosbags(file: Path) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    n = nbytes = 0
    with Reader(file) as r:
        conns = [c for c in r.connections if c.topic in WANTED]
        for _, _, data in r.messages(connections=conns):
            n += 1
            nbytes += len(data)
    return time.perf_counter() - t0, n, nbytes


def _row(storage: str, reader: str, result: tuple[float, int, int]) -> dict[str, object]:
    dt, n, nbytes = result
    return {
        "storage": storage,
        "reader": reader,
        "messages": n,
        "MB": nbytes / 1e6,
        "s": dt,
        "MB/s": nbytes / 1e6 / dt,
        "msg/s": n / dt,
    }


def run() -> list[dict[str, object]]:
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-bags-"))
    try:
        for storage in ("mcap", "sqlite3"):
            bag = tmp / storage
            write_synthetic_bag(bag, frames=FRAMES, storage=storage)
            file = next(p for p in bag.iterdir() if p.name != "metadata.yaml")
            cut = tmp / f"{storage}_cut"
            cut.mkdir()
            shutil.copy(bag / "metadata.yaml", cut)
            data = file.read_bytes()
            (cut / file.name).write_bytes(data[: int(len(data) * 0.9)])
            for _ in range(2):  # the second round is timed (page cache warm for both)
                intact, indexed, recovered = _ours(bag), _rosbags(file), _ours(cut)
            rows += [
                _row(storage, "rosbags indexed, intact", indexed),
                _row(storage, "ours, intact", intact),
                _row(storage, "ours recovering, cut 90 %", recovered),
            ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows
