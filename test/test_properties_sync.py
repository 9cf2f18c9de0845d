"""Properties of the stamp synchronizer (dataset/sync.py), on random recordings.

The exporter's configuration: primary `depth`, required `color`, required and sticky `info`,
optional `quality`. Whatever the stamps and the arrival order, no frame pairs messages further
apart than the tolerance (sticky `info` may be older, never newer), and every message is counted
once as matched, unmatched or dropped. When each stream arrives in its own stamp order (bag order,
or streams interleaved any other way) the choice is also the best one, checked by brute force: a
frame for every depth message with a colour message within the tolerance (and `info` within it
or before), paired with the nearest (ties to the earlier).
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from depth_annotation.dataset import sync

SETTINGS = settings(max_examples=100, deadline=None)
MS = 1_000_000


@st.composite
def recordings(draw):
    """(tolerance_ns, {stream: sorted unique stamps}) around a depth stream with jittered periods."""
    tol = draw(st.integers(0, 20 * MS))
    n = draw(st.integers(1, 30))
    steps = draw(st.lists(st.integers(1, 60 * MS), min_size=n, max_size=n))
    depth = list(np.cumsum(steps) + 10**9)
    near = st.integers(-3 * tol - MS, 3 * tol + MS)  # inside and outside the tolerance
    color = {int(t) + draw(near) for t in depth if draw(st.booleans()) or draw(st.booleans())}
    color |= set(draw(st.lists(st.integers(10**9 - 100 * MS, int(depth[-1]) + 100 * MS), max_size=5)))
    # camera_info: with most depth frames (as drivers publish it), or a few now and then
    if draw(st.booleans()):
        info = {int(t) for t in depth if draw(st.integers(0, 9))}
    else:
        info = {int(t) for t in draw(st.lists(st.sampled_from(depth), max_size=3))}
    info.add(int(depth[0]) + draw(near))
    quality = {int(t) + draw(st.integers(-tol, tol)) for t in depth if draw(st.booleans())}
    streams = {
        "depth": [int(t) for t in depth],
        "color": sorted(color),
        "info": sorted(info),
        "quality": sorted(quality),
    }
    return tol, streams


def synchronize(tol, messages):
    s = sync.StampSynchronizer(
        "depth", ["color", "info"], optional=["quality"], sticky=["info"], tolerance_ns=tol, max_buffer=1000
    )
    frames = []
    for stream, stamp in messages:
        frames += s.add(stream, stamp, (stream, stamp))  # the item says where it came from
    frames += s.flush()
    return s, frames


def check_frames_and_counts(tol, streams, s, frames, *, streams_in_order=True):
    assert len({f.stamp_ns for f in frames}) == len(frames)  # a depth frame is emitted at most once
    for f in frames:
        assert f.items["depth"] == ("depth", f.stamp_ns)
        assert set(f.items) >= {"depth", "color", "info"}
        for name, (source, stamp) in f.items.items():
            assert source == name
            if name == "info":  # sticky: an older one may stand in, never a later one
                assert stamp <= f.stamp_ns + tol or not streams_in_order, (stamp, f.stamp_ns, tol)
            else:
                assert abs(stamp - f.stamp_ns) <= tol, (name, stamp, f.stamp_ns, tol)
    for name, c in s.counts.items():
        assert c.received == len(streams[name]) == c.matched + c.unmatched + c.dropped, (name, c)
    assert s.counts["depth"].matched == len(frames)


@SETTINGS
@given(recordings(), st.randoms(use_true_random=False), st.integers(0, 100 * MS), st.booleans())
def test_never_pairs_beyond_the_tolerance_whatever_the_arrival_times(recording, rnd, max_delay, reorder):
    """Live arrival: every message delayed by up to max_delay, so the streams interleave out of stamp order.
    Each stream keeps its own order (one DDS writer delivers in order) unless `reorder`: then the tolerance
    still holds for every stream that is matched by stamp (all but the sticky one)."""
    tol, streams = recording
    arrivals = []
    for name, stamps in streams.items():
        last = 0
        for t in stamps:
            arrival = t + rnd.randint(0, max_delay)
            last = arrival if reorder else max(last, arrival)
            arrivals.append((last, name, t))
    arrivals.sort()
    s, frames = synchronize(tol, [(name, t) for _, name, t in arrivals])
    check_frames_and_counts(tol, streams, s, frames, streams_in_order=not reorder)


@SETTINGS
@given(recordings(), st.randoms(use_true_random=False), st.booleans())
def test_streams_in_stamp_order_get_every_pairable_frame_with_its_nearest_match(recording, rnd, bag_order):
    tol, streams = recording
    if bag_order:  # by stamp; equal stamps in any stream order
        messages = [(name, t) for name, stamps in streams.items() for t in stamps]
        rnd.shuffle(messages)
        messages.sort(key=lambda m: m[1])
    else:  # each stream in order, the streams interleaved at random (one may come long after the others)
        queues = {name: list(stamps) for name, stamps in streams.items() if stamps}
        messages = []
        while queues:
            name = rnd.choice(sorted(queues))
            messages.append((name, queues[name].pop(0)))
            if not queues[name]:
                del queues[name]
    s, frames = synchronize(tol, messages)
    check_frames_and_counts(tol, streams, s, frames)

    def nearest(stamps, t):
        best = min(stamps, key=lambda c: (abs(c - t), c), default=None)
        return best if best is not None and abs(best - t) <= tol else None

    def has_info(t):
        return nearest(streams["info"], t) is not None or min(streams["info"]) <= t

    expected = [t for t in streams["depth"] if nearest(streams["color"], t) is not None and has_info(t)]
    assert [f.stamp_ns for f in frames] == expected
    for f in frames:
        assert f.items["color"] == ("color", nearest(streams["color"], f.stamp_ns))
        info = nearest(streams["info"], f.stamp_ns)
        if info is None:  # none within the tolerance: the latest earlier one (there is one: frames need info)
            info = max(t for t in streams["info"] if t <= f.stamp_ns)
        assert f.items["info"] == ("info", info)


def test_a_late_frame_never_gets_a_newer_sticky_camera_info():
    """Depth arriving out of stamp order must not pair with camera_info newer than itself (found by hypothesis)."""
    s = sync.StampSynchronizer("depth", ["color", "info"], sticky=["info"], tolerance_ns=0, max_buffer=1000)
    base = 1_000_000_000
    arrivals = [("color", 900_000_000), ("depth", 1), ("color", 2), ("depth", 2), ("color", 1), ("depth", 5),
                ("info", 4), ("color", 8), ("info", 8), ("color", 3), ("depth", 3), ("depth", 8)]  # fmt: skip
    frames = []
    for stream, offset in arrivals:
        stamp = offset if offset >= base else base + offset
        frames += s.add(stream, stamp, (stream, stamp))
    frames += s.flush()
    for frame in frames:
        if "info" in frame.items:
            assert frame.items["info"][1] <= frame.stamp_ns, (frame.stamp_ns, frame.items["info"])
