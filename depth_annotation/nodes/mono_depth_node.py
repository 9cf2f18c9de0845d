"""mono_depth_node: Depth Anything V2 on a colour stream, made metric.

Subscribes to `color/image_raw` (rgb8/bgr8) and, for sensor_fit, to
`aligned_depth_to_color/image_raw`. Publishes under `mono/`: `disparity` (32FC1,
the model's relative output), `depth` (16UC1 mm), `depth_m` (32FC1 m),
`valid_mask` (mono8, 255 = valid) and `fit_quality` (MonoFitQuality), all with
the input image's header. `backend:=torch` (CPU or GPU: the device path, optionally
compiled or CUDA-graphed) or `backend:=onnxruntime|openvino` with an exported .onnx model
(CPU, no torch); with a fixed scale (scale_file, metric model, or sensor_fit's last fit
on a frame without sensor depth) the metric depth is computed on the GPU with the output.
Only the latest frame is processed: a frame that
arrives while the model is busy replaces the waiting one (counted as dropped).
`/diagnostics` reports the counters (received = processed + failed + dropped +
pending + in progress) and `max_backlog`, the most frames ever seen waiting,
derived from those counters: 1 for the latest-frame rule.
"""

from __future__ import annotations

import sys
import threading
import time
from functools import partial

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

from depth_annotation.common import (
    ImageConversionError,
    StampBuffer,
    depth_to_metres,
    depth_to_millimetres,
    image_to_array,
    image_to_rgb,
)
from depth_annotation.mono import (
    BACKENDS,
    DEFAULT_MODEL,
    MODES,
    PREPROCESS,
    MetricAligner,
    MetricConfigError,
    MonoModelConfig,
    MonoModelError,
    load_model,
    load_scale_file,
)
from depth_annotation.msg import MonoFitQuality

from .faults import FaultGuard
from .messages import diagnostic_array, diagnostic_status, image_msg, stamp_to_ns
from .params import StartupError, declare, declare_renamed
from .runtime import run_node

NODE_NAME = "mono_depth_node"


