"""mono_depth_node end to end with the tiny model, fed faster than it can infer."""

import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from depth_annotation.common import SyntheticScene, default_intrinsics, orbit_pose
from depth_annotation.mono import save_tiny_model
from depth_annotation.msg import MonoFitQuality
from depth_annotation.nodes.messages import image_msg, make_header, stamp_to_ns

QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)


def test_outputs_match_input_and_backlog_stays_at_one(ros, procs, tmp_path):
    model = save_tiny_model(tmp_path / "tiny")
    procs.node("mono_depth_node", namespace="camera", params={"model": str(model), "metric_mode": "sensor_fit"})
    node = ros.node("mono_feeder")
    pub_color = node.create_publisher(Image, "/camera/color/image_raw", QOS)
    pub_depth = node.create_publisher(Image, "/camera/aligned_depth_to_color/image_raw", QOS)
    outs: dict[str, list] = {k: [] for k in ("disparity", "depth", "depth_m", "valid_mask")}
    for k in outs:
        node.create_subscription(Image, f"/camera/mono/{k}", outs[k].append, QOS)
    # For each depth output: how long before it arrived had its input been sent, measured against the
    # newest input sent by then (latency behind the live stream).
    behind: list[float] = []
    node.create_subscription(
        Image,
        "/camera/mono/depth",
        lambda m: (
            behind.append(newest_sent[0] - sent[stamp_to_ns(m.header.stamp)])
            if stamp_to_ns(m.header.stamp) in sent
            else None
        ),
        QOS,
    )
    newest_sent = [0.0]
    fits: list[MonoFitQuality] = []
    node.create_subscription(MonoFitQuality, "/camera/mono/fit_quality", fits.append, 50)
    diags: list = []  # (arrival time, the node's DiagnosticStatus)
    node.create_subscription(
        DiagnosticArray,
        "/diagnostics",
        lambda m: diags.extend((time.monotonic(), s) for s in m.status if "mono_depth_node" in s.name),
        50,
    )

    intr = default_intrinsics(320, 240)
    frame = SyntheticScene(0).render(intr, orbit_pose(0.0))
    assert ros.spin_until(lambda: pub_color.get_subscription_count() > 0 and pub_depth.get_subscription_count() > 0, 60)
    sent: dict[int, float] = {}
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < 6.0:  # 30 fps, several times faster than the model
        stamp = 1_000_000_000 + i * 33_333_333
        header = make_header(stamp, "camera_color_optical_frame")
        pub_depth.publish(image_msg(frame.depth_mm, "16UC1", header))
        pub_color.publish(image_msg(frame.color, "rgb8", header))
        sent[stamp] = newest_sent[0] = time.monotonic()
        i += 1
        ros.spin_until(lambda: False, timeout=1 / 30)
    t_end = time.monotonic()
    ros.spin_until(lambda: len(fits) > 3 and diags, timeout=20)

    assert len(outs["depth"]) >= 3
    for k, enc in (("disparity", "32FC1"), ("depth", "16UC1"), ("depth_m", "32FC1"), ("valid_mask", "mono8")):
        m = outs[k][-1]
        assert (m.encoding, m.width, m.height) == (enc, 320, 240), k
        assert m.header.frame_id == "camera_color_optical_frame"
        assert stamp_to_ns(m.header.stamp) in sent
    assert {stamp_to_ns(m.header.stamp) for m in outs["depth"]} <= set(sent)
    fitted = [f for f in fits if f.fitted]  # best effort: under load a depth frame can be lost
    assert len(fitted) >= len(fits) // 2, [(f.fitted, f.fit_pixels) for f in fits]
    f = fitted[-1]
    assert f.mode == "sensor_fit" and f.fit_pixels > 500 and f.inference_ms > 0
    assert np.isfinite(f.abs_rel)

    # Latest frame only: outputs lag the newest input by about one inference, never a growing queue.
    stamps = [stamp_to_ns(m.header.stamp) for m in outs["depth"]]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    # A queue would fall further behind the 30 fps stream with every frame (seconds after 6 s).
    infer_s = np.median([q.inference_ms for q in fits]) / 1000
    assert len(behind) >= 3 and np.median(behind) < 3 * infer_s + 0.5, (behind, infer_s)
    # After the first two outputs (the model's warm-up, and the frame that waited for it) an output waited
    # for at most one other inference and its own, plus the sensor wait and delivery: a fixed bound
    # (2.5 s) failed on a 2-core machine at load 8 with the first output 3.4 s behind.
    max_infer_s = max(q.inference_ms for q in fits[1:]) / 1000
    assert max(behind[2:]) < 2 * max_infer_s + 1.0, (behind, max_infer_s)

    # The backlog from the node's counters, sampled once a second while it was fed: frames received and
    # not yet processed, failed or dropped are in the node, and the latest-frame rule allows at most two
    # (one in inference, one waiting). A queue would hold more for as long as the feed outruns the model.
    def counters(status):
        return {kv.key: int(kv.value) for kv in status.values if kv.key != "inference_ms_mean"}

    samples = [counters(d) for _, d in diags]
    fed = [counters(d) for t, d in diags if t0 < t < t_end and counters(d)["received"] > 0]
    assert len(fed) >= 3, samples  # the diagnostics come once a second
    for c in samples:
        in_node = c["received"] - c["processed"] - c["failed"] - c["dropped"]
        assert 0 <= in_node <= 2 and in_node == c["pending"] + c["in_progress"], c
    assert fed[-1]["dropped"] > 0 and fed[-1]["processed"] > fed[0]["processed"], fed  # fed faster than it infers
    assert samples[-1]["max_backlog"] == 1  # frames waited, never more than one


