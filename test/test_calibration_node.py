"""calibration_node as a process: fed rendered board views over DDS, called with `ros2 service call`-style clients."""

import json

import cv2
import numpy as np
import pytest
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger

from depth_annotation.calibration import BoardSpec, board_mask, expected_plane_depth, render_board, varied_board_poses
from depth_annotation.common import Intrinsics
from depth_annotation.nodes.messages import camera_info_msg, image_msg, make_header
from depth_annotation.srv import Calibrate, CalibrateMonoScale, VerifyDepth

TRUE = Intrinsics(640, 480, 600.0, 604.0, 322.5, 237.8, d=(-0.13, 0.07, 0.0012, -0.0008, -0.02))
QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)


def call(ros, client, request, timeout=30):
    assert ros.spin_until(client.service_is_ready, timeout=30), client.srv_name
    fut = client.call_async(request)
    assert ros.spin_until(fut.done, timeout=timeout)
    return fut.result()


def test_calibrate_verify_and_mono_scale_over_services(ros, procs, tmp_path):
    procs.node(
        "calibration_node",
        namespace="camera",
        params={
            "dataset_dir": str(tmp_path),
            "detect_rate_hz": 100.0,
            "min_mono_frames": 8,
            "verify_frames": 5,
        },
    )
    node = ros.node("board_waver")
    pub_img = node.create_publisher(Image, "/camera/color/image_raw", QOS)
    pub_info = node.create_publisher(CameraInfo, "/camera/color/camera_info", QOS)
    pub_depth = node.create_publisher(Image, "/camera/aligned_depth_to_color/image_raw", QOS)
    pub_rel = node.create_publisher(Image, "/camera/mono/disparity", QOS)
    published_info: list[CameraInfo] = []
    node.create_subscription(
        CameraInfo,
        "/camera/camera_info",
        published_info.append,
        QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL),
    )
    calibrate = node.create_client(Calibrate, "/camera/calibrate")

    early = call(ros, calibrate, Calibrate.Request())
    assert not early.success and "no views" in early.message and early.saved_path == ""
    assert not (tmp_path / "calibration").exists()  # nothing saved on failure

    spec = BoardSpec()
    assert ros.spin_until(lambda: pub_img.get_subscription_count() > 0, timeout=30)
    stamp = 1_000_000_000
    for i, pose in enumerate(varied_board_poses(spec, TRUE, 30, seed=1)):
        gray = render_board(spec, TRUE, pose, noise_sigma=1.0, rng=np.random.default_rng(i)).image
        msg = image_msg(
            cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB), "rgb8", make_header(stamp, "camera_color_optical_frame")
        )
        for _ in range(2):  # best effort: send twice, the node keeps one
            pub_img.publish(msg)
            ros.spin_until(lambda: False, timeout=0.06)
        stamp += 100_000_000

    forced = call(ros, node.create_client(Trigger, "/camera/capture_view"), Trigger.Request())
    assert forced.success and "kept" in forced.message  # the last view again, on request

    res = call(ros, calibrate, Calibrate.Request(min_views=20))
    assert res.success, res.message
    assert res.rms_px < 0.5 and res.views_used >= 20 and len(res.per_view_error_px) == res.views_used
    assert res.k[0] == pytest.approx(TRUE.fx, rel=0.005) and res.k[4] == pytest.approx(TRUE.fy, rel=0.005)
    saved = json.loads(open(res.saved_path).read())
    intr = saved["intrinsics"]
    assert saved["schema_version"] == 1
    assert intr["rms_px"] == pytest.approx(res.rms_px)
    assert intr["per_view_error_px"] == pytest.approx(list(res.per_view_error_px))
    assert intr["intrinsics"]["fx"] == pytest.approx(res.k[0]) and intr["intrinsics"]["d"] == pytest.approx(list(res.d))
    assert (tmp_path / "calibration" / "camera_color.yaml").exists()
    assert ros.spin_until(lambda: bool(published_info), timeout=10)
    assert published_info[-1].k[0] == pytest.approx(res.k[0])

    # Depth check and monocular scale: board frames with aligned depth (2 % far) and relative disparity.
    pub_info.publish(camera_info_msg(TRUE, make_header(stamp, "camera_color_optical_frame")))
    for i, pose in enumerate(varied_board_poses(spec, TRUE, 12, seed=5, distance_m=(0.4, 0.9))):
        stamp += 100_000_000
        header = make_header(stamp, "camera_color_optical_frame")
        gray = render_board(spec, TRUE, pose, noise_sigma=1.0, rng=np.random.default_rng(50 + i)).image
        mask = board_mask(spec, TRUE, pose, inset_squares=0.0)
        z = expected_plane_depth(TRUE, pose, mask)
        depth = np.zeros((480, 640), np.uint16)
        depth[mask] = np.round(z * 1.02 * 1000).astype(np.uint16)
        rel = np.full((480, 640), np.nan, np.float32)
        rel[mask] = (0.8 / z + 0.1).astype(np.float32)  # 1/Z = 1.25 d - 0.125
        for _ in range(2):
            pub_depth.publish(image_msg(depth, "16UC1", header))
            pub_rel.publish(image_msg(rel, "32FC1", header))
            pub_img.publish(image_msg(cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB), "rgb8", header))
            ros.spin_until(lambda: False, timeout=0.08)

    v = call(ros, node.create_client(VerifyDepth, "/camera/verify_depth"), VerifyDepth.Request())
    assert v.success, v.message
    assert v.bias_percent == pytest.approx(2.0, abs=0.3) and v.frames_used >= 1
    m = call(ros, node.create_client(CalibrateMonoScale, "/camera/calibrate_mono_scale"), CalibrateMonoScale.Request())
    assert m.success, m.message
    assert m.scale == pytest.approx(1.25, rel=0.02) and m.shift == pytest.approx(-0.125, abs=0.01)
    doc = json.loads((tmp_path / "calibration" / "calibration.json").read_text())
    assert set(doc) >= {"intrinsics", "depth_check", "mono_scale", "schema_version"}
    assert doc["mono_scale"]["scale"] == pytest.approx(m.scale)

    reset = call(ros, node.create_client(Trigger, "/camera/reset"), Trigger.Request())
    assert reset.success
    again = call(ros, calibrate, Calibrate.Request())
    assert not again.success
