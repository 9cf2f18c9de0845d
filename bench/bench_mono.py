"""Monocular depth: per-frame scale fit at 640x480 and model inference (tiny on CPU; ViT-S Small-sized with a GPU)."""

from __future__ import annotations

import tempfile
import time

import numpy as np

from depth_annotation.calibration import fit_scale_shift
from depth_annotation.common import SyntheticScene, default_intrinsics, orbit_pose
from depth_annotation.mono import DepthAnything, MetricAligner, MonoModelConfig, save_tiny_model, small_sized_model


def _fit_ms() -> dict:
    f = SyntheticScene(0).render(default_intrinsics(640, 480), orbit_pose(0.0))
    z = f.depth_gt_m
    d = (0.8 / z + 0.05).astype(np.float32)
    sensor = f.depth_mm.astype(np.float32) / 1000.0
    sensor[f.depth_mm == 0] = np.nan
    aligner = MetricAligner("sensor_fit")
    aligner.align(d, sensor)
    runs, fits = [], []
    for _ in range(30):
        _, _, rep = aligner.align(d, sensor)
        runs.append(rep.fit_ms)
        t0 = time.perf_counter()
        fit_scale_shift(d[::2, ::2].ravel(), sensor[::2, ::2].ravel())
        fits.append((time.perf_counter() - t0) * 1000)
    return [
        {
            "case": "scale/shift fit alone, 640x480",
            "device": "cpu",
            "median ms": float(np.median(fits)),
            "best ms": float(np.min(fits)),
        },
        {
            "case": "sensor_fit align 640x480 (fit + metric depth + held-out score)",
            "device": "cpu",
            "median ms": float(np.median(runs)),
            "best ms": float(np.min(runs)),
        },
    ]


def _infer(model_dir, device: str, fp16: bool, batch: int, label: str, n: int) -> dict:
    m = DepthAnything(MonoModelConfig(model=str(model_dir), device=device, fp16=fp16))
    imgs = [np.random.default_rng(i).integers(0, 255, (480, 640, 3), dtype=np.uint8) for i in range(batch)]
    m.predict_batch(imgs)  # warm-up
    if device.startswith("cuda"):
        m.torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        m.predict_batch(imgs)
    if device.startswith("cuda"):
        m.torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / n
    return {
        "case": f"{label} ({m.parameters / 1e6:.2f} M) 518 px, batch {batch}",
        "device": f"{device} {'fp16' if m.dtype == m.torch.float16 else 'fp32'}",
        "median ms": dt * 1000 / batch,
        "best ms": float("nan"),
        "images/s": batch / dt,
    }


def run() -> list[dict]:
    import torch

    rows = _fit_ms()
    with tempfile.TemporaryDirectory() as tmp:
        tiny = save_tiny_model(f"{tmp}/tiny")
        rows.append(_infer(tiny, "cpu", False, 1, "tiny untrained", 10))
        small = small_sized_model(f"{tmp}/small")
        rows.append(_infer(small, "cpu", False, 1, "Small-sized random", 2))
        if torch.cuda.is_available():
            for fp16 in (False, True):
                for batch in (1, 8):
                    rows.append(_infer(small, "cuda", fp16, batch, "Small-sized random", 20))
        else:
            rows.append(
                {"case": "Small-sized on GPU: no CUDA device on this machine", "device": "-", "median ms": float("nan")}
            )
    return rows
