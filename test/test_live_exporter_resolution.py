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
