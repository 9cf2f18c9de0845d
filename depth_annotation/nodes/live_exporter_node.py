"""live_exporter_node: the offline exporter's pipeline, fed live (a camera, or `ros2 bag play`).

Subscribes to aligned depth, colour, camera_info and (when present) DepthQuality,
synchronizes them by stamp and writes the same HDF5 + dataset_info + annotation
files as `depth-annotation export`. An episode ends on `finish_episode`
(std_srvs/Trigger), after `episode_gap_s` without depth, or at shutdown, which
also commits the dataset (the HDF5 file appears only then, complete).

Faults: a depth or colour frame of a new size ends the episode cleanly (its frames stay) and
starts a new one at the new size; a frame that cannot be exported is skipped and reported; a
writer failure (disk full) stops the export with an ERROR on `/diagnostics` and the log, the
episode it failed in is dropped from the file (`ExportSession.discard_episode`: a reader sees only
complete episodes), and the episodes written before it are still committed at shutdown. Episode gaps are measured in
message time (header stamps) and on the node's clock (simulated under `use_sim_time`), so a
paused `ros2 bag play --clock` does not split an episode.

It never reads a bag itself (it was called `bag_exporter_node` until this release;
that name still starts it, with a deprecation line). Its dataset folder is
`output_dir` (`out_dir` still works, with a warning).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import deque
from functools import partial
from pathlib import Path
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger

from depth_annotation.common import DEFAULT_TAXONOMY, ImageConversionError, default_taxonomy_path, load_taxonomy
from depth_annotation.dataset import (
    CODECS,
    DEFAULT_TOPICS,
    ExportError,
    ExportOptions,
    ExportOutputError,
    ExportSession,
    stamp_of,
)
from depth_annotation.msg import DepthQuality

from .faults import FaultGuard
from .messages import diagnostic_array, diagnostic_status
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
        self._last_depth_ns = 0  # receive time on the node clock (sim time under use_sim_time)
        self._last_depth_stamp = 0  # message time of the last depth frame in the episode
        self._sizes: dict[str, tuple[int, int]] = {}  # image size per stream in the open episode
        # Colour and camera_info of another size than the open episode's depth: the first frame of a
        # new resolution sends them before its depth, which then replays them into the new episode.
        self._held: deque[tuple[str, int, Any]] = deque(maxlen=HELD_MESSAGES)
        self.failed: str | None = None
        self.skipped = 0
        self.resolution_changes = 0
        self.guard = FaultGuard(self)
        # Callbacks only queue messages (releasing the middleware's buffers at once); a worker
        # thread synchronizes and writes, so a slow disk never stalls delivery to other nodes.
        self._queue: queue.Queue = queue.Queue(
            maxsize=d("queue_size", 600, "messages buffered ahead of the writer", low=10, high=100000)
        )
        self.queue_overflows = 0
        # Under `ros2 launch`, SIGTERM follows Ctrl-C after sigterm_timeout (30 s in our launch files)
        # and SIGKILL 5 s later: the backlog a slow disk left is written for at most this long, then
        # the rest is dropped (and said) so the dataset is always committed in time.
        self.shutdown_drain_s = d(
            "shutdown_drain_s",
            20.0,
            "at shutdown, write what is still queued for at most this long, then drop the rest",
            low=0.0,
            high=3600.0,
        )
        self.finish_timeout_s = d(
            "finish_timeout_s",
            30.0,
            "finish_episode waits this long for the writer to reach it, else withdraws and says so",
            low=0.1,
            high=600.0,
        )
        self._abandon = threading.Event()  # set at the drain deadline: the worker discards what is left
        self.abandoned = 0
        qos = QoSProfile(depth=30, reliability=ReliabilityPolicy.BEST_EFFORT)  # matches bag play of sensor-data topics
        for stream, msg_type in (("depth", Image), ("color", Image), ("info", CameraInfo), ("quality", DepthQuality)):
            callback = self.guard.callback(topics[stream], partial(self._enqueue, stream))
            self.create_subscription(msg_type, topics[stream], callback, qos)
        self.topics = topics
        self._worker = threading.Thread(target=self._work, name="exporter", daemon=True)
        self._worker.start()
        # Its own group: while a call waits for the writer to reach it, the subscriptions keep queueing.
        self.create_service(
            Trigger,
            "finish_episode",
            self.guard.service("finish_episode", self._on_finish),
            callback_group=MutuallyExclusiveCallbackGroup(),
        )
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(0.5, self._check_gap)
        self.create_timer(1.0, self._on_diagnostics)
        self.get_logger().info(f"exporting {topics['depth']} + {topics['color']} to {out_dir}")

    def _enqueue(self, stream: str, msg: Any) -> None:
        if stream == "depth":
            self._last_depth_ns = self.get_clock().now().nanoseconds
        try:
            self._queue.put_nowait((stream, msg))
        except queue.Full:
            self.queue_overflows += 1
            self.get_logger().warning(
                "writer behind: message dropped (raise queue_size or slow the replay)", throttle_duration_sec=5.0
            )

    def _work(self) -> None:
        # Runs until shutdown whatever happens: after a failure it keeps draining the queue
        # (discarding), so callbacks never block and shutdown never waits on a full queue.
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._abandon.is_set():
                if isinstance(item, _FinishRequest):
                    item.decline("shutting down")
                else:
                    self.abandoned += 1
                continue
            try:
                if isinstance(item, _FinishRequest):
                    item.run(self._finish_now)
                else:
                    self._on(*item)
            except Exception as exc:  # the writer failed (disk full, ...): stop the export, keep what is written
                self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self.failed:
                return
            self.failed = f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else str(exc)
            dropped = self._discard_open_episode()
        self.get_logger().error(
            f"export stopped: writer failed: {self.failed}; {dropped}the episodes written before it are kept "
            "and committed at shutdown"
        )

    def _discard_open_episode(self) -> str:
        """Drop the episode the writer failed in (under the lock): the dataset keeps only complete
        episodes. Returns what to say about it."""
        self._episode_open = False
        self._last_depth_stamp = 0
        self._sizes = {}
        try:
            name = self.session.discard_episode(f"the writer failed: {self.failed}")
        except Exception as exc:  # the file is already failing: say so, commit what is there
            return f"the unfinished episode could not be removed ({exc}); "
        return f"the unfinished {name} is discarded, " if name else ""

    def _on(self, stream: str, msg: Any) -> None:
        with self._lock:
            if self.failed:
                return
            stamp = stamp_of(msg)
            if stream in ("color", "info") and (self._other_size(msg) or self._after_gap(stamp)):
                if len(self._held) == self._held.maxlen:
                    self.skipped += 1  # the oldest held one never met a depth of its size
                self._held.append((stream, stamp, msg))
                return
            if stream == "depth":
                self._accept_depth_size(msg)
                if (
                    self._episode_open
                    and self._last_depth_stamp
                    and stamp - self._last_depth_stamp > self.episode_gap_ns
                ):
                    self._log_end(self._end_episode(), f"a {(stamp - self._last_depth_stamp) / 1e9:.1f} s stamp gap")
                    self._sizes = {"depth": (int(msg.width), int(msg.height))}
                self._last_depth_stamp = stamp
            if not self._episode_open:
                self.session.begin_episode(scene_id=self.scene_id, source=f"live:{self.get_namespace()}")
                self._episode_open = True
                if stream == "depth":
                    self._replay_held(stamp)
            self._add(stream, stamp, msg)

    def _add(self, stream: str, stamp: int, msg: Any) -> None:
        try:
            self.session.add(stream, stamp, msg)
        except ExportOutputError:
            raise  # the writer failed (disk full, permission): the worker stops the export
        except (ImageConversionError, ExportError, ValueError) as exc:
            # a frame that cannot be exported (bad encoding, backwards stamp): skipped and reported
            self.skipped += 1
            self.guard.record(self.topics[stream], exc)

    def _other_size(self, msg: Any) -> bool:
        """Whether a colour image or camera_info has another size than the open episode's depth
        (so frames of two sizes never meet in one episode)."""
        known = self._sizes.get("depth")
        return known is not None and (int(msg.width), int(msg.height)) != known

    def _after_gap(self, stamp: int) -> bool:
        """Whether a colour image or camera_info comes a stamp gap after the open episode's last depth:
        it belongs to the next episode, which the depth of its frame opens."""
        return (
            self._episode_open and bool(self._last_depth_stamp) and stamp - self._last_depth_stamp > self.episode_gap_ns
        )

    def _replay_held(self, depth_stamp: int) -> None:
        """When a depth opens an episode: the held colour and camera_info of its size and time (within
        episode_gap_s of it) go into the episode, in stamp order; the others stay held if they may
        still open a later episode of their size, and are dropped (counted as skipped) when stale."""
        size = self._sizes.get("depth")
        keep: list[tuple[str, int, Any]] = []
        for stream, stamp, msg in sorted(self._held, key=lambda item: item[1]):
            if abs(stamp - depth_stamp) > self.episode_gap_ns:
                self.skipped += 1  # stale: from before the gap or long before this episode
            elif (int(msg.width), int(msg.height)) == size:
                self._add(stream, stamp, msg)
            else:
                keep.append((stream, stamp, msg))  # another size, close in time: a depth reordered across topics
        self._held.clear()
        self._held.extend(keep)

    def _accept_depth_size(self, msg: Any) -> None:
        """A depth image of a new size ends the open episode; the next one starts at that size."""
        size = (int(msg.width), int(msg.height))
        known = self._sizes.get("depth")
        if known is None or size == known:
            self._sizes["depth"] = size
            return
        self.resolution_changes += 1
        summary = self._end_episode()
        self._log_end(summary, f"resolution change {known[0]}x{known[1]} -> {size[0]}x{size[1]}", warn=True)
        self._sizes = {"depth": size}

    def _log_end(self, summary: dict | None, why: str, *, warn: bool = False) -> None:
        if summary:
            text = f"episode {summary['episode']} ended by {why}: {summary['frames']} frames kept"
        else:
            text = f"{why}: the open episode had no frames yet"
        (self.get_logger().warning if warn else self.get_logger().info)(text)

    def _end_episode(self) -> dict | None:
        if not self._episode_open:
            return None
        self._episode_open = False
        self._last_depth_stamp = 0
        self._sizes = {}
        return self.session.end_episode()

    def _check_gap(self) -> None:
        if not self._queue.empty():
            return  # still writing what arrived: not a gap yet
        failure = None
        with self._lock:
            if self.failed or not self._episode_open or not self._last_depth_ns:
                return
            # the node clock: wall time, or /clock under use_sim_time (a paused replay is no gap)
            if self.get_clock().now().nanoseconds - self._last_depth_ns > self.episode_gap_ns:
                try:
                    self._log_end(self._end_episode(), "a gap without depth")
                except Exception as exc:  # closing the episode wrote its last frames: the writer failed
                    failure = exc
        if failure is not None:
            self._fail(failure)

    def _on_diagnostics(self) -> None:
        with self._lock:
            failed = self.failed
            values = {
                "episodes": len(self.session.episodes),
                "frames_written": self.session.frames_written,
                "episode_open": self._episode_open,
                "frames_skipped": self.skipped,
                "resolution_changes": self.resolution_changes,
                "queue_overflows": self.queue_overflows,
                "input_errors": self.guard.total,
            }
        if failed:
            level, message = DiagnosticStatus.ERROR, f"export stopped: {failed}"
        elif self.guard.total:
            level, message = DiagnosticStatus.WARN, f"{self.guard.total} message(s) skipped: {self.guard.last_error}"
        else:
            level, message = DiagnosticStatus.OK, f"{values['frames_written']} frames written"
        status = diagnostic_status(level, f"{self.get_fully_qualified_name()}: export", message, values)
        self.pub_diag.publish(diagnostic_array(self.get_clock().now().nanoseconds, [status]))

    def _on_finish(self, req: Any, res: Any) -> Any:
        # Through the writer's queue: the frames that arrived before the request still belong to
        # the episode it ends (the worker may be behind), never to a one-frame episode after it.
        request = _FinishRequest()
        deadline = time.monotonic() + self.finish_timeout_s
        try:
            self._queue.put(request, timeout=self.finish_timeout_s)
            done = request.done.wait(max(0.0, deadline - time.monotonic()))
        except queue.Full:
            done = False
        if not done and request.cancel():  # withdrawn: a retry never finds an earlier request ending an episode
            res.success = False
            res.message = (
                f"writer busy: the episode could not be ended within {self.finish_timeout_s:g} s "
                "(finish_timeout_s); nothing changed, try again"
            )
            return res
        request.done.wait()  # the worker had already begun it: it ends in moments
        res.success, res.message = request.result
        return res

    def _finish_now(self) -> tuple[bool, str]:
        with self._lock:
            if self.failed:
                return False, f"export stopped: {self.failed}"
            summary = self._end_episode()
        if summary is None:
            return False, "no episode in progress"
        return True, f"{summary['episode']}: {summary['frames']} frames"

    def _answer_late_finish_requests(self) -> None:
        """A finish_episode call queued behind the stop marker is answered, not left waiting."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _FinishRequest):
                item.decline("shutting down")

    def shutdown(self) -> None:
        deadline = time.monotonic() + (self.shutdown_drain_s if not self.failed else 5.0)
        try:
            self._queue.put(None, timeout=max(0.1, deadline - time.monotonic()))  # after everything queued
            stop_queued = True
        except queue.Full:
            stop_queued = False
        self._worker.join(max(0.0, deadline - time.monotonic()))
        if self._worker.is_alive():  # the drain deadline: the frame being written finishes, the rest is dropped
            behind = self._queue.qsize()
            self._abandon.set()
            if not stop_queued:
                try:
                    self._queue.put(None, timeout=60.0)  # the worker now discards: room comes at once
                except queue.Full:
                    pass  # the writer hangs inside one write: the join below gives up on it
            self._worker.join(60.0)
            self.get_logger().warning(
                f"shutdown: the writer was still {behind} message(s) behind after {self.shutdown_drain_s:g} s "
                f"(shutdown_drain_s); {self.abandoned} not written, the dataset keeps every frame written before"
            )
        self._answer_late_finish_requests()
        with self._lock:
            self.skipped += len(self._held)  # colour/info whose depth never came
            self._held.clear()
            try:
                self._end_episode()
            except Exception as exc:
                self.failed = self.failed or str(exc)
                dropped = self._discard_open_episode()
                self.get_logger().error(f"the last episode could not be finished: {exc}; {dropped}the others are kept")
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
            try:
                report = self.session.commit()
            except Exception as exc:
                self.get_logger().error(
                    f"dataset not published: {exc}; what was written stays in {self.session.writer.partial}"
                )
                return
        done = f"dataset written: {report['hdf5']} ({report['frames']} frames, {report['episodes']} episodes)"
        if self.failed:
            done += f" before the export stopped ({self.failed})"
        self.get_logger().info(done)


