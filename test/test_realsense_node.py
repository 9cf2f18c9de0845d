"""realsense_node as a real process on the synthetic camera, observed from this process over DDS."""

import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from ros_harness import WATCHED
from sensor_msgs.msg import CameraInfo, Image
from sensor_msgs.srv import SetCameraInfo
from tf2_msgs.msg import TFMessage

from depth_annotation.capture import CaptureState
from depth_annotation.common import DEFAULT_DEPTH_TO_COLOR
from depth_annotation.msg import CaptureStatus
from depth_annotation.nodes.messages import stamp_to_ns

NS = "/camera"

# REP-103: a body frame has x forward, y left, z up; an optical frame z forward, x right, y down.
# The optical axes written in body coordinates (the columns) are the rotation camera_link -> *_optical_frame.
OPTICAL_IN_BODY = np.array(
    [
        [0.0, 0.0, 1.0],  # optical z (forward) = body x
        [-1.0, 0.0, 0.0],  # optical x (right) = -body y
        [0.0, -1.0, 0.0],  # optical y (down) = -body z
    ]
)


def rotation_of(q) -> np.ndarray:
    """The rotation matrix of a geometry_msgs quaternion (the textbook formula, independent of our code)."""
    x, y, z, w = q.x, q.y, q.z, q.w
    assert x * x + y * y + z * z + w * w == pytest.approx(1.0, abs=1e-9)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def test_streams_topics_tf_and_status(ros, procs, tmp_path):
    node_proc = procs.node(
        "realsense_node",
        namespace="camera",
        params={"output_dir": str(tmp_path), "session_id": "s1", "synthetic_drop_frames": "[40, 41]"},
    )
    node = ros.node("observer")
    images: dict[str, list] = {"color": [], "depth": [], "aligned": []}
    infos: dict[str, list] = {"color": [], "aligned": []}
    status: list[CaptureStatus] = []
    tfs: list[TFMessage] = []
    diagnostics: list[DiagnosticArray] = []
    node.create_subscription(Image, f"{NS}/color/image_raw", images["color"].append, qos_profile_sensor_data)
    node.create_subscription(Image, f"{NS}/depth/image_raw", images["depth"].append, qos_profile_sensor_data)
    node.create_subscription(
        Image, f"{NS}/aligned_depth_to_color/image_raw", images["aligned"].append, qos_profile_sensor_data
    )
    node.create_subscription(CameraInfo, f"{NS}/color/camera_info", infos["color"].append, qos_profile_sensor_data)
    node.create_subscription(
        CameraInfo, f"{NS}/aligned_depth_to_color/camera_info", infos["aligned"].append, qos_profile_sensor_data
    )
    node.create_subscription(CaptureStatus, f"{NS}/status", status.append, 10)
    node.create_subscription(
        TFMessage, "/tf_static", tfs.append, QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    )
    node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)

    assert ros.spin_until(lambda: len(images["aligned"]) >= 60 and len(status) >= 3, timeout=60), node_proc.output()

    color, aligned, depth = images["color"][-1], images["aligned"][-1], images["depth"][-1]
    assert (color.encoding, color.width, color.height) == ("rgb8", 640, 480)
    assert (aligned.encoding, depth.encoding) == ("16UC1", "16UC1")
    assert color.header.frame_id == aligned.header.frame_id == "camera_color_optical_frame"
    assert depth.header.frame_id == "camera_depth_optical_frame"
    stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in images["color"]}
    assert stamps & {(m.header.stamp.sec, m.header.stamp.nanosec) for m in images["aligned"]}  # same frame identity
    arr = np.frombuffer(bytes(aligned.data), np.uint16)
    assert 0.85 < (arr > 0).mean() and 500 < np.median(arr[arr > 0]) < 2000
    assert infos["aligned"][-1].k[0] == pytest.approx(infos["color"][-1].k[0])

    s = status[-1]
    assert s.state == "streaming" and s.source == "synthetic" and s.depth_scale_m == pytest.approx(0.001)
    by_name = {st.name: st for st in s.streams}
    assert set(by_name) == {"color", "depth", "aligned_depth"}
    assert by_name["depth"].frames_dropped == 2
    # fps is the publish rate since the previous report: what the published counters of the last two
    # reports and their stamps say (whatever rate two busy cores allow), and frames do flow
    prev = {st.name: st for st in status[-2].streams}["color"]
    period_s = (stamp_to_ns(s.header.stamp) - stamp_to_ns(status[-2].header.stamp)) / 1e9
    rate = (by_name["color"].frames_published - prev.frames_published) / period_s
    assert by_name["color"].fps == pytest.approx(rate, rel=0.15, abs=3.0) and by_name["color"].fps > 0, (
        by_name["color"].fps,
        rate,
    )

    # /diagnostics: the same accounting; a drop while streaming is a warning. The next report after the
    # status above is from the same tick or a later one, so it has seen both dropped frames.
    n_diag = len(diagnostics)
    assert ros.spin_until(lambda: len(diagnostics) > n_diag, timeout=5), "no /diagnostics after the status"
    (diag,) = [d for d in diagnostics[-1].status if d.name.endswith("realsense_node: capture")]
    values = {kv.key: kv.value for kv in diag.values}
    assert diag.level == DiagnosticStatus.WARN and diag.hardware_id == "SYN000000001"
    assert values["state"] == "streaming" and values["depth.dropped"] == "2" and values["color.dropped"] == "2"
    assert int(values["aligned_depth.published"]) >= 60 and float(values["color.fps"]) > 0

    assert tfs, "no /tf_static"
    t = {(x.header.frame_id, x.child_frame_id): x.transform for x in tfs[-1].transforms}
    # camera_link -> depth optical frame: REP-103's fixed rotation, no offset
    depth_in_link = t[("camera_link", "camera_depth_optical_frame")]
    np.testing.assert_allclose(rotation_of(depth_in_link.rotation), OPTICAL_IN_BODY, atol=1e-9)
    tr = depth_in_link.translation
    assert (tr.x, tr.y, tr.z) == (0.0, 0.0, 0.0)
    # depth -> colour optical frame: the pose of the colour camera in the depth frame, the inverse of the
    # depth-to-colour extrinsics the synthetic camera registers with the SDK (p_color = R p_depth + t):
    # p_depth = R^T p_color - R^T t
    color_in_depth = t[("camera_depth_optical_frame", "camera_color_optical_frame")]
    r, tvec = DEFAULT_DEPTH_TO_COLOR.rotation, DEFAULT_DEPTH_TO_COLOR.translation
    assert not np.allclose(r, r.T, atol=1e-3)  # the inverse differs from the rotation itself: the check can tell
    np.testing.assert_allclose(rotation_of(color_in_depth.rotation), r.T, atol=1e-6)  # the SDK keeps float32
    got = [color_in_depth.translation.x, color_in_depth.translation.y, color_in_depth.translation.z]
    np.testing.assert_allclose(got, -r.T @ tvec, atol=1e-6)

    WATCHED.remove(node_proc)
    assert node_proc.stop(timeout=60) == 0
    meta = json.loads((tmp_path / "s1" / "capture_metadata.json").read_text())
    assert meta["final"] is True and meta["stop_time_utc"]
    for key in (
        "serial_number",
        "firmware_version",
        "product",
        "profiles",
        "depth_scale_m",
        "intrinsics",
        "extrinsics",
        "exposure",
    ):
        assert key in meta["sensor"], key
    d2c = meta["sensor"]["extrinsics"]["depth_to_color"]  # as read back from the SDK
    np.testing.assert_allclose(d2c["rotation"], DEFAULT_DEPTH_TO_COLOR.rotation, atol=1e-6)
    np.testing.assert_allclose(d2c["translation_m"], DEFAULT_DEPTH_TO_COLOR.translation, atol=1e-6)
    assert meta["final_state"] == "stopped"
    assert meta["processing"]["filters"]["temporal"]["filter_smooth_alpha"] == pytest.approx(0.4)
    assert meta["processing"]["filters"]["spatial"]["filter_magnitude"] == 2
    assert meta["processing"]["sdk_work_in"] == "processes" and meta["processing"]["sdk_worker_restarts"] == 0
    frames = meta["frames"]["depth"]
    assert frames["frames_dropped"] == 2
    assert frames["frames_received"] + frames["frames_dropped"] == frames["last_frame_number"]
    assert "temperatures_c" in meta


