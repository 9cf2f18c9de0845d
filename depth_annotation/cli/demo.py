"""`depth-annotation demo`: the whole suite on the synthetic camera, end to end, in about a minute.

Brings up the node graph as processes (driver, QC, calibration, monocular
depth), runs a calibration on rendered board views through the real service,
records a short session to a rosbag2 file, exports it to HDF5 plus the
annotation package, writes the QC report, and prints where everything is.
All DDS traffic stays on this machine (config/dds/loopback_large_data.xml).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
TOPICS = [
    "/camera/aligned_depth_to_color/image_raw",
    "/camera/color/image_raw",
    "/camera/aligned_depth_to_color/camera_info",
    "/camera/depth_quality",
    "/camera/status",
    "/tf_static",
    "/camera/mono/depth",
    "/camera/mono/fit_quality",
]


def _bin(name: str) -> str:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else (shutil.which(name) or name)


def _mono_model(out: Path) -> tuple[str, str]:
    """Real Depth Anything V2 Small weights if they are available offline, else the tiny untrained model."""
    from depth_annotation.mono import DEFAULT_MODEL, DepthAnything, MonoModelConfig, MonoModelError, save_tiny_model

    local = os.environ.get("DEPTH_ANNOTATION_MODEL", "")
    for candidate in [c for c in (local, DEFAULT_MODEL) if c]:
        try:
            DepthAnything(MonoModelConfig(model=candidate))
            return candidate, "Depth Anything V2 Small (real weights)"
        except MonoModelError:
            continue
    path = save_tiny_model(out / "models" / "tiny-untrained")
    return str(path), "TINY UNTRAINED test model (no real weights found offline: mono depth is meaningless)"


class Graph:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen]] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, cmd: list[str]) -> None:
        log = open(self.log_dir / f"{name}.log", "wb")
        self.procs.append(
            (
                name,
                subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1")),
            )
        )

    def check(self) -> None:
        for name, p in self.procs:
            if p.poll() is not None and not (name == "recorder" and p.returncode == 0):
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-1500:]
                raise RuntimeError(f"{name} exited with {p.returncode}:\n{tail}")

    def stop(self) -> None:
        for _, p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for _, p in self.procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()


def run_demo(out: Path, *, short: bool = False) -> int:
    from depth_annotation.calibration import BoardSpec, render_board, varied_board_poses
    from depth_annotation.common import default_intrinsics
    from depth_annotation.dataset import ExportOptions, check_dataset, export_bags, render_h5_frame

    t_start = time.monotonic()
    out = out.resolve()
    if out.exists():
        shutil.rmtree(out)  # the demo owns this directory
    out.mkdir(parents=True)
    os.environ.setdefault("ROS_DOMAIN_ID", str(20 + os.getpid() % 70))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "SYSTEM_DEFAULT"
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(REPO / "config" / "dds" / "loopback_large_data.xml")
    os.environ.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    record_s = 4.0 if short else 10.0
    n_views = 30  # some are dropped (best-effort topic, busy CPU) or too similar; 20 must be kept

    print("[demo] preparing the monocular model ...", flush=True)
    model, model_label = _mono_model(out)
    cfg = REPO / "config"

    def ros(params: dict[str, object]) -> list[str]:
        return [a for k, v in params.items() for a in ("-p", f"{k}:={v}")]

    graph = Graph(out / "logs")
    graph.start(
        "realsense_node",
        [
            _bin("realsense_node"),
            "--ros-args",
            "--params-file",
            str(cfg / "realsense.yaml"),
            "-r",
            "__ns:=/camera",
            *ros(
                {
                    "source": "synthetic",
                    "output_dir": out / "captures",
                    "session_id": "demo",
                    "synthetic_motion": "true",
                }
            ),
        ],
    )
    graph.start(
        "coverage_qc_node",
        [
            _bin("coverage_qc_node"),
            "--ros-args",
            "--params-file",
            str(cfg / "coverage_qc.yaml"),
            "-r",
            "__ns:=/camera",
            *ros({"output_dir": out / "qc"}),
        ],
    )
    graph.start(
        "calibration_node",
        [
            _bin("calibration_node"),
            "--ros-args",
            "--params-file",
            str(cfg / "calibration.yaml"),
            "-r",
            "__ns:=/camera",
            "-r",
            "color/image_raw:=/demo/board/image_raw",
            *ros({"output_dir": out, "detect_rate_hz": 50.0}),
        ],
    )
    graph.start(
        "mono_depth_node",
        [
            _bin("mono_depth_node"),
            "--ros-args",
            "--params-file",
            str(cfg / "mono_depth.yaml"),
            "-r",
            "__ns:=/camera",
            *ros({"model": model, "threads": 1}),
        ],
    )

    import rclpy
    from rclpy.client import Client
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_srvs.srv import Trigger

    from depth_annotation.msg import DepthQuality
    from depth_annotation.nodes.messages import image_msg, make_header
    from depth_annotation.srv import Calibrate

    rclpy.init()
    node = rclpy.create_node("demo")
    summary: dict = {"mono_model": model_label}
    try:
        pub = node.create_publisher(
            Image, "/demo/board/image_raw", QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        )
        quality: list = []
        node.create_subscription(DepthQuality, "/camera/depth_quality", quality.append, 100)

        def spin_until(pred, timeout):
            end = time.monotonic() + timeout
            while time.monotonic() < end and not pred():
                graph.check()
                rclpy.spin_once(node, timeout_sec=0.05)
            return pred()

        print("[demo] starting driver (synthetic camera), QC, calibration and mono depth nodes ...", flush=True)
        if not spin_until(lambda: len(quality) > 10 and pub.get_subscription_count() > 0, 90):
            raise RuntimeError("the node graph did not come up within 90 s (see logs/)")
        print(f"[demo] recording {record_s:.0f} s of {len(TOPICS)} topics ...", flush=True)
        graph.start(
            "recorder",
            [_bin("depth-annotation"), "record", *TOPICS, "--out", str(out / "bag"), "--duration", str(record_s)],
        )

        print(f"[demo] calibrating from {n_views} rendered ChArUco views ...", flush=True)
        spec, intr = BoardSpec(), default_intrinsics(640, 480)
        for i, pose in enumerate(varied_board_poses(spec, intr, n_views, seed=1)):
            gray = render_board(spec, intr, pose, noise_sigma=1.0, rng=np.random.default_rng(i)).image
            msg = image_msg(
                cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB),
                "rgb8",
                make_header(time.time_ns(), "board_camera_optical_frame"),
            )
            for _ in range(2):
                pub.publish(msg)
                spin_until(lambda: False, 0.1)
        client: Client[Any, Any] = node.create_client(Calibrate, "/camera/calibrate")
        spin_until(client.service_is_ready, 30)
        fut = client.call_async(Calibrate.Request(min_views=20))
        spin_until(fut.done, 60)
        cal = fut.result()
        if cal is None:
            raise SystemExit("demo: error: the calibrate service did not answer within 60 s")
        summary["calibration"] = {
            "success": cal.success,
            "rms_px": cal.rms_px,
            "views": cal.views_used,
            "fx": cal.k[0],
            "fx_true": intr.fx,
            "message": cal.message,
            "file": cal.saved_path,
        }

        recorder = next(p for n, p in graph.procs if n == "recorder")
        end = time.monotonic() + record_s + 60
        while recorder.poll() is None and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
        report_client: Client[Any, Any] = node.create_client(Trigger, "/camera/write_report")
        spin_until(report_client.service_is_ready, 10)
        fut = report_client.call_async(Trigger.Request())
        spin_until(fut.done, 30)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        graph.stop()

    rec_log = (out / "logs" / "recorder.log").read_text(errors="replace")
    if not (out / "bag").exists():
        raise RuntimeError(f"the recorder wrote no bag:\n{rec_log[-1500:]}")
    print("[demo] exporting the recording to HDF5 + annotation package ...", flush=True)
    t0 = time.perf_counter()
    report = export_bags(
        [(out / "bag", "demo_scene")], ExportOptions(out_dir=out / "dataset", every_k=5), progress=False
    )
    export_s = time.perf_counter() - t0
    problems = check_dataset(out / "dataset")
    render_h5_frame(out / "dataset" / "export" / "dataset.h5", out / "dataset" / "preview.png")
    qc = json.loads((out / "qc" / "qc_report.json").read_text())
    meta = json.loads((out / "captures" / "demo" / "capture_metadata.json").read_text())

    depth_frames, cal = meta["frames"]["aligned_depth"], summary["calibration"]
    rows = [
        ("frames published by the driver", depth_frames["frames_published"]),
        ("frames dropped / skipped", f"{depth_frames['frames_dropped']} / {depth_frames['frames_skipped']}"),
        ("frames analysed by QC", qc["frames"]),
        ("mean valid depth coverage", f"{qc['valid_fraction']['mean'] * 100:.1f} %" if qc["valid_fraction"] else "n/a"),
        ("QC good / warn / flagged", "{GOOD} / {WARN} / {FLAGGED}".format(**qc["status_counts"])),
        (
            "calibration",
            f"{'OK' if cal['success'] else 'FAILED'}: RMS {cal['rms_px']:.3f} px over "
            f"{cal['views']} views, fx {cal['fx']:.1f} (true {cal['fx_true']:.1f})",
        ),
        ("monocular model", model_label),
        ("frames exported", report["frames"]),
        ("export throughput", f"{report['frames'] / export_s:.1f} frames/s (gzip-4, parallel)"),
        ("annotation tasks", report["annotation"]["tasks"]),
        ("dataset checks", "passed" if not problems else "; ".join(problems)),
        ("wall time", f"{time.monotonic() - t_start:.0f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n| " + "what".ljust(width) + " | result |\n|" + "-" * (width + 2) + "|--------|")
    for k, v in rows:
        print(f"| {k.ljust(width)} | {v} |")
    print(f"""
