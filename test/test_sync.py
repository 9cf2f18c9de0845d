"""The stamp synchronizer (dataset/sync.py) on small hand-made recordings, each answer worked out by hand
from the rules in its docstring: when a frame is decided (liveness), how buffers are bounded, how every
message is counted, and what sticky and optional streams give. The random-recording laws are in
test_properties_sync.py."""

import pytest

from depth_annotation.dataset import sync


def feed(s, messages):
    """Add (stream, stamp) messages in order; each item is (stream, stamp). Returns the frames as
    (stamp, {stream: stamp of its item}) pairs, and how many frames each add() returned."""
    frames, per_add = [], []
    for stream, stamp in messages:
        got = s.add(stream, stamp, (stream, stamp))
        per_add.append(len(got))
        frames += got
    return frames, per_add


def described(frames):
    out = []
    for f in frames:
        assert all(item[0] == name for name, item in f.items.items())
        out.append((f.stamp_ns, {name: item[1] for name, item in f.items.items()}))
    return out


def counts(s):
    return {name: c.to_dict() for name, c in s.counts.items()}


def test_counts_as_a_dict_name_every_field():
    c = sync.StreamCounts(received=7, matched=4, unmatched=2, dropped=1)
    assert c.to_dict() == {"received": 7, "matched": 4, "unmatched": 2, "dropped": 1}


def test_unknown_stream_is_named():
    s = sync.StampSynchronizer("depth", ["color"])
    with pytest.raises(KeyError, match="unknown stream 'colour'"):
        s.add("colour", 1, None)


def test_default_tolerance_is_one_sixtieth_of_a_second_inclusive():
    tol = 16_666_666
    for offset, paired in ((tol, True), (tol + 1, False), (-tol, True), (-tol - 1, False)):
        s = sync.StampSynchronizer("depth", ["color"])
        frames, _ = feed(s, [("depth", 10**9), ("color", 10**9 + offset)])
        assert [f.stamp_ns for f in frames + s.flush()] == ([10**9] if paired else []), offset


def test_default_buffer_holds_300_messages_per_stream():
    s = sync.StampSynchronizer("depth", ["color"])
    feed(s, [("color", t) for t in range(300)])
    assert s.counts["color"].dropped == 0
    feed(s, [("color", 300)])
    assert s.counts["color"].dropped == 1


def test_a_full_buffer_drops_its_oldest_message_and_counts_it():
    s = sync.StampSynchronizer("depth", ["color"], tolerance_ns=0, max_buffer=3)
    feed(s, [("color", 100), ("color", 200), ("color", 300)])
    assert counts(s)["color"] == {"received": 3, "matched": 0, "unmatched": 0, "dropped": 0}
    feed(s, [("color", 400), ("color", 500)])  # 100, then 200 overflow
    assert counts(s)["color"] == {"received": 5, "matched": 0, "unmatched": 0, "dropped": 2}
    frames, _ = feed(s, [("depth", 200), ("depth", 300)])  # 200 was dropped: no colour left for it
    frames += s.flush()
    assert described(frames) == [(300, {"depth": 300, "color": 300})]
    assert counts(s)["color"] == {"received": 5, "matched": 1, "unmatched": 2, "dropped": 2}
    assert counts(s)["depth"] == {"received": 2, "matched": 1, "unmatched": 1, "dropped": 0}


def test_a_frame_is_decided_as_soon_as_every_stream_reaches_its_horizon():
    """Horizon = frame stamp + tolerance: a stamp at the horizon already decides (nothing nearer can come)."""
    s = sync.StampSynchronizer("depth", ["color"], tolerance_ns=10)
    frames, per_add = feed(s, [("depth", 100), ("color", 95), ("color", 109), ("color", 110)])
    assert per_add == [0, 0, 0, 1]
    assert described(frames) == [(100, {"depth": 100, "color": 95})]  # 95 and 110 are 5 and 10 away
    assert s.flush() == []


def test_an_optional_stream_that_never_sent_holds_no_frame_back():
    s = sync.StampSynchronizer("depth", ["color"], optional=["quality"], tolerance_ns=10)
    frames, per_add = feed(s, [("depth", 100), ("color", 100), ("color", 200)])
    assert per_add == [0, 0, 1]
    assert described(frames) == [(100, {"depth": 100, "color": 100})]


def test_an_optional_stream_that_has_sent_is_waited_for_even_from_stamp_zero():
    """An optional stream counts as present from its first message, whatever its stamp (0 included)."""
    s = sync.StampSynchronizer("depth", ["color"], optional=["quality"], tolerance_ns=10)
    frames, per_add = feed(
        s, [("quality", 0), ("depth", 5), ("color", 5), ("color", 100), ("quality", 5), ("quality", 100)]
    )
    assert per_add == [0, 0, 0, 0, 0, 1]
    assert described(frames) == [(5, {"depth": 5, "color": 5, "quality": 5})]  # 5 is nearer than 0


def test_an_optional_sticky_stream_lends_its_latest_earlier_message():
    s = sync.StampSynchronizer("depth", ["color"], optional=["info"], sticky=["info"], tolerance_ns=10)
    frames, _ = feed(s, [("info", 0), ("depth", 100), ("color", 100), ("color", 200), ("info", 300)])
    frames += s.flush()
    assert described(frames) == [(100, {"depth": 100, "color": 100, "info": 0})]


