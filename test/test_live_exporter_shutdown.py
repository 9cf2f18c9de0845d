"""live_exporter_node at Ctrl-C with a writer far behind (a slow disk): the backlog is written for at
most shutdown_drain_s, the rest dropped with a warning, and the dataset committed well before
launch would escalate (SIGTERM 30 s after Ctrl-C, SIGKILL 5 s later)."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import h5py
import numpy as np
from ros_harness import VENV_BIN, WATCHED
from test_node_faults import Feeder, slow_exporter

S = 1_000_000_000


def run_backlogged_exporter(ros, procs, tmp_path, *, queue_size: int, stall_s: float) -> tuple[str, float]:
    """40 frames sent to an exporter writing 2 per second, then SIGINT (with `stall_s`, the disk hangs
    from the first frame until that long after it); returns the log and the seconds from SIGINT to exit 0."""
    params = {"output_dir": tmp_path / "ds", "every_k": 1000, "shutdown_drain_s": 1.0, "queue_size": queue_size}
    exporter, stall = slow_exporter(procs, tmp_path, delay_s=0.5, params=params)  # 10: full when the stop comes
    feed = Feeder(ros, "backlog_feeder")
    assert feed.ready()
    feed.prime()
    if stall_s:  # the first test frame's write hangs: the queue is full when the stop comes
        stall.touch()
    for i in range(40):  # 20 s of writing at the slow disk's pace
        feed.send(S + i * 33_000_000, 64, 48)
    WATCHED.remove(exporter)
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
        depth, stamps = h5["episode_0"]["depth"][:], h5["episode_0"]["timestamps_ns"][:]
    assert np.count_nonzero(stamps >= S) < 40 and len(stamps) >= 1 and np.all(depth == 700), stamps  # not all 40
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