Outputs under {out}:
  captures/demo/capture_metadata.json   driver: sensor, filters, frame accounting
  qc/qc_report.html, qc_report.json     coverage QC session report
  calibration/calibration.json, *.yaml  intrinsics (RMS, per-view errors), camera_info YAML
  bag/                                  the recorded rosbag2 (mcap)
  dataset/export/dataset.h5             /episode_N/{{depth,color,timestamps_ns,camera_intrinsics,...}}
  dataset/dataset_info.json, taxonomy.json
  dataset/annotation/                   rgb/, depth16/, depth_color/, label_config.xml, label_studio_tasks.json
  dataset/preview.png                   one frame: RGB, depth, QC, point cloud
  logs/                                 each node's output""")
    annotation_round_trip(out / "annotation_round_trip")
    atomic = {"rows": {k: str(v) for k, v in rows}, "calibration": summary["calibration"], "dataset_problems": problems}
    (out / "demo_summary.json").write_text(json.dumps(atomic, indent=2))
    return 0 if (not problems and summary["calibration"]["success"]) else 1


def annotation_round_trip(out: Path, *, frames: int = 16) -> dict[str, Any]:
    """The guide's step 5 on synthetic ground truth: two annotators' Label Studio export, imported and validated.

    A synthetic recording is exported with 20 % of the tasks marked for two
    annotators; annotator 1 is the ground truth, annotator 2 erodes object
    boundaries by 3 px and shifts keypoints by 8 mm. Their export is imported and
    validated; the headline numbers are printed and returned.
    """
    from depth_annotation.annotation import (
        AnnotatorProfile,
        LabelStudioCodec,
        annotators_export,
        dataset_files,
        import_export,
        load_tasks,
        synthetic_dataset,
        validate_dataset,
    )

    print("[demo] annotation round trip: a synthetic two-annotator Label Studio export, imported and validated ...")
    t0 = time.perf_counter()
    dataset, truth, scene = synthetic_dataset(out, frames=frames, every_k=2, overlap=0.2, fps=2.0)
    second = AnnotatorProfile(2, boundary_px=-3, keypoint_shift_mm=8.0)
    with LabelStudioCodec() as codec:
        export = annotators_export(load_tasks(dataset), truth, scene, [AnnotatorProfile(1), second], codec)
        export_path = out / "label_studio_export.json"
        export_path.write_text(json.dumps(export))
        imported = import_export(export_path, dataset_files(dataset), codec=codec).summary()
    result = validate_dataset(dataset)
    s = result.report["summary"]

    def fmt(v: float | None, unit: str = "") -> str:
        return "n/a" if v is None else f"{v:.3f}{unit}"

    rows = [
        ("frames imported", f"{imported['frames']} ({imported['frames_with_several_annotators']} by two annotators)"),
        ("keypoints (3D)", imported["keypoints"]),
        ("frames passed / failed", f"{s['passed']} / {s['failed']} (failed -> reannotation_tasks.json)"),
        ("median IoU / kappa", f"{fmt(s['median_iou'])} / {fmt(s['median_kappa'])}"),
        ("keypoint agreement p95", fmt(s["keypoint_agreement_p95_mm"], " mm")),
        ("keypoint to surface p95", fmt(s["keypoint_surface_p95_mm"], " mm")),
        ("dataset flags", len(result.report["dataset"]["flags"])),
        ("round trip time", f"{time.perf_counter() - t0:.1f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n| " + "annotation round trip".ljust(width) + " | result |\n|" + "-" * (width + 2) + "|--------|")
    for k, v in rows:
        print(f"| {k.ljust(width)} | {v} |")
    print(
        f"  report: {result.paths['html']}\n  export: {export_path} (user1 = ground truth, user2 = 3 px erosion, 8 mm)"
    )
    return {"imported": imported, "validation": s, "report": str(result.paths["html"])}
