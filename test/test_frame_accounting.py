"""Frame bookkeeping and the hardware-clock mapping (pure Python, known answers)."""

import itertools

import pytest

from depth_annotation.capture import HardwareClockMapper, StreamCounter


def test_gaps_are_counted_exactly():
    c = StreamCounter("depth")
    gaps = [c.on_received(n, n * 33.3) for n in (1, 2, 3, 6, 7, 10)]
    assert gaps == [0, 0, 0, 2, 0, 2]
    assert (c.received, c.dropped, c.last_frame_number) == (6, 4, 10)


def test_duplicates_and_restarts_are_not_drops():
    c = StreamCounter("color")
    for n in (1, 2, 2, 3):
        c.on_received(n, 0.0)
    assert (c.received, c.duplicates, c.dropped) == (3, 1, 0)
    c.on_received(1, 0.0)  # device numbering restarted (reconnect)
    c.on_received(2, 0.0)
    assert (c.restarts, c.dropped, c.received) == (1, 0, 5)


def test_published_and_skipped_add_up():
    c = StreamCounter("aligned_depth")
    for n in range(1, 11):
        c.on_received(n, 0.0)
        (c.on_published if n % 3 else c.on_skipped)()
    assert c.published + c.skipped == c.received == 10
    assert c.to_dict()["frames_skipped"] == 3


def test_stamps_keep_hardware_spacing():
    m = HardwareClockMapper()
    host = 1_000_000_000_000
    stamps = [
        m.map(100.0 + 33.333 * i, host + int(i * 33.333e6) + jitter)
        for i, jitter in enumerate([5_000_000, 1_000_000, 9_000_000, 2_000_000, 7_000_000])
    ]
    diffs = [b - a for a, b in itertools.pairwise(stamps)]
    # host jitter (1-9 ms) does not reach the stamps once anchored at the least-latency frame
    assert all(d > 0 for d in diffs)
    assert diffs[-1] == pytest.approx(33_333_000, abs=10)
    assert stamps[-1] <= host + int(4 * 33.333e6) + 7_000_000  # never in the future


def test_backwards_hardware_clock_reanchors_and_stays_monotonic():
    m = HardwareClockMapper(max_lag_ns=60_000_000_000)  # so only the backwards clock can re-anchor here
    a = m.map(5000.0, 10_000_000_000)
    b = m.map(5033.3, 10_033_300_000)
    c = m.map(10.0, 10_050_000_000)  # device reset: hardware clock restarted
    d = m.map(43.3, 10_091_000_000)  # 33.3 ms later on the hardware clock, 41 ms later on arrival (host jitter)
    assert a < b < c < d
    assert m.anchors == 2  # the first frame and the reset
    assert c == 10_050_000_000  # re-anchored on the frame's arrival
    assert d - c == 33_300_000  # then the hardware spacing again, not the 41 ms of host time


def test_long_lag_reanchors():
    m = HardwareClockMapper(max_lag_ns=500_000_000)
    m.map(0.0, 1_000_000_000)
    s = m.map(1000.0, 3_000_000_000)  # hardware says 1 s later, host says 2 s: lag of 1 s
    assert m.anchors == 2
    assert s == 3_000_000_000  # re-anchored: the stamp is this frame's arrival time
    t = m.map(1033.3, 3_045_000_000)  # next frame: 33.3 ms later in hardware, 45 ms later on arrival
    assert t - s == 33_300_000  # hardware spacing from the new anchor, not host time
    assert m.anchors == 2


def test_lag_within_the_limit_keeps_the_anchor():
    m = HardwareClockMapper(max_lag_ns=500_000_000)
    m.map(0.0, 1_000_000_000)
    s = m.map(1000.0, 2_400_000_000)  # 400 ms behind the host clock: within max_lag, no re-anchor
    assert m.anchors == 1
    assert s == 2_000_000_000  # first arrival + 1 s of hardware time
