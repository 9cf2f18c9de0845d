"""Batch export on Ray: 8 synthetic bags on 1 vs 2 local workers, and Ray's per-task overhead.

Each bag is 30 frames of 320x240 RGB-D (gzip). "direct" calls the exporter in this process one
bag after another (the work Ray schedules); "ray N" is `run_batch` on a local Ray with N CPUs,
timed from submission to the last result (Ray start-up, ~7 s here, is shown apart). The
per-task overhead is (ray 1 worker - direct) / bags, and a no-op task's round trip.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from depth_annotation.batch import BatchOptions, ExportJob, run_batch
from depth_annotation.dataset import ExportOptions, export_bags, write_synthetic_bag

BAGS = int(os.environ.get("BENCH_BATCH_BAGS", "8"))
FRAMES = int(os.environ.get("BENCH_BATCH_FRAMES", "30"))


def _noop() -> int:
    return 0


def run() -> list[dict[str, object]]:
    import ray

    root = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    rows: list[dict[str, object]] = []
    try:
        bags = [root / "bags" / f"bag_{i}" for i in range(BAGS)]
        for i, bag in enumerate(bags):
            write_synthetic_bag(bag, frames=FRAMES, width=320, height=240, seed=i)
        frames = BAGS * FRAMES
        t0 = time.perf_counter()
        for bag in bags:
            export_bags([(bag, bag.name)], ExportOptions(out_dir=root / "direct" / bag.name), progress=False)
        direct = time.perf_counter() - t0
        rows.append(
            {
                "run": "direct (one process)",
                "bags/s": BAGS / direct,
                "frames/s": frames / direct,
                "s": direct,
                "start-up s": 0.0,
                "overhead ms/task": 0.0,
            }
        )
        for workers in (1, 2):
            t0 = time.perf_counter()
            ray.init(num_cpus=workers, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False)
            startup = time.perf_counter() - t0
            try:
                noop = ray.remote(num_cpus=1)(_noop)
                ray.get(noop.remote())  # a warm worker
                t1 = time.perf_counter()
                ray.get([noop.remote() for _ in range(50)])
                noop_ms = (time.perf_counter() - t1) / 50 * 1e3
                job = ExportJob(str(root / f"ray{workers}"), ExportOptions(out_dir=Path(".")))
                s = run_batch("export", [str(b) for b in bags], job, BatchOptions(progress=False))
            finally:
                ray.shutdown()
            assert not s.failed, s.failed
            rows.append(
                {
                    "run": f"ray {workers} worker(s)",
                    "bags/s": BAGS / s.seconds,
                    "frames/s": frames / s.seconds,
                    "s": s.seconds,
                    "start-up s": startup,
                    "overhead ms/task": (s.seconds - direct) / BAGS * 1e3 if workers == 1 else "",
                }
            )
        rows.append(
            {
                "run": "no-op task round trip",
                "bags/s": "",
                "frames/s": "",
                "s": "",
                "start-up s": "",
                "overhead ms/task": noop_ms,
            }
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows
