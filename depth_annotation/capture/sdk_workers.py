"""The driver's SDK filter and align blocks in worker processes, so they run on both cores.

pyrealsense2 (2.59) holds the GIL inside every processing block (`process()`
and `invoke()` alike): measured here, a pure-Python loop runs at ~1/4 of its
speed while another thread filters 1280x720 depth, and two threads aligning
finish fewer frames than one. Threads therefore cannot overlap SDK work, so each
SDK stage gets its own process:

    capture (this process) --depth--> filter process --filtered--> align process --aligned--> this process

Pixels travel through a pool of shared-memory slots; pipes carry only slot
numbers and a few numbers per frame. A stage rebuilds SDK frames from the
pixels with `SoftwareReplay` (same intrinsics, extrinsics, units, baseline), so
the output equals what the blocks compute in-process, bit for bit. One process
per stage keeps frame order, which the stateful temporal filter needs.

New filter settings (`update_filters`, a `ros2 param set` on the driver) go down the
same pipe as the frames, so the filter process switches chains between two frames:
every frame runs through one whole chain, old or new. The filter stage runs whenever
any stage does (with every block off it only copies), so a block can be switched on.

Workers are fresh interpreters (`python -m depth_annotation.capture.sdk_workers`),
never forks (the parent runs DDS threads) and never multiprocessing's spawn
(which re-runs the parent's main script in the child). They ignore SIGINT (the
parent owns shutdown) and exit when their input pipe closes or the parent dies.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing import shared_memory
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from .errors import ReplayError, WorkerFailed
from .filters import FilterChain, FilterSettings
from .replay import SoftwareReplay, StreamGeometry, VideoGeometry

log = logging.getLogger(__name__)

FILTER, ALIGN = "filter", "align"


@dataclass(frozen=True)
class SlotLayout:
    """Where each frame's arrays live in the shared-memory block (picklable, for the workers)."""

    name: str
    count: int
    depth_shape: tuple[int, int]
    color_shape: tuple[int, int]

    @property
    def depth_bytes(self) -> int:
        return self.depth_shape[0] * self.depth_shape[1] * 2

    @property
    def aligned_bytes(self) -> int:
        return self.color_shape[0] * self.color_shape[1] * 2

    @property
    def slot_bytes(self) -> int:
        return 2 * self.depth_bytes + self.aligned_bytes


class SlotPool:
    """`count` slots, each: depth in (raw), depth out (filtered, maybe decimated), aligned depth."""

    def __init__(self, layout: SlotLayout, shm: shared_memory.SharedMemory, owner: bool) -> None:
        self.layout, self._shm, self._owner = layout, shm, owner

    @classmethod
    def create(cls, geometry: StreamGeometry, count: int) -> SlotPool:
        depth_shape = (geometry.depth.height, geometry.depth.width)
        color_shape = (geometry.color.height, geometry.color.width)
        size = count * SlotLayout("", count, depth_shape, color_shape).slot_bytes
        shm = shared_memory.SharedMemory(create=True, size=size)
        return cls(SlotLayout(shm.name, count, depth_shape, color_shape), shm, owner=True)

    @classmethod
    def attach(cls, layout: SlotLayout) -> SlotPool:
        shm = shared_memory.SharedMemory(name=layout.name)
        # Only the parent (the owner) unlinks the block: the worker's own resource tracker must
        # not unlink it when the worker exits.
        from multiprocessing import resource_tracker

        # `_name` is the name as registered (with the POSIX leading slash); Python 3.13's track=False replaces this.
        resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
        return cls(layout, shm, owner=False)

    def _view(self, slot: int, offset: int, shape: tuple[int, int]) -> np.ndarray:
        lo = self.layout
        start = slot * lo.slot_bytes + offset
        return np.ndarray(shape, np.uint16, buffer=self._shm.buf, offset=start)

    def depth_in(self, slot: int) -> np.ndarray:
        return self._view(slot, 0, self.layout.depth_shape)

    def depth_out(self, slot: int, height: int, width: int) -> np.ndarray:
        if height * width * 2 > self.layout.depth_bytes:
            raise ReplayError(f"filtered depth {height}x{width} is larger than the camera's depth stream")
        return self._view(slot, self.layout.depth_bytes, (height, width))

    def aligned(self, slot: int) -> np.ndarray:
        return self._view(slot, 2 * self.layout.depth_bytes, self.layout.color_shape)

    def close(self) -> None:
        try:
            self._shm.close()
        except BufferError:  # a view is still referenced somewhere; the mapping goes with the process
            pass
        if self._owner:
            try:
                self._shm.unlink()
            except FileNotFoundError:
                pass


