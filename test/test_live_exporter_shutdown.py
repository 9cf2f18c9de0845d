"""live_exporter_node at Ctrl-C with a writer far behind (a slow disk): the backlog is written for at
most shutdown_drain_s, the rest dropped with a warning, and the dataset committed well before
launch would escalate (SIGTERM 30 s after Ctrl-C, SIGKILL 5 s later)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
from ros_harness import VENV_BIN, WATCHED
from test_node_faults import Feeder

S = 1_000_000_000

SLOW_DISK = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from depth_annotation.dataset import hdf5_writer
    from depth_annotation.nodes.live_exporter_node import main

    STALL = Path(sys.argv[1])
    original = hdf5_writer.EpisodeWriter.append

    def append(self, *args, **kwargs):  # a slow disk: half a second per frame, stalled while STALL exists
        time.sleep(0.5)
        while STALL.exists():
            time.sleep(0.05)
        return original(self, *args, **kwargs)

    hdf5_writer.EpisodeWriter.append = append
    sys.exit(main(sys.argv[2:]))
    """
)


def run_backlogged_exporter(ros, procs, tmp_path, *, queue_size: int, stall_s: float) -> tuple[str, float]:
    """40 frames sent to an exporter writing 2 per second, then SIGINT (the disk stalled for `stall_s`
    from just before it); returns the log and the seconds from SIGINT to exit 0."""
    out, script, stall = tmp_path / "ds", tmp_path / "slow_disk_exporter.py", tmp_path / "stall"
    script.write_text(SLOW_DISK)
    cmd = [sys.executable, str(script), str(stall), "--ros-args", "-p", f"output_dir:={out}", "-p", "every_k:=1000"]
    cmd += ["-p", "shutdown_drain_s:=1.0", "-p", f"queue_size:={queue_size}"]
    exporter = procs.command(cmd, "slow_disk_exporter")
    feed = Feeder(ros, "backlog_feeder")
    assert feed.ready()
    for i in range(40):  # 20 s of writing at the slow disk's pace
        feed.send(S + i * 33_000_000, 64, 48)
    WATCHED.remove(exporter)
    if stall_s:
        stall.touch()
    start = time.monotonic()
    exporter.proc.send_signal(signal.SIGINT)
    if stall_s:
        time.sleep(stall_s)
        stall.unlink()
    rc = exporter.wait_exit(120)
    log = exporter.output()
    assert rc == 0, log[-3000:]
    return log, time.monotonic() - start


def assert_committed(out) -> None:
    """The dataset holds the frames written before the deadline, every one readable; `check` passes."""
    with h5py.File(out / "export" / "dataset.h5") as h5:
        depth = h5["episode_0"]["depth"][:]
    assert 1 <= depth.shape[0] < 40 and np.all(depth == 700), depth.shape
    info = json.loads((out / "dataset_info.json").read_text())
    assert [e["frames"] for e in info["episodes"]] == [depth.shape[0]]
    check = subprocess.run(
        [str(VENV_BIN / "depth-annotation"), "check", str(out)], capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0 and "dataset OK" in check.stdout, check.stdout + check.stderr


def test_a_backlog_is_written_for_at_most_shutdown_drain_s_then_dropped_and_the_dataset_committed(ros, procs, tmp_path):
    log, took = run_backlogged_exporter(ros, procs, tmp_path, queue_size=600, stall_s=0.0)
    assert "shutdown: the writer was still" in log and "(shutdown_drain_s)" in log, log[-3000:]
    assert took < 15.0, (took, log[-3000:])  # writing all 40 frames would take 20 s; launch's SIGTERM comes at 30
    assert_committed(tmp_path / "ds")


def test_a_full_queue_and_a_stalled_write_at_shutdown_still_end_once_the_write_returns(ros, procs, tmp_path):
    """The queue is full when the stop comes and the write in progress stalls past the deadline:
    the stop marker is queued once the writer discards, and the node exits soon after the write
    returns (not a minute later, waiting for a marker that never came)."""
    log, took = run_backlogged_exporter(ros, procs, tmp_path, queue_size=10, stall_s=4.0)
    assert "shutdown: the writer was still" in log, log[-3000:]
    assert 4.0 <= took < 30.0, (took, log[-3000:])
    assert_committed(tmp_path / "ds")
