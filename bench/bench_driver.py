"""RealSense driver: sustained fps, per-frame cost, CPU and drops (synthetic camera, real SDK).

Align + spatial + temporal, as the node runs by default.

Default mode: filter and align in worker processes. The threads mode (all SDK work in
this process, where pyrealsense2 holds the GIL) is measured at 1280x720 for comparison.
CPU counts this process and its worker processes.
"""

from __future__ import annotations

import os
import time
from functools import partial

import psutil
import pyrealsense2 as rs

from depth_annotation.capture import (
    CaptureConfig,
    CapturePipeline,
    FilterChain,
    Profile,
    SyntheticSource,
    default_settings,
)

SECONDS = float(os.environ.get("BENCH_DRIVER_SECONDS", "8"))


def _sdk_cost(profile: Profile) -> tuple[float, float]:
    """Single-threaded SDK cost (filters, align) in ms per frame on one captured frameset."""
    src = SyntheticSource(profile, profile)
    try:
        frames = None
        while frames is None or frames.size() < 2:
            frames = src.wait(2000)
        frames.keep()
        chain, align = FilterChain(default_settings()), rs.align(rs.stream.color)
        n = 20
        t0 = time.perf_counter()
        for _ in range(n):
            filtered = chain.process(frames).as_frameset()
        t1 = time.perf_counter()
        for _ in range(n):
            align.process(filtered)
        t2 = time.perf_counter()
    finally:
        src.close()
    return (t1 - t0) / n * 1000.0, (t2 - t1) / n * 1000.0


def cpu_seconds(procs: list[psutil.Process]) -> float:
    """CPU seconds of the given processes (user + system); ones that have exited count 0."""
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


CASES = (((640, 480), True), ((848, 480), True), ((1280, 720), True), ((1280, 720), False))


def run() -> list[dict]:
    rows = []
    me = psutil.Process()
    for (w, h), processes in CASES:
        profile = Profile(w, h, 30)
        filt_ms, align_ms = _sdk_cost(profile)
        published: list[float] = []
        config = CaptureConfig(sdk_processes=processes)
        pipe = CapturePipeline(
            partial(SyntheticSource, profile, profile), config, lambda f, out=published: out.append(f.processing_ms)
        )
        pipe.start()
        time.sleep(1.0)  # let the first frames through
        procs = [me, *me.children(recursive=True)]
        n0, c0, t0 = len(published), cpu_seconds(procs), time.perf_counter()
        sent0 = pipe.counters["depth"].received + pipe.counters["depth"].dropped
        skipped0 = pipe.counters["depth"].skipped
        time.sleep(SECONDS)
        n1, c1, t1 = len(published), cpu_seconds(procs), time.perf_counter()
        d = pipe.counters["depth"]
        sent = d.received + d.dropped - sent0
        pipe.stop()
        lat = sorted(published[n0:n1]) or [0.0]
        rows.append(
            {
                "resolution": f"{w}x{h}@30",
                "SDK work in": "processes" if pipe.workers is not None else "threads",
                "SDK filters ms": filt_ms,
                "SDK align ms": align_ms,
                "SDK total ms": filt_ms + align_ms,
                "published fps": (n1 - n0) / (t1 - t0),
                "published %": 100.0 * (n1 - n0) / max(sent, 1),
                "sensor drops": d.dropped,
                "skipped (behind)": d.skipped - skipped0,
                "latency p50 ms": lat[len(lat) // 2],
                "latency p95 ms": lat[int(len(lat) * 0.95)],
                "CPU % (of 1 core)": 100.0 * (c1 - c0) / (t1 - t0),
            }
        )
    return rows