HELD_MESSAGES = 12  # colour + camera_info of a few frames at a new size, ahead of their depth


class _FinishRequest:
    """A `finish_episode` call queued behind the messages that arrived before it; the caller withdraws
    it when the writer does not reach it in time (`cancel`), and the worker then skips it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: tuple[bool, str] = (False, "not run")
        self._claim = threading.Lock()
        self._state = "queued"  # queued -> running (worker) | cancelled (caller)

    def cancel(self) -> bool:
        """Withdraw the request unless the worker has begun it; True when withdrawn."""
        with self._claim:
            if self._state == "queued":
                self._state = "cancelled"
                return True
            return False

    def decline(self, reason: str) -> None:
        """Answer without ending anything (the node is shutting down)."""
        self.run(lambda: (False, reason))

    def run(self, finish: Any) -> None:
        with self._claim:
            if self._state == "cancelled":
                return
            self._state = "running"
        try:
            self.result = finish()
        except Exception as exc:  # closing the episode wrote its last frames and failed: reported below
            self.result = (False, f"the episode could not be finished: {exc}")
            raise
        finally:
            self.done.set()


def main(args: list[str] | None = None) -> int:
    return run_node(LiveExporterNode, args, name=NODE_NAME, threads=2)


if __name__ == "__main__":
    sys.exit(main())
