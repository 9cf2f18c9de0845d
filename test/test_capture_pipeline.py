"""The driver core through the real RealSense SDK (software_device), no camera, no fake."""

import itertools
import threading
import time

import cv2
import numpy as np
import pytest

from depth_annotation.capture import (
    CaptureConfig,
    CapturePipeline,
    CaptureState,
    FilterChain,
    FilterConfigError,
    FilterSettings,
    Profile,
    RecordingSource,
    SourceError,
    SyntheticCamera,
    SyntheticFaults,
    SyntheticSource,
    default_settings,
)
from depth_annotation.common import DEFAULT_DEPTH_TO_COLOR, LABEL_IDS, SyntheticScene, orbit_pose

VGA = Profile(640, 480, 30)


def no_filters():
    return [FilterSettings(s.name, False, s.options) for s in default_settings()]


def only(name):
    return [FilterSettings(s.name, s.name == name, s.options) for s in default_settings()]


class Collector:
    def __init__(self):
        self.frames = []
        self.cond = threading.Condition()

    def __call__(self, frame):
        with self.cond:
            self.frames.append(frame)
            self.cond.notify_all()

    def wait_for(self, n, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.frames) < n and time.monotonic() < deadline:
                self.cond.wait(0.1)
        return len(self.frames) >= n


def run(n_frames, *, timeout=30.0, faults=None, **config):
    out = Collector()
    pipe = CapturePipeline(lambda: SyntheticSource(VGA, VGA, seed=0, faults=faults), CaptureConfig(**config), out)
    pipe.start()
    try:
        assert out.wait_for(n_frames, timeout), (
            f"only {len(out.frames)} frames in {timeout} s ({pipe.state}: {pipe.message})"
        )
    finally:
        pipe.stop()
    return pipe, out.frames


@pytest.fixture(scope="module")
def color_truth():
    """Ground truth rendered directly in the colour camera (same scene, same pose)."""
    cam_intr = SyntheticCamera(VGA, VGA, seed=0).color_intrinsics
    return SyntheticScene(seed=0).render(cam_intr, orbit_pose(0.0), frame_seed=0)


def test_aligned_depth_matches_colour_frame_ground_truth(color_truth):
    _, frames = run(5, align=True, filters=no_filters())
    f = frames[-1]
    assert f.aligned_depth_mm.shape == (480, 640) and f.aligned_depth_mm.dtype == np.uint16
    gt = color_truth.depth_gt_m
    for label in ("target_object", "distractor_object", "table_surface"):
        mask = (color_truth.labels == LABEL_IDS[label]) & (f.aligned_depth_mm > 0) & np.isfinite(gt)
        # stay off silhouettes, where a one-pixel shift changes the depth legitimately
        mask = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert mask.sum() > 200, label
        err = np.abs(f.aligned_depth_mm[mask] / 1000.0 - gt[mask])
        z = float(np.median(gt[mask]))
        sigma = 0.002 * z * z  # the scene's noise model
        assert np.median(err) < 2 * sigma + 0.001, (label, np.median(err))
        assert np.percentile(err, 95) < 5 * sigma + 0.003, (label, np.percentile(err, 95))


def test_alignment_uses_the_extrinsics(color_truth):
    """Against the ground truth, aligned depth beats the raw depth image laid over colour pixels."""
    _, frames = run(3, align=True, filters=no_filters())
    f = frames[-1]
    mug = color_truth.instances == SyntheticScene(0).object_index("mug_target") + 1
    gt = color_truth.depth_gt_m
    aligned_ok = np.mean(np.abs(f.aligned_depth_mm[mug] / 1000.0 - gt[mug]) < 0.01)
    raw_ok = np.mean(np.abs(f.depth_mm[mug] / 1000.0 - gt[mug]) < 0.01)  # unaligned, different camera
    assert aligned_ok > 0.85
    assert raw_ok < 0.5


def test_unaligned_depth_matches_depth_frame_ground_truth():
    _, frames = run(3, align=False, filters=no_filters())
    f = frames[-1]
    assert f.aligned_depth_mm is None
    cam = SyntheticCamera(VGA, VGA, seed=0)
    depth_pose = orbit_pose(0.0).then(DEFAULT_DEPTH_TO_COLOR.inverse())
    gt, _, _, _ = SyntheticScene(0).raycast(f.depth_intrinsics, depth_pose)
    valid = (f.depth_mm > 0) & np.isfinite(gt)
    err = np.abs(f.depth_mm[valid] / 1000.0 - gt[valid])
    assert valid.mean() > 0.8
    assert np.median(err) < 0.004 and np.percentile(err, 99) < 0.02
    assert f.depth_intrinsics.fx == pytest.approx(cam.depth_intrinsics.fx, rel=1e-6)


def _frame_to_frame_noise(frames):
    stack = np.stack([f.depth_mm.astype(np.float64) for f in frames[-12:]])
    valid = np.all(stack > 0, axis=0)
    return float(np.median(np.abs(np.diff(stack, axis=0))[:, valid]))


def test_temporal_filter_reduces_frame_to_frame_noise():
    _, raw = run(20, align=False, filters=no_filters())
    _, smooth = run(20, align=False, filters=only("temporal"))
    noise_raw, noise_smooth = _frame_to_frame_noise(raw), _frame_to_frame_noise(smooth)
    assert noise_raw > 1.0  # mm: the scene is noisy
    assert noise_smooth < 0.6 * noise_raw, (noise_raw, noise_smooth)


