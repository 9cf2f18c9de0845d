"""Fault injection against the nodes as real processes: one bad message or request never kills a node.

Each case sends what a broken publisher or a careless user sends (a 16UC1 image whose `step`
is wrong, a 32FC1 disparity with 10 bytes of data, a Calibrate request naming a cv2.aruco
class as its dictionary, frames changing size mid-episode, a writer failing with ENOSPC) and
asserts: the node stays up, keeps its state, and says what happened (status topic or
/diagnostics, one log line). Also: SIGTERM is a clean stop (exit 143; SIGINT 0), and a QC threshold set at run time
changes the next frame's status while a bad value is refused.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_harness import VENV_BIN, NodeProcess, wait_until
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from depth_annotation.calibration import BoardSpec, render_board, varied_board_poses
from depth_annotation.common import Intrinsics
from depth_annotation.mono import save_tiny_model
from depth_annotation.msg import DepthQuality
from depth_annotation.nodes.messages import camera_info_msg, image_msg, make_header, stamp_to_ns
from depth_annotation.srv import Calibrate

S = 1_000_000_000
SENSOR = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
CAMERA = Intrinsics(640, 480, 600.0, 604.0, 322.5, 237.8)


def call(ros, client, request, timeout=30):
    assert ros.spin_until(client.service_is_ready, timeout=60), client.srv_name
    fut = client.call_async(request)
    assert ros.spin_until(fut.done, timeout=timeout), client.srv_name
    return fut.result()


def bad_step_depth(stamp_ns: int) -> Image:
    """A 16UC1 image whose step is shorter than a row (a broken publisher's header)."""
    msg = image_msg(np.full((48, 64), 800, np.uint16), "16UC1", make_header(stamp_ns, "cam"))
    msg.step = 63
    return msg


def short_disparity(stamp_ns: int) -> Image:
    """A 32FC1 64x48 image carrying 10 bytes of data."""
    msg = image_msg(np.ones((48, 64), np.float32), "32FC1", make_header(stamp_ns, "cam"))
    msg.data = bytes(10)
    return msg


def publish_until(ros, pub, make, predicate, timeout=60.0):
    """Publish `make(i)` every 0.2 s until `predicate()`: the first best-effort messages after
    discovery may be lost while the other side is still matching."""
    deadline = time.monotonic() + timeout
    i = 0
    while time.monotonic() < deadline:
        pub.publish(make(i))
        i += 1
        if ros.spin_until(predicate, timeout=0.2):
            return True
    return predicate()


def errors_named(output: str, topic: str) -> list[str]:
    return [line for line in output.splitlines() if "ERROR" in line and topic in line]


def at_most_one_line_per_period(lines: list[str], since: float, period_s: float = 5.0) -> bool:
    """The fault guard's rate limit: one line per topic, then at most one more every `period_s`
    (FaultGuard's log_period_s), however many bad messages arrived since the monotonic time `since`."""
    return 1 <= len(lines) <= 1 + int((time.monotonic() - since) / period_s)


def burst(ros, pub, make, n: int = 10) -> None:
    """`n` more bad messages within about a second: a guard without its rate limit logs each one."""
    for i in range(n):
        pub.publish(make(i))
        ros.spin_until(lambda: False, timeout=0.05)


# --- calibration_node ------------------------------------------------------------------------
def test_calibration_node_survives_bad_messages_and_requests_and_keeps_its_views(ros, procs, tmp_path):
    calib = procs.node("calibration_node", namespace="camera", params={"output_dir": str(tmp_path)})
    node = ros.node("fault_feeder")
    color = node.create_publisher(Image, "/camera/color/image_raw", RELIABLE)
    depth = node.create_publisher(Image, "/camera/aligned_depth_to_color/image_raw", SENSOR)
    disparity = node.create_publisher(Image, "/camera/mono/disparity", SENSOR)
    statuses: list[str] = []
    node.create_subscription(String, "/camera/calibration_node/status", lambda m: statuses.append(m.data), 10)
    calibrate = node.create_client(Calibrate, "/camera/calibrate")
    assert ros.spin_until(lambda: min(p.get_subscription_count() for p in (color, depth, disparity)) > 0, timeout=60)
    first_bad = time.monotonic()  # no bad message before this

    spec = BoardSpec()
    view = render_board(spec, CAMERA, varied_board_poses(spec, CAMERA, 1, seed=3)[0], noise_sigma=1.0).image
    msg = image_msg(np.repeat(view[..., None], 3, axis=2), "rgb8", make_header(1 * S, "camera_color_optical_frame"))
    color.publish(msg)
    assert ros.spin_until(lambda: any("1/20 views" in s for s in statuses), timeout=60), statuses[-3:]

    assert publish_until(ros, depth, lambda i: bad_step_depth(2 * S + i), lambda: any("step" in s for s in statuses))
    assert publish_until(
        ros, disparity, lambda i: short_disparity(3 * S + i), lambda: any("mono/disparity" in s for s in statuses)
    ), statuses[-3:]
    burst(ros, disparity, lambda i: short_disparity(4 * S + i))
    assert wait_until(lambda: errors_named(calib.output(), "/camera/mono/disparity"), 30), calib.output()[-2000:]
    assert wait_until(lambda: errors_named(calib.output(), "/camera/aligned_depth_to_color/image_raw"), 30)

    refused = call(
        ros,
        calibrate,
        Calibrate.Request(
            board_type="charuco",
            squares_x=7,
            squares_y=5,
            square_length_m=0.04,
            marker_length_m=0.03,
            dictionary="ArucoDetector",
            min_views=1,
        ),
    )
    assert not refused.success and "unknown ArUco dictionary 'ArucoDetector'" in refused.message, refused.message
    assert "TypeError" not in refused.message

    assert calib.alive()
    statuses.clear()
    assert ros.spin_until(lambda: bool(statuses), timeout=30)
    # the view captured before the faults is still there: a calibration over it runs (and is gated)
    kept = call(ros, calibrate, Calibrate.Request(min_views=1, force=True))
    assert kept.views_used == 1, kept.message
    # one line per topic (rate-limited), not one per message: publish_until may have sent bad frames for
    # longer than the 5 s period, so allow one more line per period since the first bad message
    lines = errors_named(calib.output(), "/camera/mono/disparity")
    assert at_most_one_line_per_period(lines, first_bad), lines


# --- coverage_qc_node ----------------------------------------------------------------------------
def set_double(ros, client, name: str, value: float):
    req = SetParameters.Request(
        parameters=[
            ParameterMsg(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))
        ]
    )
    return call(ros, client, req).results[0]


