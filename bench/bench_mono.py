"""Monocular depth: scale fit; the Small-architecture model on the CPU (torch, ONNX Runtime, OpenVINO; 518/392/266)

CPU rows: the randomly initialised Depth-Anything-V2-Small-architecture model (24.8 M
parameters) on a 640x480 synthetic frame, 2 threads, every backend at every input size
measured round-robin (one frame each per round, so load on the machine hits all alike);
median and best ms per frame, frames/s, and the speed-up over torch eager at 518 (the
median of the per-round ratios). Accuracy of a smaller input, two ways, both after a
least-squares scale/shift alignment: the AbsRel of each output against torch's 518 output
of the same random model (pixels whose reference is at least 10 % of its median; random
weights make this a pessimistic, noise-dominated figure), and the resolution-only cost: the
ground-truth disparity of the synthetic frames taken down to the network input and back
(what a model that were exact at its own resolution would lose), against the truth.
GPU rows: bench/gpu_mono.py (run there by this module when CUDA is available).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from depth_annotation.calibration import fit_scale_shift
from depth_annotation.common import SyntheticScene, default_intrinsics, orbit_pose
from depth_annotation.mono import (
    MetricAligner,
    MonoModelConfig,
    MonoModelError,
    export_onnx,
    load_model,
    network_input_size,
    save_tiny_model,
    small_sized_model,
)

SIZES = (518, 392, 266)
THREADS = 2


def _fit_ms() -> list[dict[str, Any]]:
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
        {"case": "scale/shift fit alone, 640x480", "device": "cpu", "median ms": float(np.median(fits))},
        {
            "case": "sensor_fit align 640x480 (fit + metric depth + held-out score)",
            "device": "cpu",
            "median ms": float(np.median(runs)),
        },
    ]


def _aligned_abs_rel(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> float:
    """AbsRel of `pred` against `ref` after the least-squares scale and shift that maps one onto the other."""
    a = np.stack([pred[mask], np.ones(int(mask.sum()))], axis=1).astype(np.float64)
    coef = np.linalg.lstsq(a, ref[mask].astype(np.float64), rcond=None)[0]
    return float(np.mean(np.abs(a @ coef - ref[mask]) / np.abs(ref[mask])))


def _resolution_only_abs_rel(frames: list[Any], size: int) -> float:
    """The truth's disparity down to the network input (the processor's bicubic) and back up (our bilinear)."""
    import cv2
    from PIL import Image

    costs = []
    for f in frames:
        z = f.depth_gt_m
        valid = np.isfinite(z) & (z > 0)
        disp = np.where(valid, 1.0 / np.where(valid, z, 1.0), 0.0).astype(np.float32)
        h, w = disp.shape
        nh, nw = network_input_size(h, w, (size, size), keep_aspect_ratio=True, multiple=14)
        small = np.asarray(Image.fromarray(disp).resize((nw, nh), Image.Resampling.BICUBIC))
        back = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        costs.append(_aligned_abs_rel(back, disp, valid))
    return float(np.mean(costs))


def _round_robin(models: dict[str, Any], image: np.ndarray, rounds: int) -> dict[str, list[float]]:
    """ms per frame of each model: per round, each model runs one untimed frame (so the previous
    runtime's idle threads have settled, as in a node that runs one backend) and one timed frame."""
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(rounds):
        for key, m in models.items():
            m.predict(image)
            t0 = time.perf_counter()
            m.predict(image)
            times[key].append((time.perf_counter() - t0) * 1000.0)
    return times


def _cpu_rows(tmp: str, rounds: int) -> list[dict[str, Any]]:
    model_dir = small_sized_model(f"{tmp}/small")
    scene, intr = SyntheticScene(0), default_intrinsics(640, 480)
    frames = [scene.render(intr, orbit_pose(0.6 * i), frame_seed=i) for i in range(3)]
    image = frames[0].color
    models: dict[str, Any] = {}
    notes: dict[str, str] = {}
    labels: dict[str, tuple[str, int]] = {}

    def add(key: str, backend: str, size: int, make: Callable[[], Any]) -> None:
        labels[key] = (backend, size)
        try:
            models[key] = make()
        except MonoModelError as exc:  # a runtime that is not installed: a row that says so
            notes[key] = str(exc)

    for size in SIZES:
        add(
            f"torch {size}",
            "torch eager fp32",
            size,
            lambda s=size: load_model(MonoModelConfig(model=str(model_dir), input_size=s, threads=THREADS)),
        )
    for size in SIZES:
        path = f"{tmp}/small_{size}.onnx"
        try:
            export_onnx(model_dir, path, input_size=size, image_size=(640, 480))
        except MonoModelError as exc:
            notes[f"onnx {size}"] = str(exc)
            continue
        for key, backend, fp16 in (
            (f"ort {size}", "onnxruntime", False),
            (f"ov {size}", "openvino", True),
            (f"ov32 {size}", "openvino", False),
        ):
            if key.startswith("ov32") and size != 518:
                continue  # OpenVINO fp32: one size, to show what its reduced precision buys
            add(
                key,
                backend,
                size,
                lambda p=path, b=backend, f=fp16: load_model(
                    MonoModelConfig(model=p, backend=b, fp16=f, threads=THREADS)
                ),
            )
    times = _round_robin(models, image, rounds)
    reference = models.get("torch 518")
    refs = [reference.predict(f.color)[0] for f in frames] if reference else []
    base = times.get("torch 518")
    rows = []
    for key, (backend, size) in labels.items():
        m = models.get(key)
        net = "x".join(map(str, network_input_size(480, 640, (size, size), keep_aspect_ratio=True, multiple=14)))
        row: dict[str, Any] = {"case": f"{backend} {net}", "device": f"cpu, {THREADS} threads"}
        if m is None:
            row.update({"median ms": float("nan"), "note": notes.get(key, notes.get(f"onnx {size}", ""))[:120]})
            rows.append(row)
            continue
        t = times[key]
        if backend == "openvino":
            row["case"] = f"OpenVINO {m.precision} {net}"  # the precision it runs at (bf16 where the CPU has it)
        elif backend == "onnxruntime":
            row["case"] = f"ONNX Runtime fp32 {net}"
        row["median ms"] = statistics.median(t)
        row["best ms"] = min(t)
        row["frames/s"] = 1000.0 / statistics.median(t)
        row["vs torch 518"] = statistics.median(b / x for b, x in zip(base, t, strict=True)) if base else float("nan")
        if refs:
            costs = []
            for f, ref in zip(frames, refs, strict=True):
                out = m.predict(f.color)[0]
                costs.append(_aligned_abs_rel(out, ref, ref >= 0.1 * np.median(ref)))
            row["AbsRel vs torch 518 (random model)"] = float(np.mean(costs))
        row["AbsRel resolution-only (truth)"] = _resolution_only_abs_rel(frames, size)
        rows.append(row)
    return rows


def run() -> list[dict[str, Any]]:
    import torch

    rows = _fit_ms()
    rounds = int(os.environ.get("MONO_BENCH_ROUNDS", "3"))
    with tempfile.TemporaryDirectory() as tmp:
        tiny = load_model(MonoModelConfig(model=str(save_tiny_model(f"{tmp}/tiny")), threads=THREADS))
        img = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
        t = _round_robin({"tiny": tiny}, img, 10)["tiny"]
        rows.append({"case": "tiny untrained (0.14 M), torch 518x686", "device": "cpu", "median ms": np.median(t)})
        rows.extend(_cpu_rows(tmp, rounds))
    if torch.cuda.is_available():
        import gpu_mono

        result = gpu_mono.run(gpu_mono.parse_args(["--budget-s", "200"]))
        for r in result["rows"]:
            rows.append(
                {"case": f"{r['case']} [{r['precision']}]", "device": r["device"], "median ms": r["ms_per_frame"]}
            )
    else:
        rows.append(
            {
                "case": "GPU rows: no CUDA device here; run bench/gpu_mono.py on one",
                "device": "-",
                "median ms": float("nan"),
            }
        )
    columns: dict[str, None] = {}
    for r in rows:
        columns.update(dict.fromkeys(r))
    return [{c: r.get(c, "") for c in columns} for r in rows]  # bench/run.py prints the first row's columns
