"""live_exporter_node: the offline exporter's pipeline, fed live (a camera, or `ros2 bag play`).

Subscribes to aligned depth, colour, camera_info and (when present) DepthQuality,
synchronizes them by stamp and writes the same HDF5 + dataset_info + annotation
files as `depth-annotation export`. An episode ends on `finish_episode`
(std_srvs/Trigger), after `episode_gap_s` without depth, or at shutdown, which
also commits the dataset (the HDF5 file appears only then, complete).

It never reads a bag itself (it was called `bag_exporter_node` until this release;
that name still starts it, with a deprecation line). Its dataset folder is
`output_dir` (`out_dir` still works, with a warning).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from functools import partial
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger

from depth_annotation.common import DEFAULT_TAXONOMY, ImageConversionError, default_taxonomy_path, load_taxonomy
from depth_annotation.dataset import CODECS, DEFAULT_TOPICS, ExportError, ExportOptions, ExportSession, stamp_of
from depth_annotation.msg import DepthQuality

from .params import StartupError, declare, declare_renamed
from .runtime import run_node

NODE_NAME = "live_exporter_node"


def _level_or_default(level: int) -> int | None:
    return None if level < 0 else level


class LiveExporterNode(Node):
    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        d = partial(declare, self)
        # Relative names (config/exporter.yaml) resolve against the node's namespace, as every other node's topics do.
        topics = {
            k: self.resolve_topic_name(d(f"{k}_topic", v, f"{k} topic to export (relative: in the node's namespace)"))
            for k, v in DEFAULT_TOPICS.items()
        }
        out_dir = Path(
            declare_renamed(
                self,
                "output_dir",
                "out_dir",
                "dataset",
                "dataset directory (export/dataset.h5, dataset_info.json, annotation/)",
            )
        ).expanduser()
        self.scene_id = d("scene_id", "live", "scene id of the episodes recorded by this run")
        self.episode_gap_ns = int(
            1e9 * d("episode_gap_s", 3.0, "no depth for this long ends the episode", low=0.1, high=3600.0)
        )
        tax_path = d("taxonomy", "", "taxonomy YAML (default config/taxonomy.yaml)") or default_taxonomy_path()
        try:
            opts = ExportOptions(
                out_dir=out_dir,
                topics=topics,
                tolerance_ns=int(
                    1e6 * d("tolerance_ms", 1000 / 60, "max stamp difference in a frame", low=0.0, high=10000.0)
                ),
                codec=d("codec", "gzip", "chunk compression: " + ", ".join(CODECS), choices=CODECS),
                level=_level_or_default(d("level", -1, "codec level; -1: the codec's default", low=-1, high=9)),
                every_k=d("every_k", 10, "annotation: every k-th frame", low=1, high=100000),
                exclude_flagged=d("exclude_flagged", True, "annotation: skip QC-flagged frames"),
                overwrite=d("overwrite", False, "replace an existing dataset.h5"),
                seed=d("seed", 0, "split seed", low=0, high=2**31 - 1),
                taxonomy=load_taxonomy(tax_path) if tax_path else DEFAULT_TAXONOMY,
            )
            self.session = ExportSession(opts)
        except (ExportError, ValueError) as exc:
            raise StartupError(str(exc)) from None
        self._lock = threading.Lock()
        self._episode_open = False
        self._last_depth_ns = 0
        self.failed: str | None = None
        # Callbacks only queue messages (releasing the middleware's buffers at once); a worker
        # thread synchronizes and writes, so a slow disk never stalls delivery to other nodes.
        self._queue: queue.Queue = queue.Queue(
            maxsize=d("queue_size", 600, "messages buffered ahead of the writer", low=10, high=100000)
        )
        self.queue_overflows = 0
        qos = QoSProfile(depth=30, reliability=ReliabilityPolicy.BEST_EFFORT)  # matches bag play of sensor-data topics
        for stream, msg_type in (("depth", Image), ("color", Image), ("info", CameraInfo), ("quality", DepthQuality)):
            self.create_subscription(msg_type, topics[stream], lambda m, s=stream: self._enqueue(s, m), qos)
        self._worker = threading.Thread(target=self._work, name="exporter", daemon=True)
        self._worker.start()
        self.create_service(Trigger, "finish_episode", self._on_finish)
        self.create_timer(0.5, self._check_gap)
        self.get_logger().info(f"exporting {topics['depth']} + {topics['color']} to {out_dir}")

    def _enqueue(self, stream: str, msg) -> None:
        if stream == "depth":
            self._last_depth_ns = time.monotonic_ns()
        try:
            self._queue.put_nowait((stream, msg))
        except queue.Full:
            self.queue_overflows += 1
            self.get_logger().warning(
                "writer behind: message dropped (raise queue_size or slow the replay)", throttle_duration_sec=5.0
            )

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._on(*item)

    def _on(self, stream: str, msg) -> None:
        with self._lock:
            if self.failed:
                return
            if not self._episode_open:
                self.session.begin_episode(scene_id=self.scene_id, source=f"live:{self.get_namespace()}")
                self._episode_open = True
            try:
                self.session.add(stream, stamp_of(msg), msg)
            except (ExportError, ImageConversionError, ValueError) as exc:
                self.failed = str(exc)
                self.get_logger().error(f"export stopped: {exc}")

    def _end_episode(self) -> dict | None:
        if not self._episode_open:
            return None
        self._episode_open = False
        return self.session.end_episode()

    def _check_gap(self) -> None:
        if not self._queue.empty():
            return  # still writing what arrived: not a gap yet
        with self._lock:
            if (
                self._episode_open
                and self._last_depth_ns
                and time.monotonic_ns() - self._last_depth_ns > self.episode_gap_ns
            ):
                summary = self._end_episode()
                if summary:
                    self.get_logger().info(
                        f"episode {summary['episode']} ended after a gap: {summary['frames']} frames"
                    )

    def _on_finish(self, req, res):
        with self._lock:
            summary = self._end_episode()
        res.success = summary is not None
        res.message = f"{summary['episode']}: {summary['frames']} frames" if summary else "no episode in progress"
        return res

    def shutdown(self) -> None:
        self._queue.put(None)  # after everything already queued
        self._worker.join(600.0)
        with self._lock:
            self._end_episode()
            if not self.session.episodes:
                self.session.abort()
                received: dict[str, int] = {}
                for ep in self.session.sync_counts:
                    for topic, c in ep["topics"].items():
                        received[topic] = received.get(topic, 0) + c["received"]
                self.get_logger().warning(
                    f"no synchronized frames: nothing written (messages received: {received or 'none'})"
                )
                return
            report = self.session.commit()
        self.get_logger().info(f"dataset written: {report['hdf5']} ({report['frames']} frames)")


def main(args: list[str] | None = None) -> int:
    return run_node(LiveExporterNode, args, name=NODE_NAME, threads=2)


if __name__ == "__main__":
    sys.exit(main())