@dataclass
class Processed:
    """One frame back from the workers: arrays are copies, the slot is already free again."""

    tag: Any
    depth: np.ndarray  # filtered (or raw when no filter runs), SDK depth units
    depth_geometry: VideoGeometry  # after decimation, if any
    aligned: np.ndarray | None  # at colour resolution, SDK depth units


# --- the worker side -------------------------------------------------------------------------
def _stage_main(
    stage: str,
    filters: list[FilterSettings],
    disparity_domain: bool,
    inbox: Connection[Any, Any],
    outbox: Connection[Any, Any],
    parent_pid: int,
) -> None:
    """A worker's loop: configure / frame / stop messages in order; results and errors go downstream."""
    import pyrealsense2 as rs

    pool: SlotPool | None = None
    geometry: StreamGeometry | None = None
    chain: FilterChain | None = None  # set by configure in the filter stage only
    replays: dict[VideoGeometry, tuple[SoftwareReplay, Any]] = {}

    outbox.send(("ready", stage))  # imports done: the parent starts capturing

    def drop_replays() -> None:
        for old, _ in replays.values():
            old.close()
        replays.clear()

    def replay_for(camera: StreamGeometry, depth: VideoGeometry) -> tuple[SoftwareReplay, Any]:
        if depth not in replays:
            drop_replays()
            replays[depth] = (SoftwareReplay(camera.with_depth(depth)), rs.align(rs.stream.color))
        return replays[depth]

    while True:
        if not inbox.poll(0.5):
            if os.getppid() != parent_pid:
                return
            continue
        try:
            msg = inbox.recv()
        except EOFError:
            return
        kind = msg[0]
        if kind == "stop":
            outbox.send(msg)
            return
        if kind == "filters":  # new settings, in order between two frames: the next frame gets all of them
            filters = msg[1]
            if chain is not None:
                chain = chain.reconfigured(filters)
            outbox.send(msg)
            continue
        if kind == "configure":
            _, geometry, layout = msg
            if pool is not None:
                pool.close()
            pool = SlotPool.attach(layout)
            drop_replays()
            chain = FilterChain(filters, disparity_domain=disparity_domain) if stage == FILTER else None
            outbox.send(msg)
            continue
        if kind != "frame":  # an upstream error: pass it on
            outbox.send(msg)
            continue
        _, slot, number, ts_ms, filtered = msg
        try:
            if pool is None or geometry is None:
                raise ReplayError(f"frame {number} arrived before the stage was configured")
            if chain is not None:  # the filter stage
                replay, _ = replay_for(geometry, geometry.depth)
                out = chain.process(replay.depth_frame(pool.depth_in(slot), number, ts_ms)).as_video_frame()
                g = VideoGeometry.from_profile(out.get_profile())
                pool.depth_out(slot, g.height, g.width)[...] = np.asanyarray(out.get_data())
                del out
                outbox.send(("frame", slot, number, ts_ms, g))
            else:
                g = filtered or geometry.depth
                pixels = pool.depth_out(slot, g.height, g.width) if filtered else pool.depth_in(slot)
                replay, align = replay_for(geometry, g)
                aligned = align.process(replay.frameset(pixels, number, ts_ms)).get_depth_frame()
                pool.aligned(slot)[...] = np.asanyarray(aligned.get_data())
                del aligned
                outbox.send(("frame", slot, number, ts_ms, filtered))
        except Exception as exc:  # one bad frame must not take the stage down: report it, go on
            outbox.send(("error", slot, f"{stage}: {exc}"))


