"""SDK filter and align in worker processes: same output as in-process, bit for bit; failures handled.

Everything runs the real RealSense SDK (software_device frames), in real child processes.
"""

import itertools
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import psutil
import pyrealsense2 as rs
import pytest
from test_capture_pipeline import VGA, Collector

from depth_annotation.capture import (
    CaptureConfig,
    CapturePipeline,
    FilterChain,
    FilterSettings,
    ReplayError,
    SdkWorkers,
    SoftwareReplay,
    StreamGeometry,
    SyntheticSource,
    VideoGeometry,
    default_settings,
)


def with_decimation():
    return [
        FilterSettings(s.name, True if s.name in ("decimation", "hole_filling") else s.enabled, s.options)
        for s in default_settings()
    ]


@pytest.fixture(scope="module")
def framesets():
    """Ten consecutive framesets of the synthetic camera (each static-scene frame has its own noise)."""
    src = SyntheticSource(VGA, VGA, seed=3)
    out = []
    try:
        while len(out) < 10:
            fs = src.wait(2000)
            if fs is not None and fs.size() == 2:
                fs.keep()
                out.append(fs)
        yield out  # the camera stays open: its frames' sensors must outlive every use
    finally:
        src.close()


def in_process(framesets, settings):
    chain, align = FilterChain(settings), rs.align(rs.stream.color)
    results = []
    for fs in framesets:
        filtered = chain.process(fs).as_frameset()
        depth = filtered.get_depth_frame()
        aligned = align.process(filtered).get_depth_frame()
        results.append(
            (
                np.array(np.asanyarray(depth.get_data())),
                VideoGeometry.from_profile(depth.get_profile()),
                np.array(np.asanyarray(aligned.get_data())),
            )
        )
    return results


@pytest.mark.parametrize(
    "settings", [default_settings(), with_decimation()], ids=["spatial+temporal", "decimation+hole_filling"]
)
def test_workers_match_the_sdk_in_process_bit_for_bit(framesets, settings):
    expected = in_process(framesets, settings)
    workers = SdkWorkers(settings, disparity_domain=True, align=True)
    workers.start()
    try:
        assert workers.wait_ready(30) is None
        workers.configure(StreamGeometry.from_frames(framesets[0]))
        for i, fs in enumerate(framesets):  # in order: the temporal filter's state must match too
            depth = fs.get_depth_frame()
            assert workers.submit(
                np.asanyarray(depth.get_data()), depth.get_frame_number(), depth.get_timestamp(), i, timeout=5
            )
            got = None
            deadline = time.monotonic() + 10
            while got is None and time.monotonic() < deadline:
                got = workers.receive(0.5)
            assert got is not None and got.tag == i
            want_depth, want_geometry, want_aligned = expected[i]
            assert got.depth_geometry == want_geometry
            np.testing.assert_array_equal(got.depth, want_depth)
            np.testing.assert_array_equal(got.aligned, want_aligned)
    finally:
        workers.close()
    assert (expected[0][0] > 0).mean() > 0.5 and (expected[0][2] > 0).mean() > 0.5  # not trivially equal
    if settings[0].enabled:
        assert expected[0][1].width == 320  # decimated, and align consumed the decimated stream


def test_replay_rejects_a_wrong_shape(framesets):
    replay = SoftwareReplay(StreamGeometry.from_frames(framesets[0]))
    try:
        with pytest.raises(ReplayError, match="depth must be uint16 480x640"):
            replay.depth_frame(np.zeros((240, 320), np.uint16), 1, 0.0)
    finally:
        replay.close()


def test_a_killed_worker_is_replaced_and_frames_keep_coming(caplog):
    out = Collector()
    pipe = CapturePipeline(lambda: SyntheticSource(VGA, VGA), CaptureConfig(reconnect_initial_s=0.2), out)
    pipe.start()
    try:
        assert pipe.workers is not None
        assert out.wait_for(10, 20)
        with caplog.at_level(logging.ERROR):
            pipe.workers._procs[0].kill()  # the filter stage
            deadline = time.monotonic() + 20
            while pipe.workers.restarts == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            n = len(out.frames)
            assert out.wait_for(n + 20, 20), f"{len(out.frames) - n} frames after the restart"
    finally:
        pipe.stop()
    assert pipe.workers.restarts == 1
    assert "SDK filter worker exited with code -9" in caplog.text
    stamps = [f.stamp_ns for f in out.frames]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    c = pipe.counters["depth"]
    assert c.published == len(out.frames) and c.published + c.skipped <= c.received
    assert c.dropped == 0


def test_workers_that_do_not_start_in_time_fall_back_to_threads(caplog):
    out = Collector()
    pipe = CapturePipeline(lambda: SyntheticSource(VGA, VGA), CaptureConfig(worker_start_timeout_s=0.0), out)
    with caplog.at_level(logging.WARNING):
        pipe.start()
    try:
        assert pipe.workers is None
        assert "filter and align run in this process instead" in caplog.text
        assert out.wait_for(5, 20)
        assert out.frames[-1].aligned_depth_mm is not None
    finally:
        pipe.stop()


PARENT = textwrap.dedent(
    """
    import sys, time
    from depth_annotation.capture.filters import default_settings
    from depth_annotation.capture.sdk_workers import SdkWorkers
    w = SdkWorkers(default_settings(), disparity_domain=True, align=True)
    w.start()
    assert w.wait_ready(30) is None
    print(" ".join(str(p.pid) for p in w._procs), flush=True)
    time.sleep(60)
    """
)


def _gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_workers_exit_when_their_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and not any(_gone(p) for p in pids)
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
    deadline = time.monotonic() + 10
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(p) for p in pids)