def test_qc_node_bad_step_is_an_error_frame_and_thresholds_tune_the_next_frame(ros, procs, tmp_path):
    qc = procs.node("coverage_qc_node", namespace="camera", params={"output_dir": str(tmp_path)})
    node = ros.node("qc_feeder")
    pub = node.create_publisher(Image, "/camera/aligned_depth_to_color/image_raw", SENSOR)
    got: list[DepthQuality] = []
    diags: list[DiagnosticStatus] = []
    node.create_subscription(DepthQuality, "/camera/depth_quality", got.append, 50)
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diags.extend(m.status), 50)
    params = node.create_client(SetParameters, "/camera/coverage_qc_node/set_parameters")
    assert ros.spin_until(lambda: pub.get_subscription_count() > 0, timeout=60)

    assert publish_until(ros, pub, lambda i: bad_step_depth(1 * S + i), lambda: got)
    assert got[-1].status == DepthQuality.ERROR and "bad_encoding" in got[-1].reasons
    assert ros.spin_until(
        lambda: any(d.level == DiagnosticStatus.ERROR and "step" in d.message for d in diags), timeout=30
    )

    # 80 % valid: between flag (0.70) and good (0.85) -> WARN
    frame = np.full((48, 64), 800, np.uint16)
    frame[:, :13] = 0  # 13 of 64 columns empty: 79.7 % valid
    expected = float((frame > 0).mean())
    assert 0.70 < expected < 0.85

    def send(stamp):
        """The DepthQuality for this frame (its stamp): a late reply to an earlier frame is not it.
        Sent again until answered (best effort); a copy is the same frame, with the same answer."""

        def replies():
            return [q for q in got if stamp_to_ns(q.header.stamp) == stamp]

        frame_msg = image_msg(frame, "16UC1", make_header(stamp, "cam"))
        assert publish_until(ros, pub, lambda i: frame_msg, replies, timeout=60), [q.header.stamp for q in got[-3:]]
        reply = replies()[0]
        assert abs(reply.valid_fraction - expected) < 1e-6
        return reply

    assert send(2 * S).status == DepthQuality.WARN
    result = set_double(ros, params, "good_fraction", 0.75)
    assert result.successful, result.reason
    assert send(2 * S + 33_000_000).status == DepthQuality.GOOD  # the next frame, under the new threshold
    for name, value in (("good_fraction", 0.9), ("flag_fraction", 0.8)):
        result = set_double(ros, params, name, value)
        assert result.successful, result.reason
    assert send(2 * S + 66_000_000).status == DepthQuality.FLAGGED  # 79.7 % < flag_fraction 0.8
    result = set_double(ros, params, "flag_fraction", 0.95)  # above good_fraction: inconsistent
    assert not result.successful and "flag_fraction" in result.reason and "good_fraction" in result.reason
    result = set_double(ros, params, "good_fraction", 1.5)  # outside its declared range
    assert not result.successful
    result = set_double(ros, params, "grid_rows", 3.0)  # not tunable: read-only
    assert not result.successful
    assert send(2 * S + 99_000_000).status == DepthQuality.FLAGGED  # the refused values changed nothing
    assert qc.alive()