def test_missing_model_fails_with_clear_message(procs, tmp_path):
    p = procs.node("mono_depth_node", params={"model": str(tmp_path / "no_model")}, watch=False)
    assert p.wait_exit(60) == 2
    out = p.output().strip().splitlines()
    assert out[-1].startswith("[mono_depth_node] error: model") and "local directory" in out[-1]


def test_onnxruntime_backend_publishes_the_same_topics(ros, procs, tmp_path):
    from depth_annotation.mono import export_onnx, save_tiny_model

    onnx_file = tmp_path / "tiny.onnx"
    export_onnx(save_tiny_model(tmp_path / "tiny"), onnx_file, image_size=(320, 240))
    p = procs.node(
        "mono_depth_node",
        namespace="camera",
        params={"model": str(onnx_file), "backend": "onnxruntime", "metric_mode": "sensor_fit", "threads": 1},
    )
    node = ros.node("mono_onnx_feeder")
    pub_color = node.create_publisher(Image, "/camera/color/image_raw", QOS)
    pub_depth = node.create_publisher(Image, "/camera/aligned_depth_to_color/image_raw", QOS)
    outs: dict[str, list] = {k: [] for k in ("disparity", "depth", "depth_m", "valid_mask")}
    for k in outs:
        node.create_subscription(Image, f"/camera/mono/{k}", outs[k].append, QOS)
    fits: list[MonoFitQuality] = []
    node.create_subscription(MonoFitQuality, "/camera/mono/fit_quality", fits.append, 50)
    frame = SyntheticScene(0).render(default_intrinsics(320, 240), orbit_pose(0.0))
    assert ros.spin_until(lambda: pub_color.get_subscription_count() > 0 and pub_depth.get_subscription_count() > 0, 60)
    for i in range(40):
        if all(outs.values()) and fits:
            break
        header = make_header(1_000_000_000 + i * 33_333_333, "camera_color_optical_frame")
        pub_depth.publish(image_msg(frame.depth_mm, "16UC1", header))
        pub_color.publish(image_msg(frame.color, "rgb8", header))
        ros.spin_until(lambda: False, timeout=0.25)
    ros.spin_until(lambda: all(outs.values()) and fits, timeout=20)
    for k, enc in (("disparity", "32FC1"), ("depth", "16UC1"), ("depth_m", "32FC1"), ("valid_mask", "mono8")):
        assert outs[k], k
        m = outs[k][-1]
        assert (m.encoding, m.width, m.height, m.header.frame_id) == (enc, 320, 240, "camera_color_optical_frame"), k
    disparity = np.frombuffer(bytes(outs["disparity"][-1].data), np.float32)
    assert np.isfinite(disparity).all() and np.ptp(disparity) > 0  # a real output, not a placeholder
    assert fits and fits[-1].mode == "sensor_fit" and fits[-1].inference_ms > 0
    assert "ONNX Runtime" in p.output() and "network input 392x518" in p.output()  # 320x240 at 518


def test_missing_onnx_runtime_model_fails_with_one_line(procs, tmp_path):
    p = procs.node("mono_depth_node", params={"model": str(tmp_path), "backend": "onnxruntime"}, watch=False)
    assert p.wait_exit(60) == 2
    out = p.output().strip().splitlines()
    assert out[-1].startswith("[mono_depth_node] error: backend onnxruntime needs an exported .onnx file")
