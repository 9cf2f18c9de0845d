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
from ros_harness import VENV_BIN, WATCHED, wait_until
from test_node_faults import Feeder

S = 1_000_000_000

SLOW_DISK = textwrap.dedent(
    """
    import sys, time
    from depth_annotation.dataset import hdf5_writer
    from depth_annotation.nodes.live_exporter_node import main

    original = hdf5_writer.EpisodeWriter.append

    def append(self, *args, **kwargs):  # a slow disk: half a second per frame
        time.sleep(0.5)
        return original(self, *args, **kwargs)

    hdf5_writer.EpisodeWriter.append = append
    sys.exit(main(sys.argv[1:]))
    """
)


def test_a_backlog_is_written_for_at_most_shutdown_drain_s_then_dropped_and_the_dataset_committed(ros, procs, tmp_path):
    out, script = tmp_path / "ds", tmp_path / "slow_disk_exporter.py"
    script.write_text(SLOW_DISK)
    cmd = [sys.executable, str(script), "--ros-args", "-p", f"output_dir:={out}", "-p", "every_k:=1000"]
    cmd += ["-p", "shutdown_drain_s:=1.0"]
    exporter = procs.command(cmd, "slow_disk_exporter")
    feed = Feeder(ros, "backlog_feeder")
    assert feed.ready()
    for i in range(40):  # 20 s of writing at the slow disk's pace
        feed.send(S + i * 33_000_000, 64, 48)
    assert wait_until(lambda: "ready" in exporter.output(), 30)
    WATCHED.remove(exporter)
    start = time.monotonic()
    exporter.proc.send_signal(signal.SIGINT)
    rc = exporter.wait_exit(60)
    took = time.monotonic() - start
    log = exporter.output()
    assert rc == 0, log[-3000:]
    assert "shutdown: the writer was still" in log and "(shutdown_drain_s)" in log, log[-3000:]
    assert took < 15.0, (took, log[-3000:])  # writing all 40 frames would take 20 s; launch's SIGTERM comes at 30
    with h5py.File(out / "export" / "dataset.h5") as h5:
        depth = h5["episode_0"]["depth"][:]
    assert 1 <= depth.shape[0] < 40 and np.all(depth == 700), depth.shape
    info = json.loads((out / "dataset_info.json").read_text())
    assert [e["frames"] for e in info["episodes"]] == [depth.shape[0]]
    check = subprocess.run(
        [str(VENV_BIN / "depth-annotation"), "check", str(out)], capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0 and "dataset OK" in check.stdout, check.stdout + check.stderr