# --- mono_depth_node ---------------------------------------------------------------------------
def test_mono_node_reports_a_bad_depth_frame_and_keeps_running(ros, procs, tmp_path):
    mono = procs.node(
        "mono_depth_node",
        namespace="camera",
        params={"model": str(save_tiny_model(tmp_path / "tiny")), "metric_mode": "sensor_fit"},
    )
    node = ros.node("mono_feeder")
    pub = node.create_publisher(Image, "/camera/aligned_depth_to_color/image_raw", SENSOR)
    diags: list[DiagnosticStatus] = []
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diags.extend(m.status), 50)
    assert ros.spin_until(lambda: pub.get_subscription_count() > 0, timeout=120)
    first_bad = time.monotonic()

    def reported():
        return [d for d in diags if "inference" in d.name and d.level == DiagnosticStatus.ERROR]

    def input_errors() -> int:
        counts = [int(kv.value) for d in diags if "inference" in d.name for kv in d.values if kv.key == "input_errors"]
        return counts[-1] if counts else 0

    assert publish_until(ros, pub, lambda i: bad_step_depth(S + i), reported), [d.message for d in diags][-3:]
    assert "aligned_depth_to_color/image_raw" in reported()[-1].message and "step" in reported()[-1].message
    seen = input_errors()
    burst(ros, pub, lambda i: bad_step_depth(2 * S + i))
    assert ros.spin_until(lambda: input_errors() > seen, timeout=30), input_errors()  # the burst reached the node
    assert mono.alive()
    lines = errors_named(mono.output(), "/camera/aligned_depth_to_color/image_raw")
    assert at_most_one_line_per_period(lines, first_bad), lines


