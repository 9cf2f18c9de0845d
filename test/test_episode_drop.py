"""Dropping an unfinished episode (the writer failed part-way): the file holds only complete episodes.

Known answers: constant frames whose values name their episode, so what is read back says which
episode's pixels survived; the synthetic bag's rendered frames for the session-level test.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from depth_annotation.common import default_intrinsics
from depth_annotation.dataset import (
    DEFAULT_TOPICS,
    EpisodeMeta,
    ExportError,
    ExportOptions,
    ExportSession,
    Hdf5DatasetWriter,
    bag_io,
    check_report,
    write_synthetic_bag,
)

W, H = 32, 24


def meta(scene: str) -> EpisodeMeta:
    return EpisodeMeta(scene_id=scene, source="test", topics={}, intrinsics=default_intrinsics(W, H))


def frame(value: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((H, W), value, np.uint16), np.full((H, W, 3), value % 256, np.uint8)


@pytest.mark.parametrize("codec", ["gzip", "lzf"])  # the pooled direct-chunk path and h5py's own path
def test_drop_episode_removes_the_unfinished_episode_and_the_next_takes_its_place(tmp_path, codec):
    path = tmp_path / "d.h5"
    with Hdf5DatasetWriter(path, codec=codec) as writer:
        first = writer.begin_episode(meta("a"), (H, W))
        for i in range(3):
            first.append(10 + i, *frame(1000))
        first.finish()
        broken = writer.begin_episode(meta("b"), (H, W))
        for i in range(70):  # past the first GROW block, with frames still in the compression pool
            broken.append(100 + i, *frame(2000))
        broken.discard()
        assert writer.episodes == [first]
        with pytest.raises(ExportError, match="episode_1 was dropped"):
            broken.append(500, *frame(2000))
        with pytest.raises(ExportError, match="was dropped"):
            broken.finish()
        again = writer.begin_episode(meta("c"), (H, W))
        assert again.index == 1
        for i in range(2):
            again.append(200 + i, *frame(3000))
        again.finish()
    with h5py.File(path) as h5:
        assert sorted(h5) == ["episode_0", "episode_1"]
        assert h5["episode_0"]["depth"].shape == (3, H, W) and np.all(h5["episode_0"]["depth"][:] == 1000)
        assert h5["episode_1"]["depth"].shape == (2, H, W) and np.all(h5["episode_1"]["depth"][:] == 3000)
        assert np.all(h5["episode_1"]["color"][:] == 3000 % 256)
        assert h5["episode_1"].attrs["scene_id"] == "c"
        assert list(h5["episode_1"]["timestamps_ns"][:]) == [200, 201]


def test_drop_episode_refuses_any_but_the_last_and_after_commit(tmp_path):
    writer = Hdf5DatasetWriter(tmp_path / "d.h5")
    first = writer.begin_episode(meta("a"), (H, W))
    first.append(1, *frame(1000))
    first.finish()
    second = writer.begin_episode(meta("a"), (H, W))
    with pytest.raises(ExportError, match="only the last episode begun can be dropped, not episode_0"):
        writer.drop_episode(first)
    second.discard()
    with pytest.raises(ExportError, match="only the last"):
        writer.drop_episode(second)  # twice: it is no longer in the file
    writer.commit()
    with pytest.raises(ExportError, match="after the file was committed"):
        writer.drop_episode(first)
    with h5py.File(tmp_path / "d.h5") as h5:
        assert sorted(h5) == ["episode_0"]


def test_session_discard_episode_leaves_only_complete_episodes_and_check_passes(tmp_path):
    bag = tmp_path / "bag"
    truth = write_synthetic_bag(bag, frames=12, width=W, height=H, seed=3, with_quality=False)
    opts = ExportOptions(out_dir=tmp_path / "ds", every_k=2)
    session = ExportSession(opts)
    stream_of = {DEFAULT_TOPICS[k]: k for k in ("depth", "color", "info")}
    with bag_io.open_bag(bag) as reader:
        messages = list(bag_io.messages(reader, list(stream_of)))
    half = len(messages) // 2
    session.begin_episode(scene_id="kept", source="bag", has_quality=False)
    for topic, _, msg in messages:
        session.add(stream_of[topic], bag_io.stamp_of(msg), msg)
    assert session.end_episode()["frames"] == 12
    session.begin_episode(scene_id="broken", source="bag", has_quality=False)
    for topic, _, msg in messages[:half]:  # the same frames again, shifted: a second episode part-written
        session.add(stream_of[topic], bag_io.stamp_of(msg) + 10**12, msg)
    part = session.frames_written - 12
    assert part > 0
    pngs_of_broken = list(session.output.staging.glob("annotation/*/episode_1_*.png"))
    assert pngs_of_broken  # every_k=2: the part-written episode had annotation frames
    assert session.discard_episode("the writer failed: disk full") == "episode_1"
    assert session.discard_episode("again") is None  # nothing open any more
    assert session.frames_written == 12
    assert not any(p.exists() for p in pngs_of_broken)
    report = session.commit()
    assert report["frames"] == 12 and report["episodes"] == 1
    assert report["problems"] == [f"episode_1 ({part} frames) discarded: the writer failed: disk full"]
    out = tmp_path / "ds"
    with h5py.File(out / "export" / "dataset.h5") as h5:
        assert sorted(h5) == ["episode_0"]
        assert np.array_equal(h5["episode_0"]["depth"][:], np.stack([f.depth_mm for _, f in truth]))
    info = json.loads((out / "dataset_info.json").read_text())
    assert [(e["episode"], e["scene_id"]) for e in info["episodes"]] == [("episode_0", "kept")]
    tasks = json.loads((out / "annotation" / "label_studio_tasks.json").read_text())
    assert len(tasks) == 6 and {t["data"]["episode"] for t in tasks} == {"episode_0"}
    assert check_report(out, deep=True).problems == []
