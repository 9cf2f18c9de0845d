"""Frame stamps follow the frame's timestamp domain (through the real SDK's software_device).

A D4xx in `global_time` already stamps on the host clock: realsense-ros uses it as-is, and so
do we; `hardware_clock` goes through our anchor to the host clock (capture/hw_clock.py); the
domain is recorded in capture_metadata.json.
"""

import json
import threading
import time

from depth_annotation.capture import (
    CaptureConfig,
    CapturePipeline,
    FilterSettings,
    Profile,
    SyntheticSource,
    build_metadata,
    default_settings,
    write_metadata,
)

VGA = Profile(640, 480, 30)
HOST_NS = 123_000_000_000  # a host clock far from the wall clock: a mapped stamp lands near it


def capture(domain, n=5, timeout=60.0):
    t0 = time.monotonic_ns()
    frames = []
    done = threading.Event()

    def on_frame(f):
        frames.append(f)
        if len(frames) >= n:
            done.set()

    config = CaptureConfig(
        filters=[FilterSettings(s.name, False, s.options) for s in default_settings()], sdk_processes=False
    )
    pipe = CapturePipeline(
        lambda: SyntheticSource(VGA, VGA, timestamp_domain=domain),
        config,
        on_frame,
        clock_ns=lambda: HOST_NS + time.monotonic_ns() - t0,
    )
    pipe.start()
    try:
        assert done.wait(timeout), pipe.message
    finally:
        pipe.stop()
    return pipe, frames[:n]


def test_global_time_stamps_pass_through_unchanged(tmp_path):
    before = time.time_ns()
    pipe, frames = capture("global_time")
    assert pipe.timestamp_domain == "global_time"
    for f in frames:
        assert f.stamp_ns == int(round(f.hw_timestamp_ms * 1e6))  # the SDK's host-clock ms, as-is
        assert before - 5e9 < f.stamp_ns < time.time_ns() + 5e9  # the wall clock, not the pipeline's host clock
    data = build_metadata(
        session_id="s",
        info=pipe.info,
        filters=pipe.chain.settings,
        align=True,
        warmup_s=0.0,
        counters=pipe.counters,
        started_ns=HOST_NS,
        stopped_ns=None,
        temperatures={},
        timestamp_domain=pipe.timestamp_domain,
    )
    written = json.loads(write_metadata(tmp_path, data).read_text())
    assert written["timing"]["timestamp_domain"] == "global_time"
    assert "as-is" in written["timing"]["stamps"]


def test_hardware_clock_stamps_are_anchored_to_the_host_clock():
    pipe, frames = capture("hardware_clock")
    assert pipe.timestamp_domain == "hardware_clock"
    stamps = [f.stamp_ns for f in frames]
    # on the pipeline's host clock (HOST_NS plus the seconds it ran), never the SDK value itself
    assert all(HOST_NS <= s < HOST_NS + 60 * 10**9 for s in stamps), stamps
    assert all(abs(s - f.hw_timestamp_ms * 1e6) > 1e9 for s, f in zip(stamps, frames, strict=True))
    assert stamps == sorted(set(stamps))