# --- live_exporter_node ----------------------------------------------------------------------------
class Feeder:
    """Publishes synchronized depth + colour + camera_info frames of a chosen size."""

    def __init__(self, ros, name: str) -> None:
        self.ros = ros
        self.node = ros.node(name)
        self.pubs = {
            k: self.node.create_publisher(t, f"/camera/{topic}", RELIABLE)
            for k, t, topic in (
                ("depth", Image, "aligned_depth_to_color/image_raw"),
                ("color", Image, "color/image_raw"),
                ("info", CameraInfo, "aligned_depth_to_color/camera_info"),
            )
        }
        self.diags: list[DiagnosticStatus] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: self.diags.extend(m.status), 50)

    def ready(self) -> bool:
        return self.ros.spin_until(lambda: min(p.get_subscription_count() for p in self.pubs.values()) > 0, 60)

    def send(self, stamp_ns: int, width: int, height: int) -> None:
        header = make_header(stamp_ns, "camera_color_optical_frame")
        intr = Intrinsics(width, height, width * 0.9, width * 0.9, width / 2, height / 2)
        self.pubs["info"].publish(camera_info_msg(intr, header))
        self.pubs["color"].publish(image_msg(np.full((height, width, 3), 90, np.uint8), "rgb8", header))
        self.pubs["depth"].publish(image_msg(np.full((height, width), 700, np.uint16), "16UC1", header))
        self.ros.spin_until(lambda: False, timeout=0.05)

    def prime(self, width: int = 64, height: int = 48) -> int:
        """Frames stamped before S until the exporter has written one, then until it has written all that
        arrived; returns that count. Our publishers count the exporter's readers as matched (`ready`)
        before those readers know our writers, and a best-effort reader drops what comes before: after
        this, nothing is lost to discovery. (Needs the exporter's 1 Hz diagnostics: not under use_sim_time.)
        The last one sent may still wait in the exporter's synchronizer for a later frame: `primed_sent`
        bounds what the episode holds of them."""
        self.primed_sent = 0
        deadline = time.monotonic() + 60
        while frames_written(self) == 0 and time.monotonic() < deadline:
            assert self.primed_sent < 50, "priming stamps would reach S"
            self.send(PRIME_NS + self.primed_sent * 40_000_000, width, height)
            self.primed_sent += 1
            self.ros.spin_until(lambda: frames_written(self) > 0, timeout=0.2)
        assert frames_written(self) > 0, "the exporter wrote none of the priming frames"
        return settled(self)


# Priming frames (Feeder.prime): 40 ms apart (more than the 16.7 ms sync tolerance, so each is written as
# soon as the next arrives), ending before the tests' frames from S, less than the 3 s episode gap before.
PRIME_NS = S - 2_000_000_000


def finish(ros, node, timeout: float = 30) -> Trigger.Response:
    return call(ros, node.create_client(Trigger, "/finish_episode"), Trigger.Request(), timeout=timeout)


def export_reports(feed: Feeder) -> list[dict[str, str]]:
    """The values of each /diagnostics report of the exporter received so far (1 Hz), oldest first."""
    return [{kv.key: kv.value for kv in d.values} for d in feed.diags if d.name.endswith(": export")]


def frames_written(feed: Feeder) -> int:
    reports = export_reports(feed)
    return int(reports[-1]["frames_written"]) if reports else 0


def settled(feed: Feeder, key: str = "frames_written", timeout: float = 60) -> int:
    """`key` once three reports in a row (2 s at 1 Hz), two of them new, gave the same value: what was
    sent before has all been taken and written, or was lost in (best-effort) delivery."""
    start = len(export_reports(feed))

    def quiet() -> bool:
        values = [r[key] for r in export_reports(feed)]
        return len(values) >= max(3, start + 2) and values[-1] == values[-2] == values[-3]

    assert feed.ros.spin_until(quiet, timeout), [r[key] for r in export_reports(feed)]
    return int(export_reports(feed)[-1][key])


