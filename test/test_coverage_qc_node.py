"""Multi-process: synthetic driver -> coverage_qc_node; and bad input straight to the QC node."""

import json

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from depth_annotation.msg import DepthQuality
from depth_annotation.nodes.messages import image_msg, make_header, stamp_to_ns

BEST_EFFORT = QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)
# Early holes (two back to back) plus one every 2 s, so an observer that discovers the
# driver late under CI load still sees some.
HOLES = [30, 31, 45, 60, *range(120, 3600, 60)]


def test_injected_holes_are_flagged_and_stamps_match(ros, procs, tmp_path):
    procs.node(
        "realsense_node",
        namespace="camera",
        params={
            "output_dir": str(tmp_path / "cap"),
            "synthetic_hole_frames": str(HOLES),
            "temporal_filter.holes_fill": 0,  # persistency would paint the injected holes over
        },
    )
    procs.node("coverage_qc_node", namespace="camera", params={"output_dir": str(tmp_path / "qc")})
    node = ros.node("qc_observer")
    depth_valid: dict[int, float] = {}
    quality: dict[int, DepthQuality] = {}

    def on_depth(m):
        a = np.frombuffer(bytes(m.data), np.uint16)
        depth_valid[stamp_to_ns(m.header.stamp)] = float((a > 0).mean())

    node.create_subscription(Image, "/camera/aligned_depth_to_color/image_raw", on_depth, BEST_EFFORT)
    node.create_subscription(
        DepthQuality, "/camera/depth_quality", lambda m: quality.__setitem__(stamp_to_ns(m.header.stamp), m), 100
    )

    def holed_seen() -> bool:
        return any(depth_valid[s] < 0.7 for s in set(depth_valid) & set(quality))

    # DepthQuality carries the depth frame's stamp: the frames this process also received (best
    # effort, so not all of them) pair up with their reports by stamp
    assert ros.spin_until(
        lambda: len(quality) >= 90 and len(set(depth_valid) & set(quality)) >= 30 and holed_seen(), timeout=90
    ), (len(quality), len(depth_valid), len(set(depth_valid) & set(quality)))

    common = set(depth_valid) & set(quality)
    assert all(quality[s].header.frame_id == "camera_color_optical_frame" for s in common)
    holed = {s for s in common if depth_valid[s] < 0.7}
    assert 1 <= len(holed) <= len(HOLES)
    for s in common:
        q = quality[s]
        assert abs(q.valid_fraction - depth_valid[s]) < 1e-6
        if s in holed:
            assert q.status == DepthQuality.FLAGGED
            assert "low_coverage" in q.reasons and "roi_hole" in q.reasons
        else:
            assert q.status in (DepthQuality.GOOD, DepthQuality.WARN), list(q.reasons)
            assert "roi_hole" not in q.reasons

    client = node.create_client(Trigger, "/camera/write_report")
    assert ros.spin_until(client.service_is_ready, timeout=10)
    fut = client.call_async(Trigger.Request())
    assert ros.spin_until(fut.done, timeout=30) and fut.result().success, fut.result()
    data = json.loads((tmp_path / "qc" / "qc_report.json").read_text())
    by_stamp = {f["stamp_ns"]: f for f in data["per_frame"]}
    for s, q in quality.items():
        assert s in by_stamp
        assert abs(by_stamp[s]["valid_fraction"] - q.valid_fraction) < 1e-6
        assert by_stamp[s]["status"] == ["GOOD", "WARN", "FLAGGED", "ERROR"][q.status]
    assert set(data["flagged_stamps_ns"]) >= holed
    assert (tmp_path / "qc" / "qc_report.html").exists()


def test_bad_encoding_and_resolution_change(ros, procs, tmp_path):
    # started with the deprecated name of output_dir: it still works, with a warning
    qc = procs.node("coverage_qc_node", namespace="camera", params={"report_dir": str(tmp_path)})
    node = ros.node("feeder")
    pub = node.create_publisher(Image, "/camera/aligned_depth_to_color/image_raw", BEST_EFFORT)
    got: list[DepthQuality] = []
    diags: list[DiagnosticArray] = []
    node.create_subscription(DepthQuality, "/camera/depth_quality", got.append, 50)
    node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 50)
    assert ros.spin_until(lambda: pub.get_subscription_count() > 0, timeout=30)

    def send(arr, enc, i):
        pub.publish(image_msg(arr, enc, make_header(1_000_000_000 + i * 33_000_000, "cam")))

    for i in range(5):
        send(np.zeros((48, 64), np.uint8), "mono8", i)
        ros.spin_until(lambda: False, timeout=0.05)
    assert ros.spin_until(lambda: any(m.status == DepthQuality.ERROR for m in got), timeout=10)

    def error_diags():
        return [s for d in diags for s in d.status if s.level == DiagnosticStatus.ERROR and "depth coverage" in s.name]

    assert ros.spin_until(error_diags, timeout=10)
    values = {kv.key: kv.value for kv in error_diags()[0].values}
    # only unanalysable frames so far: every one counted as an error, no coverage to average
    assert int(values["error"]) == int(values["frames_10s"]) >= 1, values
    assert (values["good"], values["warn"], values["flagged"], values["mean_valid_fraction"]) == ("0", "0", "0", "nan")
    assert "bad_encoding" in got[-1].reasons
    assert qc.alive()
    errors = [line for line in qc.output().splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "16UC1" in errors[0]  # one clear line, not one per frame

    got.clear()
    send(np.full((48, 64), 800, np.uint16), "16UC1", 10)
    ros.spin_until(lambda: len(got) >= 1, timeout=10)
    send(np.full((96, 128), 800, np.uint16), "16UC1", 11)
    assert ros.spin_until(lambda: len(got) >= 2, timeout=10)
    assert "resolution_change" in got[-1].reasons and got[-1].width == 128
    m = np.full((96, 128), 0.8, np.float32)
    m[:48] = np.nan
    send(m, "32FC1", 12)
    assert ros.spin_until(lambda: len(got) >= 3, timeout=10)
    assert abs(got[-1].valid_fraction - 0.5) < 1e-6

    warnings = [line for line in qc.output().splitlines() if "'report_dir' is deprecated" in line]
    assert len(warnings) == 1 and "use 'output_dir'" in warnings[0], qc.output()
    client = node.create_client(Trigger, "/camera/write_report")
    assert ros.spin_until(client.service_is_ready, timeout=10)
    fut = client.call_async(Trigger.Request())
    assert ros.spin_until(fut.done, timeout=30) and fut.result().success, fut.result()
    data = json.loads((tmp_path / "qc_report.json").read_text())
    assert data["per_frame"][-1]["stamp_ns"] == 1_000_000_000 + 12 * 33_000_000
    assert data["status_counts"]["ERROR"] >= 1 and data["per_frame"][-1]["valid_fraction"] == 0.5
