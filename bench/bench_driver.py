"""RealSense driver: sustained fps, per-frame cost, CPU and drops (synthetic camera, real SDK), align + spatial + temporal."""

from __future__ import annotations

import os
import resource
import time

import pyrealsense2 as rs

from depth_annotation.core.capture_pipeline import CaptureConfig, CapturePipeline
from depth_annotation.core.rs_filters import FilterChain, default_settings
from depth_annotation.core.rs_sources import SyntheticSource
from depth_annotation.core.rs_synthetic import Profile

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


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run() -> list[dict]:
    rows = []
    for w, h in ((640, 480), (848, 480), (1280, 720)):
        profile = Profile(w, h, 30)
        filt_ms, align_ms = _sdk_cost(profile)
        published = []
        pipe = CapturePipeline(lambda: SyntheticSource(profile, profile), CaptureConfig(), lambda f: published.append(f.processing_ms))
        pipe.start()
        time.sleep(1.0)  # let the first frames through
        n0, c0, t0 = len(published), _cpu_s(), time.perf_counter()
        sent0 = pipe.counters["depth"].received + pipe.counters["depth"].dropped
        time.sleep(SECONDS)
        n1, c1, t1 = len(published), _cpu_s(), time.perf_counter()
        d = pipe.counters["depth"]
        sent = d.received + d.dropped - sent0
        pipe.stop()
        lat = sorted(published[n0:n1]) or [0.0]
        rows.append({
            "resolution": f"{w}x{h}@30",
            "SDK filters ms": filt_ms,
            "SDK align ms": align_ms,
            "SDK total ms": filt_ms + align_ms,
            "published fps": (n1 - n0) / (t1 - t0),
            "published %": 100.0 * (n1 - n0) / max(sent, 1),
            "sensor drops": d.dropped,
            "skipped (behind)": d.skipped,
            "latency p50 ms": lat[len(lat) // 2],
            "CPU % (of 1 core)": 100.0 * (c1 - c0) / (t1 - t0),
        })
    return rows
