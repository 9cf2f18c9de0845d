"""The driver's frame pipeline, ROS-free: capture -> filter -> align -> deliver.

Capture runs on its own thread: it waits for synchronized framesets, counts
every frame (received, dropped from hardware counter gaps), holds data back
during warm-up, stamps frames (hardware clock -> host time) and hands them on.
If the next stage is full it discards the OLDEST waiting frame (counted as
skipped): latency stays bounded and the newest frame always wins.

The SDK work after capture runs in one of two ways (`CaptureConfig.sdk_processes`):

* processes (default): the stateful filter chain and the align block each run
  in a worker process (`sdk_workers`), fed through shared memory. pyrealsense2
  holds the GIL inside its processing blocks, so only processes let filter,
  align and publishing overlap on several cores (1280x720 at 30 fps needs it).
* threads: filter and align on two threads of this process. No start-up cost
  and no extra processes, but the SDK blocks run one at a time.

Either way, the last stage converts to numpy (depth in millimetres) and calls
`on_frame` (the node publishes there), in frame order.

A lost device (no frames for `lost_after_timeouts` waits) moves the pipeline to
`CaptureState.RECONNECTING`; it reopens the source with exponential backoff until
it returns. A worker process that dies is replaced; the frames it held are counted
as skipped.

Tunable while running: `update_filter` changes one block of the chain (on/off, options)
from the next frame on, whole (the stage that runs the chain takes the new settings
between two frames); `set_control` sets a sensor option (exposure, gain, auto
exposure) on a device.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyrealsense2 as rs

from depth_annotation.common import Intrinsics

from .errors import ControlError, ReplayError, SourceError, SourceUnavailable, WorkerFailed
from .filters import FilterChain, FilterSettings, default_settings, updated_settings
from .frame_accounting import StreamCounter
from .hw_clock import HardwareClockMapper, domain_name, frame_stamp_ns
from .replay import StreamGeometry
from .sdk_workers import SdkWorkers
from .sources import DeviceInfo, FrameSource, SourceFactory, intrinsics_from_rs

log = logging.getLogger(__name__)


class CaptureState(enum.Enum):
    """Where the pipeline is; the value is the string CaptureStatus.state carries (its STATE_* constants)."""

    STARTING = "starting"
    WARMING_UP = "warming_up"  # frames arrive but are not data yet (the sensor is warming up)
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"  # the source is gone; reopening with backoff
    STOPPED = "stopped"
    ERROR = "error"


# Queue items: (stamp ns, perf_counter at capture, SDK frameset, geometry to configure the workers with or None)
# into the filter (or dispatch) stage; (stamp ns, perf_counter, raw frameset, filtered frameset) into align.
_FilterItem = tuple[int, float, Any, StreamGeometry | None]
_AlignItem = tuple[int, float, Any, Any]


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
    sdk_processes: bool = True  # filter and align in worker processes (see module docstring)
    worker_start_timeout_s: float = 30.0  # workers not up by then: fall back to threads, with a warning


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


def to_millimetres(raw: np.ndarray, depth_scale_m: float, *, copy: bool = True) -> np.ndarray:
    """SDK depth units -> uint16 millimetres (identity scaling for the usual 1 mm unit).

    The result is a new array unless `copy` is False and `raw` is already millimetres.
    """
    if abs(depth_scale_m - 0.001) < 1e-9:
        return np.array(raw, dtype=np.uint16, copy=copy)
    return np.clip(np.rint(raw.astype(np.float64) * (depth_scale_m * 1000.0)), 0, 65535).astype(np.uint16)


class CapturePipeline:
    """Runs a source through filters and align, delivering `CapturedFrame`s to `on_frame`."""

    def __init__(
        self,
        open_source: SourceFactory,
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
        self.timestamp_domain: str | None = None  # of the depth frames, from the first one on
        self.state = CaptureState.STARTING
        self.message = ""
        self.info: DeviceInfo | None = None
        self.source: FrameSource | None = None
        self.started_at_ns = 0
        self.reconnects = 0
        self._warmup_end = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._filter_q: queue.Queue[_FilterItem | None] = queue.Queue(maxsize=config.queue_size)
        self._align_q: queue.Queue[_AlignItem | None] = queue.Queue(maxsize=config.queue_size)
        self._threads: list[threading.Thread] = []
        self._proc_ms: list[float] = []
        self.chain = FilterChain(config.filters, disparity_domain=config.disparity_domain)
        self._filters = list(self.chain.settings)  # what the chain runs with, or will from the next frame
        self._filters_lock = threading.Lock()
        self._chain_update: list[FilterSettings] | None = None  # for the filter thread, between two frames
        self._align = rs.align(rs.stream.color)
        workers = SdkWorkers(config.filters, disparity_domain=config.disparity_domain, align=config.align)
        self.workers = workers if config.sdk_processes and workers.needed else None
        self._geometry_stale = True
        self._lossless = False  # set per source in _connect
        self._dispatch_done = threading.Event()

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Open the source and start the threads.

        Raises:
            SourceError: the configuration cannot work (bad profile, missing file).
                An absent device (SourceUnavailable) is not raised: the pipeline
                keeps retrying in the background, in state `reconnecting`.
        """
        self.started_at_ns = self._clock_ns()
        if self.workers is not None:
            # Workers first: a recording starts playing when the source opens, and its first
            # frames must not pass while the workers are still importing.
            self.workers.start()
            problem = self.workers.wait_ready(self.config.worker_start_timeout_s)
            if problem:
                log.warning("%s: filter and align run in this process instead (slower)", problem)
                self.workers.close()
                self.workers = None
        try:
            self._connect()
        except SourceUnavailable as exc:
            self._set_state(CaptureState.RECONNECTING, str(exc))
        except SourceError:
            if self.workers is not None:
                self.workers.close()
            raise
        self._warmup_end = time.monotonic() + self.config.warmup_s
        workers = self.workers
        stages: tuple[tuple[Callable[[], None], str], ...]
        if workers is not None:
            stages = (
                (self._capture_loop, "capture"),
                (lambda: self._dispatch_loop(workers), "dispatch"),
                (lambda: self._result_loop(workers), "results"),
            )
        else:
            stages = ((self._capture_loop, "capture"), (self._filter_loop, "filter"), (self._align_loop, "align"))
        for target, name in stages:
            t = threading.Thread(target=target, name=f"rs-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5.0)
        self._threads.clear()
        if self.workers is not None:
            self.workers.close()
        if self.source is not None:
            self.source.close()
            self.source = None
        if self.state != CaptureState.ERROR:
            self._set_state(CaptureState.STOPPED, self.message if self.state == CaptureState.STOPPED else "stopped")

    def wait_finished(self, timeout: float) -> bool:
        """For recordings: wait until the capture thread ends (end of file)."""
        t = self._threads[0] if self._threads else None
        if t is None:
            return True
        t.join(timeout)
        return not t.is_alive()

    @property
    def filter_settings(self) -> list[FilterSettings]:
        """The chain's settings, every block in chain order (as of the last `update_filter`)."""
        with self._filters_lock:
            return list(self._filters)

    def update_filter(
        self, name: str, *, enabled: bool | None = None, options: dict[str, float] | None = None
    ) -> FilterSettings:
        """Switch block `name` on/off and/or change its options, from the next frame on; returns its new settings.

        The whole change reaches one frame boundary at once: in-process, the filter thread
        rebuilds the chain between two frames; with worker processes, the settings travel
        to the filter process in order with the frames. Blocks that stay on keep their
        state (the temporal filter's history).

        Raises:
            FilterConfigError: unknown block or option, or a value outside its range (nothing changes).
        """
        with self._filters_lock:
            settings = updated_settings(self._filters, name, enabled=enabled, options=options)
            self._filters = settings
            self.config.filters = settings
            if self.workers is not None:
                self.workers.update_filters(settings)
            else:
                self._chain_update = settings
        return next(s for s in settings if s.name == name)

    def set_control(self, sensor: str, option: str, value: float) -> float:
        """Set a sensor option (`sensor` depth or color; `option` exposure, gain, enable_auto_exposure) now.

        Returns the value the camera reports back.

        Raises:
            ControlError: the source has no such control (synthetic camera, recording),
                no camera is connected right now, or the camera refused the value.
        """
        source = self.source
        if source is None:
            raise ControlError("no camera is connected right now (reconnecting): nothing to set")
        return source.set_control(sensor, option, value)

    def warmup_remaining_s(self) -> float:
        return max(0.0, self._warmup_end - time.monotonic())

    def take_processing_ms(self) -> float:
        with self._lock:
            values, self._proc_ms = self._proc_ms, []
        return float(np.mean(values)) if values else 0.0

    # --- internals ------------------------------------------------------------------------
    def _set_state(self, state: CaptureState, message: str = "") -> None:
        if state != self.state or message != self.message:
            log.info("capture state %s%s", state.value, f": {message}" if message else "")
        self.state, self.message = state, message

    def _connect(self) -> FrameSource:
        source = self._open_source()
        self.source, self.info = source, source.info
        self._lossless = not source.real_time
        self.clock.reset()
        self._geometry_stale = True  # a reopened camera may differ: workers are reconfigured
        return source

    def _reconnect(self) -> FrameSource | None:
        """Retry opening with exponential backoff until it works (the new source) or stop() is called (None)."""
        delay = self.config.reconnect_initial_s
        while not self._stop.is_set():
            try:
                source = self._connect()
            except SourceError as exc:  # SourceUnavailable (unplugged) included
                self._set_state(CaptureState.RECONNECTING, f"{exc}; retrying in {delay:.1f} s")
            else:
                self.reconnects += 1
                self._set_state(CaptureState.STREAMING, f"reconnected ({self.reconnects})")
                return source
            if self._stop.wait(delay):
                return None
            delay = min(delay * 2.0, self.config.reconnect_max_s)
        return None

    def _capture_loop(self) -> None:
        cfg = self.config
        timeouts = 0
        while not self._stop.is_set():
            source = self.source if self.source is not None else self._reconnect()
            if source is None:  # stopped while reconnecting
                break
            try:
                frames = source.wait(cfg.frame_timeout_ms)
            except RuntimeError as exc:  # device lost mid-stream
                frames, timeouts = None, cfg.lost_after_timeouts
                self.message = str(exc)
            if frames is None:
                if source.finished():
                    self._set_state(CaptureState.STOPPED, "end of recording")
                    break
                timeouts += 1
                if timeouts >= cfg.lost_after_timeouts:
                    lost = f"no frames for {timeouts * cfg.frame_timeout_ms} ms: device lost"
                    self._set_state(CaptureState.RECONNECTING, lost)
                    try:
                        source.close()
                    finally:
                        self.source = None
                    timeouts = 0
                continue
            timeouts = 0
            self._accept(frames)
        self._filter_q.put(None)  # wake the next stage

    def _accept(self, frames: Any) -> None:
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
            self._set_state(CaptureState.WARMING_UP, f"{self.warmup_remaining_s():.0f} s of warm-up left")
            self._skip_all()
            return
        if self.state != CaptureState.STREAMING:
            self._set_state(CaptureState.STREAMING, "")
        domain = domain_name(depth.get_frame_timestamp_domain())
        if domain != self.timestamp_domain:
            self.timestamp_domain = domain
        stamp = frame_stamp_ns(domain, depth.get_timestamp(), self.clock, self._clock_ns())
        geometry = None
        if self.workers is not None and self._geometry_stale:
            # Read here, on the thread that closes sources: the frame's sensor is surely alive.
            geometry = StreamGeometry.from_frames(frames)
            self._geometry_stale = False
        frames.keep()
        self._offer(self._filter_q, (stamp, time.perf_counter(), frames, geometry))

    def _offer(self, q: queue.Queue[Any], item: Any) -> None:
        """Hand a frame to the next stage.

        From a live source: without blocking; if the stage is full, discard the oldest
        waiting frame (counted as skipped). From a recording played as fast as we read it
        (not real time): wait for room, so no frame of the file is skipped.
        """
        if self._lossless:
            while not self._stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue
            self._skip_all()
            return
        while True:
            try:
                q.put_nowait(item)
                return
            except queue.Full:
                try:
                    q.get_nowait()
                except queue.Empty:
                    continue
                self._skip_all()

    def _filter_loop(self) -> None:
        while True:
            item = self._filter_q.get()
            if item is None:
                break
            stamp, t0, frames, _ = item
            with self._filters_lock:
                update, self._chain_update = self._chain_update, None
            if update is not None:  # between two frames: this frame and the later ones get all of it
                self.chain = self.chain.reconfigured(update)
            try:
                filtered = self.chain.process(frames).as_frameset()
                filtered.keep()
            except RuntimeError as exc:
                log.error("filter chain failed: %s", exc)
                self._skip_all()
                continue
            self._offer(self._align_q, (stamp, t0, frames, filtered))
        self._align_q.put(None)

    def _align_loop(self) -> None:
        while True:
            item = self._align_q.get()
            if item is None:
                break
            stamp, t0, _raw, filtered = item  # the raw frameset stays referenced until align is done
            try:
                out = self._convert(stamp, t0, filtered)
            except RuntimeError as exc:
                log.error("align failed: %s", exc)
                self._skip_all()
                continue
            self._deliver(out, t0)

    def _convert(self, stamp: int, t0: float, frames: Any) -> CapturedFrame:
        depth = frames.get_depth_frame()
        color = frames.get_color_frame()
        aligned = None
        if self.config.align:
            aligned = np.asanyarray(self._align.process(frames).get_depth_frame().get_data())
        return self._captured(
            _Pending.of(stamp, t0, depth, color),
            np.asanyarray(depth.get_data()),
            intrinsics_from_rs(depth.get_profile().as_video_stream_profile().get_intrinsics()),
            aligned,
            owned=False,  # views of SDK frames
        )

    # --- the worker-process path ------------------------------------------------------------
    def _dispatch_loop(self, workers: SdkWorkers) -> None:
        """Raw depth into the workers; keeps what is needed to publish the frame when it comes back."""
        try:
            while True:
                item = self._filter_q.get()
                if item is None:
                    break
                stamp, t0, frames, geometry = item
                depth, color = frames.get_depth_frame(), frames.get_color_frame()
                try:
                    if geometry is not None and geometry != workers.geometry:  # first frame of a connection
                        workers.configure(geometry)
                    pending = _Pending.of(stamp, t0, depth, color)
                    raw = np.asanyarray(depth.get_data())
                    while not workers.submit(
                        raw, pending.depth_frame_number, pending.hw_timestamp_ms, pending, timeout=0.05
                    ):
                        newer_waits = not self._lossless and not self._filter_q.empty()  # a newer live frame wins
                        if self._stop.is_set() or newer_waits:
                            self._skip_all()
                            break
                except (OSError, RuntimeError, ValueError) as exc:  # e.g. no shared memory left
                    log.error("cannot hand frame %d to the SDK workers: %s", depth.get_frame_number(), exc)
                    self._skip_all()
                del frames, depth, color
        finally:
            self._dispatch_done.set()

    def _result_loop(self, workers: SdkWorkers) -> None:
        """Processed frames back from the workers, delivered in order; replaces workers that die."""
        failures = 0
        while True:
            try:
                result = workers.receive(0.2)
            except WorkerFailed as exc:
                delay = min(self.config.reconnect_initial_s * 2**failures, self.config.reconnect_max_s)
                failures += 1
                log.error("%s; restarting the SDK workers in %.1f s", exc, delay)
                if self._stop.wait(delay) and self._dispatch_done.is_set():
                    break
                for _ in workers.restart():  # frames that were in flight are lost
                    self._skip_all()
                continue
            except ReplayError as exc:
                log.error("SDK worker failed on a frame: %s", exc)
                self._skip_all()
                continue
            if result is None:
                if self._dispatch_done.is_set() and workers.in_flight == 0:
                    break
                continue
            failures = 0
            pending: _Pending = result.tag
            depth_intr = intrinsics_from_rs(result.depth_geometry.to_rs())
            out = self._captured(pending, result.depth, depth_intr, result.aligned, owned=True)
            self._deliver(out, pending.t0)

    # --- shared by both paths ---------------------------------------------------------------
    def _captured(
        self,
        p: _Pending,
        depth: np.ndarray,
        depth_intr: Intrinsics,
        aligned: np.ndarray | None,
        *,
        owned: bool,
    ) -> CapturedFrame:
        """The frame to deliver (depth in `p.depth_units`); `owned`: the depth arrays are already private copies."""
        return CapturedFrame(
            stamp_ns=p.stamp_ns,
            color=p.color,
            color_intrinsics=p.color_intrinsics,
            depth_mm=to_millimetres(depth, p.depth_units, copy=not owned),
            depth_intrinsics=depth_intr,
            aligned_depth_mm=None if aligned is None else to_millimetres(aligned, p.depth_units, copy=not owned),
            depth_frame_number=p.depth_frame_number,
            color_frame_number=p.color_frame_number,
            hw_timestamp_ms=p.hw_timestamp_ms,
            processing_ms=(time.perf_counter() - p.t0) * 1000.0,
        )

    def _deliver(self, out: CapturedFrame, t0: float) -> None:
        try:
            self._on_frame(out)
        except Exception:  # a publishing error must not kill the pipeline
            log.exception("on_frame callback failed")
            return
        with self._lock:
            self._proc_ms.append((time.perf_counter() - t0) * 1000.0)
        self.counters["color"].on_published()
        self.counters["depth"].on_published()
        if out.aligned_depth_mm is not None:
            self.counters["aligned_depth"].on_published()

    def _skip_all(self) -> None:
        for c in self.counters.values():
            c.on_skipped()


@dataclass
class _Pending:
    """What a frame needs to be published besides the processed depth (colour is copied out of the SDK)."""

    stamp_ns: int
    t0: float
    color: np.ndarray
    color_intrinsics: Intrinsics
    depth_units: float
    depth_frame_number: int
    color_frame_number: int
    hw_timestamp_ms: float

    @classmethod
    def of(cls, stamp_ns: int, t0: float, depth: Any, color: Any) -> _Pending:
        return cls(
            stamp_ns=stamp_ns,
            t0=t0,
            color=np.array(np.asanyarray(color.get_data()), copy=True),
            color_intrinsics=intrinsics_from_rs(color.get_profile().as_video_stream_profile().get_intrinsics()),
            depth_units=depth.get_units(),
            depth_frame_number=depth.get_frame_number(),
            color_frame_number=color.get_frame_number(),
            hw_timestamp_ms=depth.get_timestamp(),
        )
