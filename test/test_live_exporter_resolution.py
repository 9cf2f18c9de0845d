"""live_exporter_node at a resolution change: the first frame at the new size keeps its colour and
camera_info, which arrive before its depth (they were dropped as 'another size', so every new
episode lost its first frame)."""

from __future__ import annotations

import h5py
from test_node_faults import Feeder

S = 1_000_000_000
STEP = 33_000_000


def test_the_first_frame_at_a_new_resolution_opens_the_next_episode(ros, procs, tmp_path):
    out = tmp_path / "ds"
    exporter = procs.node("live_exporter_node", params={"output_dir": str(out), "every_k": 1000})
    feed = Feeder(ros, "resolution_feeder")
    assert feed.ready()
    feed.prime()  # frames stamped before S, at the first size: nothing of the test's lost to discovery
    for i in range(10):
        feed.send(S + i * STEP, 64, 48)
    for i in range(10, 16):  # each frame: camera_info, colour, then depth (as Feeder.send publishes them)
        feed.send(S + i * STEP, 128, 96)
    ros.spin_until(lambda: False, timeout=2.0)
    assert exporter.stop(timeout=60) == 0
    with h5py.File(out / "export" / "dataset.h5") as h5:
        stamps = [list(h5[name]["timestamps_ns"][:]) for name in sorted(h5) if name.startswith("episode_")]
        shapes = [h5[name]["color"].shape[1:3] for name in sorted(h5) if name.startswith("episode_")]
    assert shapes == [(48, 64), (96, 128)], shapes
    assert stamps[1][0] == S + 10 * STEP, stamps  # the first 128x96 frame, colour and all
    assert stamps[0][-1] == S + 9 * STEP, stamps


def test_the_first_frame_after_a_stamp_gap_opens_the_next_episode(ros, procs, tmp_path):
    """A stamp gap longer than episode_gap_s ends the episode: the first frame after it keeps its colour
    and camera_info, which arrive before its depth (they went into the old episode, unmatched)."""
    out = tmp_path / "ds"
    exporter = procs.node("live_exporter_node", params={"output_dir": str(out), "every_k": 1000, "episode_gap_s": 1.0})
    feed = Feeder(ros, "gap_feeder")
    assert feed.ready()
    feed.prime()
    later = S + 5_000_000_000  # 5 s of stamps later, sent at once: a stamp gap, not a pause in delivery
    for i in range(6):
        feed.send(S + i * STEP, 64, 48)
    for i in range(6):
        feed.send(later + i * STEP, 64, 48)
    ros.spin_until(lambda: False, timeout=2.0)
    assert exporter.stop(timeout=60) == 0
    assert "s stamp gap: " in exporter.output(), exporter.output()
    with h5py.File(out / "export" / "dataset.h5") as h5:
        episodes = [list(h5[name]["timestamps_ns"][:]) for name in sorted(h5) if name.startswith("episode_")]
    ours = [e for e in episodes if e[-1] >= S]  # the priming frames end an episode of their own (a 2 s pause)
    assert len(ours) == 2 and ours[0][-1] == S + 5 * STEP, episodes
    assert ours[1] == [later + i * STEP for i in range(6)], episodes  # the first frame after the gap included
