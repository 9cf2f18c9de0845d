"""Synthetic scene: render cost per frame (ray cast, shading, sensor model) by resolution."""

from __future__ import annotations

import time

import numpy as np

from depth_annotation.common import SyntheticScene, default_intrinsics, orbit_pose


def _time(fn, n: int) -> float:
    fn(0)
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        fn(i)
    return (time.perf_counter() - t0) / n * 1000.0


def run() -> list[dict]:
    scene = SyntheticScene(seed=0)
    rows = []
    for w, h in ((640, 480), (848, 480), (1280, 720)):
        intr = default_intrinsics(w, h)
        n = 10 if w < 1000 else 5
        ray_ms = _time(lambda i, intr=intr: scene.raycast(intr, orbit_pose(i / 30)), n)
        full_ms = _time(lambda i, intr=intr: scene.render(intr, orbit_pose(i / 30), frame_seed=i), n)
        f = scene.render(intr, orbit_pose(0))
        rows.append(
            {
                "resolution": f"{w}x{h}",
                "raycast ms": ray_ms,
                "full render ms": full_ms,
                "render fps": 1000.0 / full_ms,
                "valid depth %": 100.0 * float(np.mean(f.depth_mm > 0)),
            }
        )
    return rows
