"""The driver's frame pipeline, ROS-free: capture -> filter -> align -> deliver.

Three threads joined by bounded queues, so the SDK's filter and align work runs
off the capture thread and overlaps on both cores (librealsense releases the
GIL inside its processing blocks):

* capture: waits for synchronized framesets, counts every frame (received,
  dropped from hardware counter gaps), holds data back during warm-up, stamps
  frames (hardware clock -> host time), and hands them on. If the next stage is
  full it discards the OLDEST waiting frame (counted as skipped): latency stays
  bounded and the newest frame always wins.
* filter: the stateful post-processing chain, in frame order.
* align + deliver: depth aligned to colour, conversion to numpy (depth in
  millimetres), then the `on_frame` callback (the node publishes there).

A lost device (no frames for `lost_after_timeouts` waits) moves the pipeline to
`reconnecting`; it reopens the source with exponential backoff until it returns.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pyrealsense2 as rs

from .camera import Intrinsics
from .frame_accounting import StreamCounter
from .hw_clock import HardwareClockMapper
from .rs_filters import FilterChain, FilterSettings, default_settings
from .rs_sources import DeviceInfo, SourceError, SourceUnavailable, intrinsics_from_rs

log = logging.getLogger(__name__)

STARTING, WARMING_UP, STREAMING, RECONNECTING, STOPPED, ERROR = (
    "starting", "warming_up", "streaming", "reconnecting", "stopped", "error",
)


@dataclass
class CaptureConfig:
    align: bool = True
    filters: list[FilterSettings] = field(default_factory=default_settings)
    disparity_domain: bool = True
    warmup_s: float = 0.0
    queue_size: int = 2
    frame_timeout_ms: int = 1000
    lost_after_timeouts: int = 2
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 8.0


@dataclass
class CapturedFrame:
    """One synchronized, processed frame, ready to publish."""

    stamp_ns: int
    color: np.ndarray  # uint8 (H, W, 3) RGB
    color_intrinsics: Intrinsics
    depth_mm: np.ndarray  # uint16, filtered, in the depth camera (decimated size if decimation is on)
    depth_intrinsics: Intrinsics
    aligned_depth_mm: np.ndarray | None  # uint16 at colour resolution; None when align is off
    depth_frame_number: int
    color_frame_number: int
    hw_timestamp_ms: float
    processing_ms: float


def to_millimetres(raw: np.ndarray, depth_scale_m: float) -> np.ndarray:
    """SDK depth units -> uint16 millimetres (a copy; identity scaling for the usual 1 mm unit)."""
    if abs(depth_scale_m - 0.001) < 1e-9:
        return np.array(raw, dtype=np.uint16, copy=True)
    return np.clip(np.rint(raw.astype(np.float64) * (depth_scale_m * 1000.0)), 0, 65535).astype(np.uint16)


class CapturePipeline:
    """Runs a source through filters and align, delivering `CapturedFrame`s to `on_frame`."""

    def __init__(
        self,
        open_source: Callable[[], object],
        config: CaptureConfig,
        on_frame: Callable[[CapturedFrame], None],
        *,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._open_source = open_source
        self.config = config
        self._on_frame = on_frame
        self._clock_ns = clock_ns
        self.counters = {name: StreamCounter(name) for name in ("color", "depth", "aligned_depth")}
        self.clock = HardwareClockMapper()
        self.state = STARTING
        self.message = ""
        self.info: DeviceInfo | None = None
        self.source = None
        self.started_at_ns = 0
        self.reconnects = 0
        self._warmup_end = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._filter_q: queue.Queue = queue.Queue(maxsize=config.queue_size)
        self._align_q: queue.Queue = queue.Queue(maxsize=config.queue_size)
        self._threads: list[threading.Thread] = []
        self._proc_ms: list[float] = []
        self.chain = FilterChain(config.filters, disparity_domain=config.disparity_domain)
        self._align = rs.align(rs.stream.color)

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Open the source and start the threads.

        Raises:
            SourceError: the configuration cannot work (bad profile, missing file).
                An absent device (SourceUnavailable) is not raised: the pipeline
                keeps retrying in the background, in state `reconnecting`.
        """
        self.started_at_ns = self._clock_ns()
        try:
            self._connect()
        except SourceUnavailable as exc:
            self._set_state(RECONNECTING, str(exc))
        self._warmup_end = time.monotonic() + self.config.warmup_s
        for target, name in ((self._capture_loop, "capture"), (self._filter_loop, "filter"), (self._align_loop, "align")):
            t = threading.Thread(target=target, name=f"rs-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5.0)
        self._threads.clear()
        if self.source is not None:
            self.source.close()
            self.source = None
        if self.state != ERROR:
            self._set_state(STOPPED, self.message if self.state == STOPPED else "stopped")

    def wait_finished(self, timeout: float) -> bool:
        """For recordings: wait until the capture thread ends (end of file)."""
        t = self._threads[0] if self._threads else None
        if t is None:
            return True
        t.join(timeout)
        return not t.is_alive()

    def warmup_remaining_s(self) -> float:
        return max(0.0, self._warmup_end - time.monotonic())

    def take_processing_ms(self) -> float:
        with self._lock:
            values, self._proc_ms = self._proc_ms, []
        return float(np.mean(values)) if values else 0.0

    # --- internals ------------------------------------------------------------------------
    def _set_state(self, state: str, message: str = "") -> None:
        if state != self.state or message != self.message:
            log.info("capture state %s%s", state, f": {message}" if message else "")
        self.state, self.message = state, message

    def _connect(self) -> None:
        self.source = self._open_source()
        self.info = self.source.info
        self.clock.reset()

    def _reconnect(self) -> bool:
        """Retry opening with exponential backoff until it works or stop() is called."""
        delay = self.config.reconnect_initial_s
        while not self._stop.is_set():
            try:
                self._connect()
            except SourceUnavailable as exc:
                self._set_state(RECONNECTING, f"{exc}; retrying in {delay:.1f} s")
            except SourceError as exc:
                self._set_state(RECONNECTING, f"{exc}; retrying in {delay:.1f} s")
            else:
                self.reconnects += 1
                self._set_state(STREAMING, f"reconnected ({self.reconnects})")
                return True
            if self._stop.wait(delay):
                return False
            delay = min(delay * 2.0, self.config.reconnect_max_s)
        return False

    def _capture_loop(self) -> None:
        cfg = self.config
        timeouts = 0
        while not self._stop.is_set():
            if self.source is None and not self._reconnect():
                break
            try:
                frames = self.source.wait(cfg.frame_timeout_ms)
            except RuntimeError as exc:  # device lost mid-stream
                frames, timeouts = None, cfg.lost_after_timeouts
                self.message = str(exc)
            if frames is None:
                if self.source.finished():
                    self._set_state(STOPPED, "end of recording")
                    break
                timeouts += 1
                if timeouts >= cfg.lost_after_timeouts:
                    self._set_state(RECONNECTING, f"no frames for {timeouts * cfg.frame_timeout_ms} ms: device lost")
                    try:
                        self.source.close()
                    finally:
                        self.source = None
                    timeouts = 0
                continue
            timeouts = 0
            self._accept(frames)
        self._filter_q.put(None)  # wake the next stage

    def _accept(self, frames) -> None:
        depth = frames.get_depth_frame()
        color = frames.get_color_frame()
        got_depth, got_color = bool(depth), bool(color)
        if got_depth:
            n, ts = depth.get_frame_number(), depth.get_timestamp()
            self.counters["depth"].on_received(n, ts)
            self.counters["aligned_depth"].on_received(n, ts)
        if got_color:
            self.counters["color"].on_received(color.get_frame_number(), color.get_timestamp())
        if not (got_depth and got_color):  # the syncer emits singles at start-up or on loss
            for name, got in (("depth", got_depth), ("aligned_depth", got_depth), ("color", got_color)):
                if got:
                    self.counters[name].on_skipped()
            return
        if time.monotonic() < self._warmup_end:
            self._set_state(WARMING_UP, f"{self.warmup_remaining_s():.0f} s of warm-up left")
            for c in self.counters.values():
                c.on_skipped()
            return
        if self.state != STREAMING:
            self._set_state(STREAMING, "")
        stamp = self.clock.map(depth.get_timestamp(), self._clock_ns())
        frames.keep()
        self._offer(self._filter_q, (stamp, time.perf_counter(), frames))

    def _offer(self, q: queue.Queue, item) -> None:
        """Put without blocking; if full, discard the oldest waiting frame (counted as skipped)."""
        while True:
            try:
                q.put_nowait(item)
                return
            except queue.Full:
                try:
                    q.get_nowait()
                except queue.Empty:
                    continue
                for c in self.counters.values():
                    c.on_skipped()

    def _filter_loop(self) -> None:
        while True:
            item = self._filter_q.get()
            if item is None:
                break
            stamp, t0, frames = item
            try:
                filtered = self.chain.process(frames).as_frameset()
                filtered.keep()
            except RuntimeError as exc:
                log.error("filter chain failed: %s", exc)
                for c in self.counters.values():
                    c.on_skipped()
                continue
            self._offer(self._align_q, (stamp, t0, frames, filtered))
        self._align_q.put(None)

    def _align_loop(self) -> None:
        while True:
            item = self._align_q.get()
            if item is None:
                break
            stamp, t0, raw, filtered = item
            try:
                out = self._convert(stamp, t0, filtered)
            except RuntimeError as exc:
                log.error("align failed: %s", exc)
                for c in self.counters.values():
                    c.on_skipped()
                continue
            try:
                self._on_frame(out)
            except Exception:  # a publishing error must not kill the pipeline
                log.exception("on_frame callback failed")
                continue
            with self._lock:
                self._proc_ms.append((time.perf_counter() - t0) * 1000.0)
            self.counters["color"].on_published()
            self.counters["depth"].on_published()
            if out.aligned_depth_mm is not None:
                self.counters["aligned_depth"].on_published()

    def _convert(self, stamp: int, t0: float, frames) -> CapturedFrame:
        depth = frames.get_depth_frame()
        color = frames.get_color_frame()
        scale = depth.get_units()
        depth_mm = to_millimetres(np.asanyarray(depth.get_data()), scale)
        depth_intr = intrinsics_from_rs(depth.get_profile().as_video_stream_profile().get_intrinsics())
        aligned = None
        if self.config.align:
            aligned_set = self._align.process(frames)
            aligned = to_millimetres(np.asanyarray(aligned_set.get_depth_frame().get_data()), scale)
        color_np = np.array(np.asanyarray(color.get_data()), copy=True)
        color_intr = intrinsics_from_rs(color.get_profile().as_video_stream_profile().get_intrinsics())
        return CapturedFrame(
            stamp_ns=stamp,
            color=color_np,
            color_intrinsics=color_intr,
            depth_mm=depth_mm,
            depth_intrinsics=depth_intr,
            aligned_depth_mm=aligned,
            depth_frame_number=depth.get_frame_number(),
            color_frame_number=color.get_frame_number(),
            hw_timestamp_ms=depth.get_timestamp(),
            processing_ms=(time.perf_counter() - t0) * 1000.0,
        )