def test_injected_gaps_are_counted_exactly_and_stamps_are_monotonic():
    faults = SyntheticFaults(drop_frames=frozenset({5, 9, 10, 17}))
    pipe, frames = run(25, align=True, faults=faults)
    for name in ("color", "depth", "aligned_depth"):
        c = pipe.counters[name]
        assert c.dropped == 4, (name, c.to_dict())
        assert c.received + c.dropped == c.last_frame_number  # every numbered frame accounted for
        assert c.published + c.skipped <= c.received
    numbers = [f.depth_frame_number for f in frames]
    assert not {5, 9, 10, 17} & set(numbers)
    stamps = [f.stamp_ns for f in frames]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    # stamps follow the hardware clock: 33.3 ms per frame number, except across a re-anchor of the
    # clock mapping (it moves the offset down when a frame arrives with less latency), at most one
    # step per re-anchor after the first
    per_frame = [
        (b - a) / (m - n)
        for (a, b), (n, m) in zip(itertools.pairwise(stamps), itertools.pairwise(numbers), strict=True)
    ]
    off = [d for d in per_frame if abs(d - 1e9 / 30) > 1000]
    assert len(off) <= pipe.clock.anchors - 1, (off, pipe.clock.anchors)
    assert len(off) <= len(per_frame) // 4  # re-anchors are rare: most steps are the hardware spacing


def test_device_lost_then_back_reconnects():
    faults = SyntheticFaults(disconnect_at_frame=15, disconnect_s=2.0)
    opened = []

    def open_source():
        opened.append(time.monotonic())
        if len(opened) == 2:  # the first reopen fails for another reason than absence: retried all the same
            raise SourceError("could not read the device's calibration (injected)")
        return SyntheticSource(VGA, VGA, faults=faults)

    out = Collector()
    pipe = CapturePipeline(
        open_source, CaptureConfig(frame_timeout_ms=300, reconnect_initial_s=0.2, reconnect_max_s=0.8), out
    )
    pipe.start()
    states = set()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (pipe.reconnects and len(out.frames) > 40):
            states.add(pipe.state)
            time.sleep(0.02)
    finally:
        pipe.stop()
    assert CaptureState.RECONNECTING in states and CaptureState.STREAMING in states
    assert pipe.reconnects == 1 and len(opened) >= 3  # start, the injected error, (absent while unplugged,) back
    assert pipe.counters["depth"].restarts == 1  # the new device numbers from 1 again
    stamps = [f.stamp_ns for f in out.frames]
    assert all(b > a for a, b in itertools.pairwise(stamps))


def test_recording_plays_back_through_the_sdk(tmp_path):
    path = str(tmp_path / "session.db3")
    cam = SyntheticCamera(VGA, VGA, seed=2, record_to=path)
    import pyrealsense2 as rs

    sync = rs.syncer()
    cam.start(sync)
    recorded = set()
    deadline = time.monotonic() + 20
    while len(recorded) < 15 and time.monotonic() < deadline:
        ok, fs = sync.try_wait_for_frames(500)
        if ok and fs.size() == 2:
            recorded.add(fs.get_depth_frame().get_frame_number())
    cam.stop()
    del cam

    out = Collector()
    pipe = CapturePipeline(lambda: RecordingSource(path, real_time=False), CaptureConfig(frame_timeout_ms=500), out)
    pipe.start()
    assert pipe.wait_finished(30)
    pipe.stop()
    assert pipe.state == CaptureState.STOPPED and pipe.message == "end of recording"
    assert pipe.info.serial == "SYN000000001" and pipe.info.source == "recording"
    played = {f.depth_frame_number for f in out.frames}
    assert len(played) >= 10 and played <= set(range(1, max(recorded) + 5))
    # played as fast as we read it, the file waits for the pipeline: nothing is skipped or lost
    c = pipe.counters["depth"]
    assert c.skipped <= 2 and c.dropped == 0, c.to_dict()  # at most the SDK's unpaired frames at the start
    assert c.published == len(out.frames) == c.received - c.skipped


def test_missing_recording_and_bad_profiles_fail_clearly(tmp_path):
    with pytest.raises(SourceError, match=r"recording not found: .*nope\.bag"):
        RecordingSource(str(tmp_path / "nope.bag"))
    with pytest.raises(SourceError, match=r"unsupported color profile 641x480x30; supported: .*640x480x30"):
        SyntheticSource(Profile(641, 480, 30), VGA)


def test_filter_chain_order_and_validation():
    chain = FilterChain(
        [FilterSettings("hole_filling", True), FilterSettings("decimation", True), *default_settings()[1:3]]
    )
    assert chain.names == [
        "decimation",
        "depth_to_disparity",
        "spatial",
        "temporal",
        "disparity_to_depth",
        "hole_filling",
    ]
    assert FilterChain(no_filters()).names == []
    with pytest.raises(FilterConfigError, match=r"temporal.filter_smooth_alpha=1.5 is outside \[0.0, 1.0\]"):
        FilterSettings("temporal", True, {"filter_smooth_alpha": 1.5}).validate()
    with pytest.raises(FilterConfigError, match="unknown filter 'median'"):
        FilterSettings("median", True).validate()