def test_subscriber_in_another_process_gets_what_the_driver_published(ros, procs, tmp_path):
    """A best-effort subscriber in another process receives (nearly) every aligned depth frame the driver
    counts as published, at whatever rate the driver reaches here (rates are bench/'s business).
    With the project's DDS profile (shared memory) delivery is near complete; large images over
    fragmented UDP lose far more (README "Middleware")."""
    started_ns = time.time_ns()
    node_proc = procs.node(
        "realsense_node", namespace="camera", params={"output_dir": str(tmp_path), "publish_depth": False}
    )
    node = ros.node("counter")
    got: set = set()
    status: list[CaptureStatus] = []
    # A queue for ~3 s of frames: what is measured is delivery between the processes, not how
    # often this (busy) process gets to take messages out of its reader.
    node.create_subscription(
        Image,
        f"{NS}/aligned_depth_to_color/image_raw",
        lambda m: got.add((m.header.stamp.sec, m.header.stamp.nanosec)),
        QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT),
    )
    node.create_subscription(CaptureStatus, f"{NS}/status", status.append, 10)
    assert ros.spin_until(lambda: len(got) > 5, timeout=60), node_proc.output()
    first = min(got)

    def published():
        s = status[-1] if status else None
        return {st.name: st.frames_published for st in s.streams}["aligned_depth"] if s else 0

    assert ros.spin_until(lambda: bool(status), timeout=5), "no CaptureStatus"
    start_published, start_count = published(), len(got)
    n_status = len(status)
    # a window of at least 6 status reports and 90 published frames, however slowly the driver runs
    assert ros.spin_until(lambda: len(status) >= n_status + 6 and published() - start_published >= 90, timeout=90), (
        f"{len(status) - n_status} status reports, {published() - start_published} frames published"
    )
    sent = published() - start_published
    received = len(got) - start_count
    # the window's ends are counted by status reports that travel beside the frames: a few frames of slack
    assert received >= 0.9 * sent - 5, (received, sent)
    # the first frame's stamp is host time (hardware clock anchored to it): after the node started, not later
    # than now; a stamp of zero or the bare hardware clock (milliseconds since the camera started) fails here
    first_ns = first[0] * 1_000_000_000 + first[1]
    assert started_ns < first_ns < time.time_ns(), (started_ns, first_ns)