def test_live_exporter_resolution_change_starts_a_new_episode_and_keeps_the_first(ros, procs, tmp_path):
    out = tmp_path / "ds"
    exporter = procs.node("live_exporter_node", params={"output_dir": str(out), "every_k": 1000})
    feed = Feeder(ros, "exporter_feeder")
    assert feed.ready()
    primed = feed.prime(64, 48)
    for i in range(10):
        feed.send(S + i * 33_000_000, 64, 48)
    for i in range(10, 20):
        feed.send(S + i * 33_000_000, 128, 96)
    assert wait_until(lambda: "resolution change 64x48 -> 128x96" in exporter.output(), 60), exporter.output()
    # finish_episode is queued behind the messages the exporter has taken, not behind those still in
    # its DDS readers: ask once every frame sent has been taken (frames_written stopped growing)
    assert settled(feed) > 0
    assert finish(ros, feed.node).success
    assert exporter.stop(timeout=60) == 0
    assert exporter.alive() is False
    with h5py.File(out / "export" / "dataset.h5") as h5:
        shapes = [h5[name]["depth"].shape for name in sorted(h5) if name.startswith("episode_")]
    assert len(shapes) == 2, shapes
    assert shapes[0][1:] == (48, 64) and shapes[1][1:] == (96, 128)
    assert shapes[0][0] >= primed + 7 and shapes[1][0] >= 7  # best effort: a frame may be lost, never the episode


SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from depth_annotation.dataset import hdf5_writer
    from depth_annotation.nodes.live_exporter_node import main

    DELAY_S, STALL = float(sys.argv[1]), Path(sys.argv[2])
    original = hdf5_writer.EpisodeWriter.append

    def append(self, stamp_ns, *args, **kwargs):  # a slow disk: the writer falls behind delivery
        if stamp_ns >= 1_000_000_000:  # the test's frames (Feeder.prime's come before)
            time.sleep(DELAY_S)
            while STALL.exists():  # a write that hangs until the test removes the file
                time.sleep(0.05)
        return original(self, stamp_ns, *args, **kwargs)

    hdf5_writer.EpisodeWriter.append = append
    sys.exit(main(sys.argv[3:]))
    """
)


def slow_exporter(procs, tmp_path, *, delay_s: float, params: dict[str, object]) -> tuple[NodeProcess, Path]:
    """live_exporter_node whose every test frame (stamped from S) takes `delay_s` to write, and hangs
    while the returned path exists."""
    script, stall = tmp_path / "slow_exporter.py", tmp_path / "stall"
    script.write_text(SLOW_WRITER)
    cmd = [sys.executable, str(script), str(delay_s), str(stall), "--ros-args"]
    for key, value in params.items():
        cmd += ["-p", f"{key}:={value}"]
    return procs.command(cmd, "slow_exporter"), stall


def test_live_exporter_finish_ends_the_episode_after_the_frames_that_arrived_before_it(ros, procs, tmp_path):
    """finish_episode called while the writer is behind: the frames already received belong to the
    episode it ends (a user's last frames never become a stray episode of their own)."""
    out = tmp_path / "ds"
    exporter, _ = slow_exporter(procs, tmp_path, delay_s=1.0, params={"output_dir": out, "every_k": 1000})
    feed = Feeder(ros, "slow_feeder")
    assert feed.ready()
    primed = feed.prime(64, 48)
    for i in range(12):
        feed.send(S + i * 33_000_000, 64, 48)
    # the writer is behind when the request comes (1 s a frame: sending took well under 6 s)
    assert frames_written(feed) - primed < 6, (frames_written(feed), primed)
    done = finish(ros, feed.node, timeout=60)  # the node waits up to 30 s for the writer to reach it
    assert done.success and done.message.startswith("episode_0: "), done.message
    kept = int(done.message.split()[1])
    assert kept >= primed + 9, (done.message, primed)  # best effort: a frame may be lost in delivery
    assert exporter.stop(timeout=60) == 0
    with h5py.File(out / "export" / "dataset.h5") as h5:
        names = sorted(name for name in h5 if name.startswith("episode_"))
        assert names == ["episode_0"], names
        assert h5["episode_0"]["depth"].shape == (kept, 48, 64)


def test_live_exporter_finish_that_times_out_is_withdrawn_and_changes_nothing(ros, procs, tmp_path):
    """The writer does not reach a finish_episode call within finish_timeout_s: the reply says so and
    the request is withdrawn, so it never ends an episode later (a retry would otherwise split the
    next episode off at a point nobody asked for)."""
    out = tmp_path / "ds"
    params = {"output_dir": out, "every_k": 1000, "finish_timeout_s": 1.0, "episode_gap_s": 60.0}
    exporter, _ = slow_exporter(procs, tmp_path, delay_s=1.5, params=params)
    feed = Feeder(ros, "impatient_feeder")
    assert feed.ready()
    primed = feed.prime(64, 48)
    for i in range(5):  # 7.5 s of writing
        feed.send(S + i * 33_000_000, 64, 48)
    busy = finish(ros, feed.node)
    assert not busy.success and "writer busy" in busy.message and "nothing changed" in busy.message, busy.message
    for i in range(5, 8):  # after the withdrawn call: still the same episode
        feed.send(S + i * 33_000_000, 64, 48)
    written = settled(feed, timeout=90)
    assert exporter.stop(timeout=60) == 0
    with h5py.File(out / "export" / "dataset.h5") as h5:
        names = sorted(name for name in h5 if name.startswith("episode_"))
        assert names == ["episode_0"], names
        stamps = h5["episode_0"]["timestamps_ns"][:]
    assert written >= primed + 6 and np.count_nonzero(stamps >= S + 5 * 33_000_000) >= 2, stamps


FAILING_WRITER = textwrap.dedent(
    """
    import errno, sys
    from pathlib import Path
    from depth_annotation.dataset import hdf5_writer
    from depth_annotation.nodes.live_exporter_node import main

    FLAG = Path(sys.argv[1])
    original = hdf5_writer.EpisodeWriter.append

    def append(self, *args, **kwargs):
        if FLAG.exists():  # the disk is full from now on
            raise OSError(errno.ENOSPC, "No space left on device", str(self.file.partial))
        return original(self, *args, **kwargs)

    hdf5_writer.EpisodeWriter.append = append
    sys.exit(main(sys.argv[2:]))
    """
)


def test_live_exporter_writer_failure_stops_with_an_error_keeps_episodes_and_exits_on_sigint(ros, procs, tmp_path):
    out, flag = tmp_path / "ds", tmp_path / "disk_full"
    script = tmp_path / "failing_exporter.py"
    script.write_text(FAILING_WRITER)
    cmd = [sys.executable, str(script), str(flag), "--ros-args", "-p", f"output_dir:={out}", "-p", "queue_size:=10"]
    cmd += ["-p", "every_k:=2"]  # annotation PNGs from both episodes
    cmd += ["-p", "episode_gap_s:=60.0"]  # waiting for the 1 Hz reports below must not end episode_1 (3 s gap)
    exporter = procs.command(cmd, "failing_exporter")
    feed = Feeder(ros, "full_disk_feeder")
    assert feed.ready()
    for i in range(8):
        feed.send(S + i * 33_000_000, 64, 48)
    assert ros.spin_until(lambda: frames_written(feed) > 0, 60)
    done = finish(ros, feed.node)
    assert done.success and done.message.startswith("episode_0: "), done.message  # episode_0 is complete
    kept = int(done.message.split()[1])
    for i in range(10, 16):  # episode_1: frames written before the disk fills
        feed.send(S + i * 33_000_000, 64, 48)
    assert ros.spin_until(lambda: frames_written(feed) >= kept + 3, 60), frames_written(feed)
    flag.touch()
    for i in range(20, 70):  # more than the queue holds
        feed.send(S + i * 33_000_000, 64, 48)

    def error_diag():
        return [d for d in feed.diags if d.level == DiagnosticStatus.ERROR and "export" in d.name]

    assert ros.spin_until(error_diag, timeout=60)
    assert "no space left on device" in error_diag()[-1].message.lower()
    assert wait_until(lambda: "export stopped: writer failed" in exporter.output(), 30)
    assert "the unfinished episode_1 is discarded" in exporter.output()
    assert exporter.alive()

    # After the failure the worker still drains its queue (discarding), so delivery never blocks and
    # shutdown never waits on a full queue: 90 more messages (9 queues full) pass with (almost) no overflow.
    before = settled(feed, "queue_overflows")
    for i in range(70, 100):
        feed.send(S + i * 33_000_000, 64, 48)
    after = settled(feed, "queue_overflows")
    assert after - before < 30, (before, after)

    start = time.monotonic()
    exporter.proc.send_signal(signal.SIGINT)
    rc = exporter.wait_exit(60)
    assert time.monotonic() - start < 30.0, exporter.output()[-2000:]  # not the writer's 600 s join
    assert rc == 0, exporter.output()[-2000:]
    assert "before the export stopped" in exporter.output()
    # exactly the committed episode, every frame readable; the one the writer failed in is gone
    with h5py.File(out / "export" / "dataset.h5") as h5:
        assert sorted(name for name in h5 if name.startswith("episode_")) == ["episode_0"]
        depth, stamps = h5["episode_0"]["depth"][:], h5["episode_0"]["timestamps_ns"][:]
    assert depth.shape == (kept, 48, 64) and np.all(depth == 700) and np.all(np.diff(stamps) > 0)
    info = json.loads((out / "dataset_info.json").read_text())
    assert [(e["episode"], e["frames"]) for e in info["episodes"]] == [("episode_0", kept)]
    tasks = json.loads((out / "annotation" / "label_studio_tasks.json").read_text())
    assert tasks and {t["data"]["episode"] for t in tasks} == {"episode_0"}
    pngs = [p.name for p in out.glob("annotation/*/episode_*.png")]
    assert len(pngs) == 3 * len(tasks) and all(name.startswith("episode_0_") for name in pngs), pngs
    report = json.loads((out / "export_report.json").read_text())
    assert any(p.startswith("episode_1 (") and "discarded: the writer failed" in p for p in report["problems"])
    check = subprocess.run(
        [str(VENV_BIN / "depth-annotation"), "check", str(out), "--deep"], capture_output=True, text=True
    )
    assert check.returncode == 0 and "dataset OK" in check.stdout, check.stdout + check.stderr


def test_live_exporter_gap_is_measured_in_message_time(ros, procs, tmp_path):
    """A pause in delivery (a paused replay) longer than episode_gap_s, on a clock that does not move
    (use_sim_time, no /clock), is no gap; a jump in the stamps is one."""
    out = tmp_path / "ds"
    exporter = procs.node(
        "live_exporter_node",
        params={"output_dir": str(out), "every_k": 1000, "episode_gap_s": 1.0, "use_sim_time": True},
    )
    feed = Feeder(ros, "gap_feeder")
    assert feed.ready()
    for i in range(5):
        feed.send(S + i * 33_000_000, 64, 48)
    ros.spin_until(lambda: False, timeout=3.0)  # paused for 3 s of wall time
    for i in range(5, 10):
        feed.send(S + i * 33_000_000, 64, 48)
    for i in range(10, 15):  # the stamps jump 5 s: a new episode
        feed.send(6 * S + i * 33_000_000, 64, 48)
    assert wait_until(lambda: "stamp gap" in exporter.output(), 30), exporter.output()
    assert exporter.stop(timeout=60) == 0
    with h5py.File(out / "export" / "dataset.h5") as h5:
        frames = [h5[name]["depth"].shape[0] for name in sorted(h5) if name.startswith("episode_")]
    assert len(frames) == 2 and frames[0] >= 8, frames


# --- signals ------------------------------------------------------------------------------------------
# SIGINT is launch's normal stop (exit 0: launch logs any other code as "process has died"); SIGTERM
# gets the same clean shutdown and exits 143 (nodes/runtime.py).
@pytest.mark.parametrize("exe", ["coverage_qc_node", "calibration_node", "live_exporter_node"])
def test_sigterm_is_a_clean_stop_that_says_so_and_exits_143(procs, tmp_path, exe):
    p = procs.node(exe, namespace="camera", params={"output_dir": str(tmp_path / "out")})
    assert wait_until(lambda: "ready" in p.output(), 60), p.output()
    p.proc.send_signal(signal.SIGTERM)
    assert p.wait_exit(30) == 143, p.output()
    said = [line for line in p.output().splitlines() if "stopped cleanly after" in line]
    assert said == [f"[{exe}] stopped cleanly after SIGTERM (exit 143)"], p.output()
    assert "Traceback" not in p.output()


@pytest.mark.parametrize("sig, rc", [(signal.SIGTERM, 143), (signal.SIGINT, 0)])
def test_live_exporter_commits_its_dataset_on_sigterm_as_on_sigint(ros, procs, tmp_path, sig, rc):
    out = tmp_path / "ds"
    # episode_gap_s: the episode stays open however long the wait below takes on a busy machine
    params = {"output_dir": str(out), "every_k": 2, "episode_gap_s": 60.0}
    exporter = procs.node("live_exporter_node", params=params)
    feed = Feeder(ros, f"signal_feeder_{sig.name.lower()}")
    assert feed.ready()
    primed = feed.prime(64, 48)
    for i in range(8):
        feed.send(S + i * 33_000_000, 64, 48)
    # every frame sent has been taken (a frame still in the DDS reader at the signal is never taken)
    assert settled(feed) > 0
    assert export_reports(feed)[-1]["episode_open"] == "True"  # the signal comes with the episode open
    exporter.proc.send_signal(sig)
    assert exporter.wait_exit(60) == rc, exporter.output()[-2000:]
    assert f"[live_exporter_node] stopped cleanly after {sig.name} (exit {rc})" in exporter.output()
    # the episode open at the signal is finished and the dataset committed: no staging, no .partial
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}.")] == []  # no staging left
    assert not list(out.rglob("*.partial"))
    info = json.loads((out / "dataset_info.json").read_text())
    with h5py.File(out / "export" / "dataset.h5") as h5:
        frames = h5["episode_0"]["depth"].shape[0]
        assert primed + 6 <= frames <= feed.primed_sent + 8 and h5["episode_0"]["timestamps_ns"].shape == (frames,)
    assert [e["frames"] for e in info["episodes"]] == [frames]
    check = subprocess.run([str(VENV_BIN / "depth-annotation"), "check", str(out)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


# --- realsense_node ---------------------------------------------------------------------------------
def test_driver_refuses_unknown_parameters_before_anything_is_written(procs, tmp_path):
    p = procs.node(
        "realsense_node",
        params={"output_dir": str(tmp_path / "captures"), "color_width": 123, "strict_parameters": True},
        watch=False,
    )
    assert p.wait_exit(60) == 2, p.output()
    assert "unknown parameter(s) color_width" in p.output().strip().splitlines()[-1]
    assert not (tmp_path / "captures").exists()  # no session directory, no capture_metadata.json


def test_driver_without_a_device_says_so_on_the_console(procs, tmp_path):
    p = procs.node("realsense_node", params={"source": "device", "output_dir": str(tmp_path)})
    assert wait_until(lambda: "ready" in p.output(), 60), p.output()
    errors = [line for line in p.output().splitlines() if line.startswith("[ERROR]")]
    assert len(errors) == 1, p.output()
    assert "no RealSense device found (serials found: none)" in errors[0]
    assert "retrying with exponential backoff" in errors[0] and "8 s" in errors[0]
    assert p.alive()


def test_driver_records_the_frames_timestamp_domain(procs, tmp_path):
    p = procs.node(
        "realsense_node",
        params={
            "output_dir": str(tmp_path),
            "session_id": "s",
            "synthetic_timestamp_domain": "global_time",
            "metadata_period_s": 1.0,
        },
    )
    path = tmp_path / "s" / "capture_metadata.json"

    def domain():
        return path.exists() and json.loads(path.read_text())["timing"]["timestamp_domain"]

    assert wait_until(lambda: domain() == "global_time", 60), p.output()