class MonoDepthNode(Node):
    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        d = partial(declare, self)
        cfg = MonoModelConfig(
            model=d(
                "model",
                DEFAULT_MODEL,
                "torch: Hugging Face hub id or local directory of a Depth Anything checkpoint; "
                "onnxruntime/openvino: a .onnx file from `depth-annotation mono export-onnx`",
            ),
            backend=d("backend", "torch", "inference backend (onnxruntime/openvino: CPU, no torch)", choices=BACKENDS),
            device=d("device", "cpu", "cpu, cuda or cuda:N (torch)"),
            fp16=d("fp16", True, "reduced precision: fp16 on CUDA, OpenVINO's bf16 where the CPU has it"),
            input_size=d(
                "input_size", 518, "network input size (0: native resolution; fixed in an ONNX model)", low=0, high=4096
            ),
            offline=d("offline", True, "never download weights (fail with instructions instead)"),
            allow_non_commercial=d("allow_non_commercial", False, "allow the CC-BY-NC Base/Large checkpoints"),
            preprocess=d(
                "preprocess",
                "device",
                "device: resize/normalise where the model runs; processor: transformers'",
                choices=PREPROCESS,
            ),
            compile=d("compile", False, "torch.compile the network (torch; compiles on the first frames)"),
            cuda_graphs=d("cuda_graphs", False, "replay a captured CUDA graph per image size (torch on CUDA)"),
            threads=declare_renamed(
                self,
                "threads",
                "torch_threads",
                0,
                "CPU threads for inference (0: the backend's default, all cores)",
                low=0,
                high=256,
            ),
        )
        mode = d("metric_mode", "sensor_fit", "how relative output becomes metric", choices=MODES)
        scale_file = d(
            "scale_file", "", "calibration JSON with a mono_scale section (scale_file mode; sensor_fit fallback)"
        )
        self.sync_tolerance_ns = int(
            1e9 * d("sync_tolerance_s", 0.005, "max stamp difference to a sensor depth frame", low=0.0, high=1.0)
        )
        self.sensor_wait_s = d(
            "sensor_wait_s", 0.25, "how long a colour frame waits for its sensor depth frame", low=0.0, high=5.0
        )
        try:
            scale = load_scale_file(scale_file) if scale_file else None
            self.aligner = MetricAligner(
                mode,
                scale=scale,
                holdout_fraction=d(
                    "holdout_fraction", 0.2, "pixels kept out of the fit to score it", low=0.01, high=0.9
                ),
                min_depth_m=d("min_depth_m", 0.1, "metric depth below this is invalid", low=0.0, high=100.0),
                max_depth_m=d("max_depth_m", 10.0, "metric depth above this is invalid", low=0.01, high=1000.0),
            )
            self.model = load_model(cfg)
        except (MetricConfigError, MonoModelError) as exc:
            raise StartupError(str(exc)) from None
        if mode == "metric_model" and not self.model.is_metric:
            raise StartupError(
                f"metric_mode metric_model needs a metric checkpoint; {cfg.model} predicts relative depth"
            )
        if self.model.untrained:
            self.get_logger().warning(f"{cfg.model} is an UNTRAINED test model: its depth is meaningless")
        m = self.model
        self.get_logger().info(f"model {cfg.model} ({m.parameters / 1e6:.2f} M params, {m.describe()}), mode {mode}")

        self._lock = threading.Condition()
        self._pending: Image | None = None
        self.received = self.dropped = self.processed = self.failed = 0
        self.max_backlog = 0
        self._busy = False
        self._infer_ms: list[float] = []
        self._depth: StampBuffer[np.ndarray] = StampBuffer(30)
        self.guard = FaultGuard(self)  # a bad input message: counted and named on /diagnostics, logged
        self._errors_reported = 0
        group = ReentrantCallbackGroup()
        sensor_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
        g = self.guard
        topic = "color/image_raw"
        self.create_subscription(Image, topic, g.callback(topic, self._on_color), sensor_qos, callback_group=group)
        if mode == "sensor_fit" or scale_file:
            topic = "aligned_depth_to_color/image_raw"
            self.create_subscription(Image, topic, g.callback(topic, self._on_depth), sensor_qos, callback_group=group)
        else:
            self.sensor_wait_s = 0.0  # no sensor depth is coming
        self.pub_disp = self.create_publisher(Image, "mono/disparity", qos_profile_sensor_data)
        self.pub_depth = self.create_publisher(Image, "mono/depth", qos_profile_sensor_data)
        self.pub_depth_m = self.create_publisher(Image, "mono/depth_m", qos_profile_sensor_data)
        self.pub_mask = self.create_publisher(Image, "mono/valid_mask", qos_profile_sensor_data)
        self.pub_fit = self.create_publisher(MonoFitQuality, "mono/fit_quality", 10)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0, self._on_diagnostics, callback_group=group)
        self._stop = False
        self._worker = threading.Thread(target=self._work, name="mono-inference", daemon=True)
        self._worker.start()

    # --- input ------------------------------------------------------------------------------
    def _on_color(self, msg: Image) -> None:
        with self._lock:
            self.received += 1
            if self._pending is not None:
                self.dropped += 1  # latest frame wins: never a backlog
            self._pending = msg
            self.max_backlog = max(self.max_backlog, self._waiting())
            self._lock.notify()

    def _waiting(self) -> int:
        """Frames received and not yet processed, failed, dropped or in inference (call with the lock held).

        From the counters, not from the queue, so any change to the queueing shows here."""
        return self.received - self.processed - self.failed - self.dropped - int(self._busy)

    def _on_depth(self, msg: Image) -> None:
        arr = depth_to_metres(image_to_array(msg), msg.encoding)  # a bad frame: reported by the guard
        with self._lock:
            self._depth.put(stamp_to_ns(msg.header.stamp), arr)
            self._lock.notify_all()

    def _sensor_for(self, stamp: int) -> np.ndarray | None:
        """The sensor depth frame for `stamp`. Colour and aligned depth of one frame arrive in
        either order, so wait (bounded) while a matching frame can still come."""
        deadline = time.monotonic() + self.sensor_wait_s
        with self._lock:
            while True:
                match = self._depth.nearest(stamp, self.sync_tolerance_ns)
                if match is not None:
                    return match[1]
                newest = self._depth.newest_stamp()
                remaining = deadline - time.monotonic()
                if self._stop or remaining <= 0 or (newest is not None and newest > stamp + self.sync_tolerance_ns):
                    return None  # timed out, or depth has moved past this frame (its depth was lost)
                self._lock.wait(remaining)

    # --- inference loop ---------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._stop:
                    self._lock.wait(0.2)
                if self._stop:
                    return
                msg, self._pending = self._pending, None
                self._busy = True
            infer_ms = None
            try:
                infer_ms = self._process(msg)
            except (ImageConversionError, MonoModelError, MetricConfigError) as exc:
                self.guard.record(f"{self.resolve_topic_name('color/image_raw')} (frame skipped)", exc)
            except Exception as exc:
                if self._stop:
                    return
                self.get_logger().error(f"inference failed: {exc!r}", throttle_duration_sec=5.0)
            finally:
                with self._lock:  # one step, so the counters always add up to `received`
                    self._busy = False
                    if infer_ms is None:
                        self.failed += 1
                    else:
                        self.processed += 1
                        self._infer_ms = (self._infer_ms + [infer_ms])[-50:]

    def _process(self, msg: Image) -> float:
        """Infer, align and publish one frame; returns the inference time in ms."""
        rgb = image_to_rgb(msg)
        sensor = self._sensor_for(stamp_to_ns(msg.header.stamp))  # before inference: the buffer moves on meanwhile
        # the metric transform goes with the frame to the GPU when its scale is known beforehand
        pred = self.model.predict_frame(rgb, self.aligner.pixel_transform(sensor is not None))
        output, infer_ms = pred.output, pred.inference_ms
        depth_m, valid, rep = self.aligner.align(output, sensor, depth_m=pred.depth_m)
        header = msg.header
        self.pub_disp.publish(image_msg(output.astype(np.float32), "32FC1", header))
        self.pub_depth_m.publish(image_msg(np.nan_to_num(depth_m, nan=0.0).astype(np.float32), "32FC1", header))
        self.pub_depth.publish(image_msg(depth_to_millimetres(depth_m, "32FC1"), "16UC1", header))
        self.pub_mask.publish(image_msg(valid.astype(np.uint8) * 255, "mono8", header))
        q = MonoFitQuality(
            header=header,
            mode=rep.mode,
            fitted=rep.fitted,
            scale=float(rep.scale),
            shift=float(rep.shift),
            inlier_ratio=float(rep.inlier_ratio),
            abs_rel=float(rep.abs_rel),
            delta_1_25=float(rep.delta_1_25),
            fit_pixels=rep.fit_pixels,
            eval_pixels=rep.eval_pixels,
            inference_ms=float(infer_ms),
            fit_ms=float(rep.fit_ms),
        )
        self.pub_fit.publish(q)
        return infer_ms

    def _on_diagnostics(self) -> None:
        with self._lock:
            values = {
                "received": self.received,
                "processed": self.processed,
                "dropped": self.dropped,
                "failed": self.failed,
                "max_backlog": self.max_backlog,
                "pending": int(self._pending is not None),
                "in_progress": int(self._busy),
                "inference_ms_mean": float(np.mean(self._infer_ms)) if self._infer_ms else float("nan"),
            }
        errors = self.guard.total
        values["input_errors"] = errors
        level = DiagnosticStatus.OK if values["processed"] else DiagnosticStatus.WARN
        message = f"{values['processed']} frames, {values['dropped']} dropped (latest-frame-only)"
        if errors > self._errors_reported:  # new bad input since the last report: ERROR, naming it
            self._errors_reported = errors
            level = DiagnosticStatus.ERROR
            message += f"; {errors} input message(s) ignored, last {self.guard.last_error}"
        status = diagnostic_status(level, f"{self.get_fully_qualified_name()}: inference", message, values)
        self.pub_diag.publish(diagnostic_array(self.get_clock().now().nanoseconds, [status]))

    def shutdown(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        self._worker.join(10.0)


def main(args: list[str] | None = None) -> int:
    return run_node(MonoDepthNode, args, name=NODE_NAME, threads=3)


if __name__ == "__main__":
    sys.exit(main())
