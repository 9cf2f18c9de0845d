"""Calibration: board detection rate by resolution, and calibrateCamera solve time for 20 and 50 views."""

from __future__ import annotations

import time

from depth_annotation.calibration import (
    BoardDetector,
    BoardSpec,
    calibrate_intrinsics,
    render_board,
    varied_board_poses,
)
from depth_annotation.common import default_intrinsics


def run() -> list[dict]:
    rows = []
    for kind in ("charuco", "checkerboard"):
        spec = BoardSpec(kind=kind)
        det = BoardDetector(spec)
        for w, h in ((640, 480), (1280, 720)):
            intr = default_intrinsics(w, h)
            images = [
                render_board(spec, intr, p, noise_sigma=1.0).image for p in varied_board_poses(spec, intr, 6, seed=2)
            ]
            t0 = time.perf_counter()
            n = 0
            while time.perf_counter() - t0 < 2.0:
                det.detect(images[n % len(images)])
                n += 1
            rate = n / (time.perf_counter() - t0)
            row = {"board": kind, "resolution": f"{w}x{h}", "detect fps": rate}
            if (w, h) == (640, 480):
                poses = varied_board_poses(spec, intr, 50, seed=3)
                dets = [det.detect(render_board(spec, intr, p, noise_sigma=1.0).image) for p in poses]
                for n_views in (20, 50):
                    t1 = time.perf_counter()
                    r = calibrate_intrinsics(dets[:n_views], spec, (w, h), min_views=n_views, reject_outliers=False)
                    row[f"solve {n_views} views ms"] = (time.perf_counter() - t1) * 1000
                    row[f"RMS {n_views} views px"] = r.rms_px
            rows.append(row)
    return rows