@pytest.mark.parametrize(
    "params,message",
    [
        ({"color_profile": "641x480x30"}, "unsupported color profile 641x480x30; supported:"),
        ({"source": "recording", "bag_path": "/nonexistent/x.bag"}, "recording not found: /nonexistent/x.bag"),
        ({"source": "recording"}, "source=recording needs parameter 'bag_path'"),
        ({"source": "camera"}, "'camera' is not one of device, recording, synthetic"),
        ({"warmup_s": 9999.0}, "parameter 'warmup_s'=9999.0 is outside [-1.0, 600.0]"),
        ({"temporal_filter.filter_smooth_alpha": 2.0}, "temporal_filter.filter_smooth_alpha"),
        ({"depth_profile": "640x480"}, "profile must look like 640x480x30"),
    ],
)
def test_bad_parameters_fail_with_one_clear_line(procs, params, message):
    p = procs.node("realsense_node", params=params, name="bad", watch=False)
    assert p.wait_exit(60) == 2
    lines = [line for line in p.output().splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("[realsense_node] error: ") and message in lines[0], lines[0]


def test_source_bag_is_the_deprecated_name_of_recording(procs):
    """`source:=bag` opens a recording as `source:=recording` does, after one deprecation line."""
    p = procs.node(
        "realsense_node", params={"source": "bag", "bag_path": "/nonexistent/x.bag"}, name="old", watch=False
    )
    assert p.wait_exit(60) == 2
    lines = [line for line in p.output().splitlines() if line.strip()]
    assert len(lines) == 2, lines
    assert "source 'bag' is deprecated: use source:=recording" in lines[0], lines[0]
    assert lines[1] == "[realsense_node] error: recording not found: /nonexistent/x.bag", lines[1]


def test_capture_states_are_the_status_message_constants():
    """CaptureStatus.state carries CaptureState values: the enum and the message's STATE_* constants agree."""
    constants = {
        n.removeprefix("STATE_"): getattr(CaptureStatus, n) for n in dir(CaptureStatus) if n.startswith("STATE_")
    }
    assert len(constants) == 6 and constants == {state.name: state.value for state in CaptureState}


LAZY_DEVICE_IMPORT = textwrap.dedent(
    """
    import sys
    sys.modules["open3d"] = None  # any import of open3d now raises ImportError
    from depth_annotation.capture import Profile, SourceError, SyntheticSource
    from depth_annotation.nodes import realsense_node
    params = dict(
        source="device", color_profile="640x480x30", depth_profile="640x480x30", serial_no="",
        **{"depth_module.enable_auto_exposure": False, "rgb_camera.enable_auto_exposure": False},
        **{"depth_module.exposure": 8500, "depth_module.gain": 16, "rgb_camera.exposure": 166, "rgb_camera.gain": 64},
        **{"depth_module.emitter_enabled": 1, "depth_module.laser_power": 150},
    )
    open_device = realsense_node.source_factory(params)
    try:
        open_device().close()  # a RealSense is attached
    except SourceError as exc:  # none here: the SDK looked and said so
        print("device:", exc)
    loaded = sorted(m for m in sys.modules if "synthetic" in m)
    assert not loaded, loaded
    try:  # the control: the synthetic camera does need open3d, so the block above is real
        SyntheticSource(Profile(640, 480, 30), Profile(640, 480, 30))
    except ImportError as exc:
        print("synthetic:", exc)
    else:
        raise AssertionError("the synthetic camera opened without open3d")
    """
)


def test_device_source_does_not_import_open3d():
    """A robot with a real camera needs neither Open3D nor the synthetic scene (they load with SyntheticSource)."""
    run = subprocess.run([sys.executable, "-c", LAZY_DEVICE_IMPORT], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "synthetic: import of open3d halted" in run.stdout, run.stdout


def test_set_camera_info_replaces_and_persists_intrinsics(ros, procs, tmp_path):
    procs.node("realsense_node", namespace="camera", params={"output_dir": str(tmp_path)})
    node = ros.node("calibrator")
    client = node.create_client(SetCameraInfo, f"{NS}/set_camera_info")
    infos: list[CameraInfo] = []
    node.create_subscription(CameraInfo, f"{NS}/color/camera_info", infos.append, qos_profile_sensor_data)
    assert ros.spin_until(lambda: client.service_is_ready() and infos, timeout=60)

    new = CameraInfo(width=640, height=480, distortion_model="plumb_bob", d=[0.01, -0.02, 0.0, 0.0, 0.0])
    new.k = [600.5, 0.0, 319.5, 0.0, 601.5, 241.0, 0.0, 0.0, 1.0]
    fut = client.call_async(SetCameraInfo.Request(camera_info=new))
    assert ros.spin_until(fut.done, timeout=10)
    assert fut.result().success, fut.result().status_message
    infos.clear()
    assert ros.spin_until(lambda: infos and infos[-1].k[0] == pytest.approx(600.5), timeout=10)
    assert list(infos[-1].d)[:2] == pytest.approx([0.01, -0.02])
    assert "600.5" in (tmp_path / "camera_info" / "color.yaml").read_text()

    bad = CameraInfo(width=320, height=240)
    bad.k = [300.0, 0, 160, 0, 300, 120, 0, 0, 1]
    fut = client.call_async(SetCameraInfo.Request(camera_info=bad))
    assert ros.spin_until(fut.done, timeout=10)
    assert not fut.result().success and "does not match" in fut.result().status_message