def test_every_message_counted_once_with_a_colour_message_shared_by_two_frames():
    s = sync.StampSynchronizer("depth", ["color"], tolerance_ns=10)
    frames, _ = feed(s, [("depth", 100), ("depth", 108), ("color", 104), ("color", 300), ("depth", 200)])
    frames += s.flush()
    assert described(frames) == [(100, {"depth": 100, "color": 104}), (108, {"depth": 108, "color": 104})]
    assert counts(s) == {
        "depth": {"received": 3, "matched": 2, "unmatched": 1, "dropped": 0},  # 200: no colour within 10
        "color": {"received": 2, "matched": 1, "unmatched": 1, "dropped": 0},  # 104 once, 300 never
    }


def test_a_long_recording_in_bounded_buffers_drops_nothing():
    """Bag order, 20 frames; colour and camera_info at twice the depth rate (every other one unmatched),
    buffers of 3: what no later frame can use leaves the buffer as it goes (unmatched), so nothing overflows."""
    s = sync.StampSynchronizer("depth", ["color", "info"], sticky=["info"], tolerance_ns=2, max_buffer=3)
    messages = []
    for t in range(100, 2001, 50):
        if t % 100 == 0:
            messages.append(("depth", t))
        messages += [("color", t), ("info", t)]
    frames, _ = feed(s, messages)
    assert len(frames) == 19  # the last one waits for a stamp past its horizon, or the flush
    frames += s.flush()
    assert described(frames) == [(t, {"depth": t, "color": t, "info": t}) for t in range(100, 2001, 100)]
    both = {"received": 39, "matched": 20, "unmatched": 19, "dropped": 0}
    assert counts(s) == {
        "depth": {"received": 20, "matched": 20, "unmatched": 0, "dropped": 0},
        "color": both,
        "info": both,
    }


def test_unmatched_depth_frames_are_counted_unmatched_not_dropped():
    s = sync.StampSynchronizer("depth", ["color"], tolerance_ns=10)
    frames, _ = feed(s, [("depth", 100), ("color", 500), ("depth", 600)])
    assert frames == []
    assert counts(s)["depth"] == {"received": 2, "matched": 0, "unmatched": 1, "dropped": 0}
    assert s.flush() == []
    assert counts(s)["depth"] == {"received": 2, "matched": 0, "unmatched": 2, "dropped": 0}
    assert counts(s)["color"] == {"received": 1, "matched": 0, "unmatched": 1, "dropped": 0}


def test_a_sticky_message_pushed_out_of_a_full_buffer_still_serves_a_frame_at_its_stamp():
    """camera_info 100 overflows (buffer of 2) before depth 100 arrives: it is the latest info not newer
    than the frame, so the frame gets it."""
    s = sync.StampSynchronizer("depth", ["color", "info"], sticky=["info"], tolerance_ns=0, max_buffer=2)
    feed(s, [("color", 100), ("info", 100), ("info", 200), ("info", 300)])
    assert s.counts["info"].dropped == 1
    frames, _ = feed(s, [("depth", 100)])
    assert described(frames) == [(100, {"depth": 100, "color": 100, "info": 100})]


def test_sparse_camera_info_between_frames_serves_every_frame_and_fits_a_buffer_of_two():
    """camera_info every other frame, stamped between frames (never within the tolerance of one): each frame
    gets the latest earlier one; it leaves the buffer once a newer one has arrived, so two slots suffice."""
    s = sync.StampSynchronizer("depth", ["color", "info"], sticky=["info"], tolerance_ns=2, max_buffer=2)
    messages = [("info", 50)]
    for t in range(100, 1001, 100):
        messages += [("depth", t), ("color", t)] + ([("info", t + 150)] if t % 200 == 100 else [])
    frames, _ = feed(s, messages)
    frames += s.flush()
    latest_info = {t: max(i for i in (50, 250, 450, 650, 850, 1050) if i <= t) for t in range(100, 1001, 100)}
    assert described(frames) == [(t, {"depth": t, "color": t, "info": latest_info[t]}) for t in range(100, 1001, 100)]
    assert counts(s)["info"] == {"received": 6, "matched": 0, "unmatched": 6, "dropped": 0}


def test_a_late_frame_pairs_with_what_is_no_older_than_the_decided_frame_less_the_tolerance():
    """Live arrival out of stamp order (tolerance 15). Frame 30 is decided first (colour 30, camera_info 0:
    the latest earlier one); colour 15 = 30 - 15 is still usable by a frame at 30, so it stays buffered, and
    the late frame 12 gets it (3 away; colour 30 is 18 away)."""
    s = sync.StampSynchronizer("depth", ["color", "info"], sticky=["info"], tolerance_ns=15)
    frames, _ = feed(s, [("info", 0), ("color", 15), ("color", 30), ("color", 60), ("info", 60), ("depth", 30)])
    assert described(frames) == [(30, {"depth": 30, "color": 30, "info": 0})]
    frames, _ = feed(s, [("depth", 12)])
    assert described(frames) == [(12, {"depth": 12, "color": 15, "info": 0})]
