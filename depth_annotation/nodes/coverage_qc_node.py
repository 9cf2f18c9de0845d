"""coverage_qc_node: per-frame depth quality, diagnostics and a session report.

Subscribes to a depth image (default `aligned_depth_to_color/image_raw`, relative
to the namespace: remap it for other sources), 16UC1 millimetres or 32FC1
metres. Publishes `depth_quality` (DepthQuality, same header as the frame),
`/diagnostics` at 1 Hz with rolling statistics, and `overlay` (colorized depth,
invalid pixels magenta) while someone subscribes to it. `write_report`
(std_srvs/Trigger) writes the session report into `output_dir` (formerly
`report_dir`, still accepted with a deprecation warning); shutdown writes it too.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import deque
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from depth_annotation.common import ImageConversionError, QcStatus, colorize_depth, image_to_array
from depth_annotation.msg import DepthQuality
from depth_annotation.qc import (
    BAD_ENCODING,
    RESOLUTION_CHANGE,
    CoverageAnalyzer,
    CoverageConfig,
    CoverageConfigError,
    FrameQuality,
    QCSession,
    error_quality,
)

from .faults import FaultGuard
from .messages import diagnostic_array, diagnostic_status, image_msg, stamp_to_ns
from .params import StartupError, declare, declare_renamed
from .qos import stream_publisher
from .runtime import run_node

NODE_NAME = "coverage_qc_node"
# Thresholds `ros2 param set` changes at run time (from the next frame on); the rest is read-only.
TUNABLE = (
    "good_fraction",
    "flag_fraction",
    "range_min_m",
    "range_max_m",
    "min_in_range_fraction",
    "near_m",
    "max_near_fraction",
    "max_noise_m",
    "max_frame_gap_s",
)


class CoverageQCNode(Node):
    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self._declared = False  # on_change callbacks apply only after the analyzer exists

        def d(name: str, default: Any, description: str, **kw: Any) -> Any:
            on_change = partial(self._retune, name) if name in TUNABLE else None
            return declare(self, name, default, description, on_change=on_change, **kw)

        cfg = CoverageConfig(
            good_fraction=d("good_fraction", 0.85, "valid coverage at or above: GOOD", low=0.0, high=1.0),
            flag_fraction=d("flag_fraction", 0.70, "valid coverage below: FLAGGED", low=0.0, high=1.0),
            range_min_m=d("range_min_m", 0.3, "working range, near end", low=0.0, high=20.0),
            range_max_m=d("range_max_m", 2.0, "working range, far end", low=0.0, high=65.0),
            min_in_range_fraction=d(
                "min_in_range_fraction", 0.5, "in-range fraction below: out_of_range", low=0.0, high=1.0
            ),
            near_m=d("near_m", 0.28, "sensor minimum range: closer valid depth counts as too close", low=0.0, high=5.0),
            max_near_fraction=d("max_near_fraction", 0.02, "too-close fraction above: too_close", low=0.0, high=1.0),
            grid_rows=d("grid_rows", 4, "coverage grid rows", low=1, high=64),
            grid_cols=d("grid_cols", 4, "coverage grid columns", low=1, high=64),
            roi=tuple(d("roi", [0.15, 0.15, 0.85, 0.85], "workspace ROI x0, y0, x1, y1 as image fractions")),
            noise_window=d("noise_window", 10, "frames in the temporal-noise window (0: off)", low=0, high=300),
            max_noise_m=d("max_noise_m", 0.01, "median per-pixel std above: high_noise", low=0.0, high=1.0),
            max_frame_gap_s=d("max_frame_gap_s", 0.1, "stamp gap above: frame_gap", low=0.0, high=60.0),
        )
        if len(cfg.roi) != 4:
            raise StartupError(f"parameter 'roi' needs 4 numbers (x0, y0, x1, y1), got {list(cfg.roi)}")
        try:
            self.analyzer = CoverageAnalyzer(cfg)
        except CoverageConfigError as exc:
            raise StartupError(str(exc)) from None
        self._declared = True
        self.output_dir = Path(
            declare_renamed(self, "output_dir", "report_dir", "qc", "directory for qc_report.json / qc_report.html")
        ).expanduser()
        self.overlay_min_mm = 1000.0 * cfg.range_min_m
        self.overlay_max_mm = 1000.0 * cfg.range_max_m
        self.session = QCSession(cfg, source=self.resolve_topic_name("aligned_depth_to_color/image_raw"))
        self.recent: deque[tuple[float, QcStatus, float]] = deque()  # (arrival time, status, valid fraction)
        self._bad_encodings: set[str] = set()
        self._last_error = ""
        self.guard = FaultGuard(self, self._on_fault)

        self.pub_quality = self.create_publisher(DepthQuality, "depth_quality", 50)
        self.pub_overlay = stream_publisher(self, Image, "overlay")
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        qos = QoSProfile(depth=30, reliability=ReliabilityPolicy.BEST_EFFORT)
        topic = "aligned_depth_to_color/image_raw"
        self.create_subscription(Image, topic, self.guard.callback(topic, self._on_depth), qos)
        self.create_service(Trigger, "write_report", self.guard.service("write_report", self._on_write_report))
        self.create_timer(
            d("diagnostics_period_s", 1.0, "/diagnostics period", low=0.1, high=60.0), self._on_diagnostics
        )

    def _retune(self, name: str, value: float) -> None:
        """Apply a threshold set at run time: validated as a whole config, refused (ValueError) if inconsistent."""
        if not self._declared:
            return  # still declaring: the config is built from the declared values
        changes: dict[str, Any] = {name: float(value)}
        cfg = dataclasses.replace(self.analyzer.config, **changes)
        cfg.validate()  # CoverageConfigError is a ValueError: the set is refused with its reason
        self.analyzer.config = cfg
        self.overlay_min_mm = 1000.0 * cfg.range_min_m
        self.overlay_max_mm = 1000.0 * cfg.range_max_m
        self.get_logger().info(f"{name} set to {value}: applies from the next frame")

    def _on_fault(self, where: str, text: str) -> None:
        """A frame that failed outside the analysis still counts, as an ERROR frame, in /diagnostics."""
        self._last_error = f"{where}: {text}"
        self.recent.append((time.monotonic(), QcStatus.ERROR, 0.0))

    def _on_depth(self, msg: Image) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        cfg = self.analyzer.config
        try:
            arr = image_to_array(msg)
            if msg.encoding in ("16UC1", "mono16"):
                q = self.analyzer.analyze_mm(arr, stamp)
            elif msg.encoding == "32FC1":
                q = self.analyzer.analyze_metres(arr, stamp)
            else:
                raise ImageConversionError(f"depth must be 16UC1 (mm) or 32FC1 (m), got {msg.encoding!r}")
        except ImageConversionError as exc:
            if msg.encoding not in self._bad_encodings:  # one clear line per bad encoding, not one per frame
                self._bad_encodings.add(msg.encoding)
                self.get_logger().error(f"cannot analyse {self.session.source}: {exc}")
            self._last_error = str(exc)
            q = error_quality(stamp, BAD_ENCODING, int(msg.width), int(msg.height), cfg.grid_rows, cfg.grid_cols)
        if RESOLUTION_CHANGE in q.reasons:
            self.get_logger().warning(f"depth resolution changed to {q.width}x{q.height}: per-pixel state reset")
        self._publish(msg, q)
        if q.status != QcStatus.ERROR and self.pub_overlay.get_subscription_count() > 0:
            depth_mm = arr if msg.encoding != "32FC1" else None
            if depth_mm is None:
                from depth_annotation.common import depth_to_millimetres

                depth_mm = depth_to_millimetres(arr, "32FC1")
            rgb = colorize_depth(
                depth_mm, min_mm=self.overlay_min_mm, max_mm=self.overlay_max_mm, invalid_rgb=(255, 0, 255)
            )
            self.pub_overlay.publish(image_msg(rgb, "rgb8", msg.header))

    def _publish(self, msg: Image, q: FrameQuality) -> None:
        out = DepthQuality()
        out.header = msg.header
        out.status = int(q.status)
        out.reasons = list(q.reasons)
        out.width, out.height = q.width, q.height
        out.valid_fraction = float(q.valid_fraction)
        out.in_range_fraction = float(q.in_range_fraction)
        out.roi_valid_fraction = float(q.roi_valid_fraction)
        out.near_fraction = float(q.near_fraction)
        out.median_depth_m = float(q.median_depth_m)
        out.temporal_noise_m = float(q.temporal_noise_m)
        out.frame_gap_s = float(q.frame_gap_s)
        out.grid_rows, out.grid_cols = q.grid_valid_fraction.shape
        out.grid_valid_fraction = q.grid_valid_fraction.ravel().astype(float).tolist()
        self.pub_quality.publish(out)
        self.session.add(q)
        self.recent.append((time.monotonic(), q.status, q.valid_fraction))

    def _on_diagnostics(self) -> None:
        now = time.monotonic()
        while self.recent and now - self.recent[0][0] > 10.0:  # rolling 10 s window
            self.recent.popleft()
        statuses = [s for _, s, _ in self.recent]
        valid = [v for _, s, v in self.recent if s != QcStatus.ERROR]
        if not self.recent:
            level, message = DiagnosticStatus.WARN, "no depth frames in the last 10 s"
        elif QcStatus.ERROR in statuses:
            level, message = DiagnosticStatus.ERROR, self._last_error or "depth frames could not be analysed"
        else:
            flagged = statuses.count(QcStatus.FLAGGED) / len(statuses)
            mostly_warn = statuses.count(QcStatus.WARN) > len(statuses) / 2
            level = DiagnosticStatus.WARN if flagged > 0 or mostly_warn else DiagnosticStatus.OK
            message = f"mean coverage {np.mean(valid) * 100:.1f} %, {flagged * 100:.0f} % of frames flagged"
        span = (self.recent[-1][0] - self.recent[0][0]) if len(self.recent) > 1 else 0.0
        nan = float("nan")
        values = {
            "frames_10s": len(statuses),
            "fps": (len(statuses) - 1) / span if span > 0 else 0.0,
            "mean_valid_fraction": float(np.mean(valid)) if valid else nan,
            "min_valid_fraction": float(np.min(valid)) if valid else nan,
            **{status.name.lower(): statuses.count(status) for status in QcStatus},
            "session_frames": len(self.session.frames),
        }
        name = f"{self.get_fully_qualified_name()}: depth coverage"
        status = diagnostic_status(level, name, message, values)
        self.pub_diag.publish(diagnostic_array(self.get_clock().now().nanoseconds, [status]))

    def _on_write_report(self, req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        try:
            json_path, html_path = self.session.write(self.output_dir)
        except OSError as exc:
            res.success, res.message = False, f"cannot write the report to {self.output_dir}: {exc}"
            return res
        res.success, res.message = True, f"{json_path} {html_path}"
        return res

    def shutdown(self) -> None:
        if self.session.frames:
            json_path, _ = self.session.write(self.output_dir)
            self.get_logger().info(f"QC report: {json_path} ({len(self.session.frames)} frames)")


def main(args: list[str] | None = None) -> int:
    return run_node(CoverageQCNode, args, name=NODE_NAME)


if __name__ == "__main__":
    sys.exit(main())