# --- the parent side -------------------------------------------------------------------------
class SdkWorkers:
    """Spawns the stage processes and moves frames through them (one submitting thread, one receiving)."""

    def __init__(self, filters: list[FilterSettings], *, disparity_domain: bool, align: bool, slots: int = 3) -> None:
        self.filters = filters
        self.disparity_domain = disparity_domain
        # The filter stage runs whenever any stage does (with no block on it only copies), so a block
        # switched on at run time (`update_filters`) has a process to run in.
        filtering = bool(FilterChain(filters, disparity_domain=disparity_domain).blocks)
        self.stages = [FILTER, ALIGN] if align else [FILTER] if filtering else []
        self.slots = slots
        self.geometry: StreamGeometry | None = None
        self.restarts = 0
        self._lock = threading.Lock()
        self._procs: list[subprocess.Popen[bytes]] = []  # one per stage, in the order of `stages`
        self._pool: SlotPool | None = None
        self._free: queue.Queue[int] = queue.Queue()
        self._tags: dict[int, Any] = {}
        self._inbox: Connection[Any, Any] | None = None  # into the first stage
        self._results: Connection[Any, Any] | None = None  # out of the last stage

    @property
    def needed(self) -> bool:
        return bool(self.stages)

    @property
    def in_flight(self) -> int:
        return len(self._tags)

    def start(self) -> None:
        """Spawn the workers; they import and wait for `configure` (done at the first frame)."""
        with self._lock:
            self._spawn()

    def wait_ready(self, timeout: float) -> str | None:
        """Wait until every worker has started (imported the SDK); None when ready, else why not."""
        deadline = time.monotonic() + timeout
        ready = 0
        results = self._results
        if results is None:
            return "SDK workers were not started"
        while ready < len(self.stages):
            left = deadline - time.monotonic()
            if left <= 0:
                return f"SDK workers not ready after {timeout:.0f} s"
            if results.poll(min(left, 0.2)):
                try:
                    msg = results.recv()
                except (EOFError, OSError):
                    return f"{self._dead_worker(2.0) or 'an SDK worker closed its pipe'} while starting"
                if msg[0] == "ready":
                    ready += 1
                    continue
            failure = self._dead_worker(0.0)
            if failure:
                return f"{failure} while starting"
        return None

    def configure(self, geometry: StreamGeometry, timeout: float = 10.0) -> None:
        """(Re)build shared memory and the workers' SDK devices for `geometry`; waits for frames in flight."""
        deadline = time.monotonic() + timeout
        while self._tags and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            pool = self._new_pool(geometry)
            self._send(("configure", geometry, pool.layout))  # a dead worker: `restart` configures its replacement

    def update_filters(self, filters: list[FilterSettings]) -> None:
        """Run the chain with `filters` from the next submitted frame on.

        The settings travel down the same pipe as the frames, so every frame before
        this call is filtered with the old chain and every later one with the new one.
        A restarted worker starts with them too.
        """
        with self._lock:
            self.filters = filters
            self._send(("filters", filters))  # a dead worker: `restart` spawns its replacement with them

    def submit(self, depth: np.ndarray, number: int, ts_ms: float, tag: Any, timeout: float = 0.5) -> bool:
        """Send one raw depth frame (SDK units) in; False if no slot came free within `timeout`."""
        while True:
            free = self._free
            try:
                slot = free.get(timeout=timeout)
            except queue.Empty:
                return False
            with self._lock:
                if free is not self._free:  # the workers restarted meanwhile: that slot token is stale
                    continue
                pool = self._pool
                if pool is None:  # closed meanwhile
                    return False
                pool.depth_in(slot)[...] = depth
                if not self._send(("frame", slot, number, ts_ms, None)):
                    free.put(slot)  # the first worker died: `receive` reports it, `restart` replaces it
                    return False
                self._tags[slot] = tag
                return True

    def receive(self, timeout: float) -> Processed | None:
        """The next processed frame, or None after `timeout`.

        Raises:
            WorkerFailed: a worker died (the caller restarts them with `restart`).
            ReplayError: the SDK rejected one frame (its slot is freed; the stream goes on).
        """
        results = self._results
        if results is None:
            raise WorkerFailed("the SDK workers are not running")
        if not results.poll(timeout):
            failure = self._dead_worker(0.0)
            if failure:
                raise WorkerFailed(failure)
            return None
        try:
            msg = results.recv()
        except (EOFError, OSError):  # the last worker's end closed: it (or one before it) exited
            raise WorkerFailed(self._dead_worker(2.0) or "an SDK worker closed its pipe") from None
        kind = msg[0]
        if kind in ("configure", "filters", "stop", "ready"):
            return None
        slot = msg[1]
        with self._lock:
            if results is not self._results:  # restarted while we waited
                return None
            tag = self._tags.pop(slot, None)
            if kind == "error":
                self._free.put(slot)
                raise ReplayError(msg[2])
            filtered: VideoGeometry | None = msg[4]
            pool, geometry = self._pool, self.geometry
            if pool is None or geometry is None:  # closed meanwhile
                return None
            g = filtered or geometry.depth
            depth = np.array(pool.depth_out(slot, g.height, g.width) if filtered else pool.depth_in(slot))
            aligned = np.array(pool.aligned(slot)) if ALIGN in self.stages else None
            self._free.put(slot)
        return Processed(tag, depth, g, aligned)

    def restart(self) -> list[Any]:
        """Replace dead (or stuck) workers; returns the tags of the frames that were lost in flight."""
        with self._lock:
            lost = list(self._tags.values())
            self._tags.clear()
            self._terminate()
            self.restarts += 1
            self._spawn()
            if self.geometry is not None:
                pool = self._new_pool(self.geometry)
                self._send(("configure", self.geometry, pool.layout))  # died at once: `receive` reports it again
        return lost

    def close(self) -> None:
        with self._lock:
            self._send(("stop",))
            for p in self._procs:
                try:
                    p.wait(2.0)
                except subprocess.TimeoutExpired:
                    pass
            self._terminate()
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    # --- internals (called with the lock held) ---------------------------------------------
    def _send(self, msg: tuple[Any, ...]) -> bool:
        """Send `msg` into the first stage; False if it cannot take it (no worker, or it died)."""
        if self._inbox is None:
            return False
        try:
            self._inbox.send(msg)
        except OSError:  # BrokenPipeError included
            return False
        return True

    def _dead_worker(self, wait_s: float) -> str | None:
        """'SDK <stage> worker exited with code N' for the first worker that has exited (waiting up to `wait_s`)."""
        deadline = time.monotonic() + wait_s
        while True:
            for stage, p in zip(self.stages, self._procs, strict=False):  # no processes after _terminate
                if p.poll() is not None:
                    return f"SDK {stage} worker exited with code {p.returncode}"
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def _spawn(self) -> None:
        """Start one interpreter per stage, chained by pipes: parent -> stage 1 -> ... -> parent."""
        first_r, first_w = os.pipe()
        self._inbox = Connection(first_w, readable=False)
        reader = first_r
        self._procs = []
        for stage in self.stages:
            next_r, writer = os.pipe()
            setup = pickle.dumps((stage, self.filters, self.disparity_domain))
            proc = subprocess.Popen(
                [sys.executable, "-m", __name__, str(reader), str(writer), str(os.getpid())],
                stdin=subprocess.PIPE,
                pass_fds=(reader, writer),
            )
            assert proc.stdin is not None  # stdin=PIPE
            proc.stdin.write(setup)
            proc.stdin.close()
            os.close(reader)  # the child holds its ends now
            os.close(writer)
            self._procs.append(proc)
            reader = next_r
        self._results = Connection(reader, writable=False)

    def _new_pool(self, geometry: StreamGeometry) -> SlotPool:
        if self._pool is not None and self.geometry == geometry and self._free.qsize() == self.slots:
            return self._pool
        if self._pool is not None:
            self._pool.close()
        self.geometry = geometry
        self._pool = pool = SlotPool.create(geometry, self.slots)
        self._free = queue.Queue()
        for i in range(self.slots):
            self._free.put(i)
        return pool

    def _terminate(self) -> None:
        for p in self._procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(2.0)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(1.0)
        self._procs = []
        for conn in (self._inbox, self._results):
            if conn is not None:
                conn.close()
        self._inbox = self._results = None


def _worker_entry(argv: list[str]) -> int:
    """`python -m depth_annotation.capture.sdk_workers IN_FD OUT_FD PARENT_PID`, setup pickled on stdin."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    in_fd, out_fd, parent_pid = (int(a) for a in argv)
    stage, filters, disparity_domain = pickle.loads(sys.stdin.buffer.read())
    inbox, outbox = Connection(in_fd, writable=False), Connection(out_fd, readable=False)
    try:
        _stage_main(stage, filters, disparity_domain, inbox, outbox, parent_pid)
    except (BrokenPipeError, EOFError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(_worker_entry(sys.argv[1:]))
