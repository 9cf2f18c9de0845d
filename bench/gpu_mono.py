"""Monocular depth on a GPU: issue 18's table, for our `predict` before and after the device path.

    PYTHONPATH=$PWD python3 bench/gpu_mono.py            # on a machine with CUDA, torch and transformers

Builds the randomly initialised Depth-Anything-V2-Small-architecture model itself (no download,
no ONNX), feeds a 640x480 RGB frame (network input 518x686) and prints, for fp16 and fp32, the
median ms/frame of N runs after warm-up, with the device's name beside every figure:

* `predict` before: transformers' image processor on the CPU, then the model, resize, host;
* `predict` after: uint8 upload through a pinned buffer, resize + normalise on the GPU,
  model, resize on the GPU, one synchronisation (and the same with a captured CUDA graph);
* `predict_batch` of 8, per frame; the model forward alone (pixel values already on the GPU);
* the node path's core: `predict_frame` with the metric transform on the GPU + the aligner;
* `torch.compile` (default mode): the forward alone, and `predict` compiled + CUDA graph.

It also checks that the after-path output equals the before-path output (relative difference
of the output, max |a - b| / max |b|) on the same frame. Results go to `$OUT/gpu_mono.json` when
OUT is set. It stops starting new rows after `--budget-s` (default 200 s) so it ends within 4 min.
`--device cpu --tiny --runs 2` runs the same code on a CPU with the tiny model (a smoke test).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

T0 = time.monotonic()


def frame(height: int = 480, width: int = 640) -> np.ndarray:
    """A structured 640x480 RGB frame: gradients, edges and noise (deterministic)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([x * 255 / width, y * 255 / height, (x + y) % 256], axis=-1)
    img[height // 3 : height // 2, width // 4 : width // 2] = (250, 30, 30)
    img = img + rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


class Bench:
    def __init__(self, device: str, runs: int, warmup: int, budget_s: float) -> None:
        import torch

        self.torch = torch
        self.device = device
        self.runs, self.warmup, self.budget_s = runs, warmup, budget_s
        self.name = (
            torch.cuda.get_device_name(0)
            if device.startswith("cuda")
            else f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
        )
        self.rows: list[dict[str, Any]] = []

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()

    def time_left(self) -> float:
        return self.budget_s - (time.monotonic() - T0)

    def measure(self, case: str, precision: str, fn: Callable[[], Any], *, per: int = 1, note: str = "") -> None:
        """Median wall-clock ms of `fn` (per frame: divided by `per`), synchronised after each run."""
        row: dict[str, Any] = {"case": case, "precision": precision, "device": self.name}
        if self.time_left() <= 0:
            row.update(ms_per_frame=None, note="skipped: time budget spent")
            self.rows.append(row)
            print(f"  {case} [{precision}]: skipped (time budget)", flush=True)
            return
        try:
            for _ in range(self.warmup):
                fn()
            self.sync()
            times = []
            for _ in range(self.runs):
                t0 = time.perf_counter()
                fn()
                self.sync()
                times.append((time.perf_counter() - t0) * 1000.0 / per)
            ms = statistics.median(times)
            row.update(ms_per_frame=ms, fps=1000.0 / ms, min_ms=min(times), runs=len(times), note=note)
            print(f"  {case} [{precision}]: {ms:.2f} ms/frame on {self.name}", flush=True)
        except Exception as exc:  # one failing row must not cost the table
            row.update(ms_per_frame=None, note=f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            print(f"  {case} [{precision}]: FAILED {row['note']}", flush=True)
            traceback.print_exc(limit=3)
        self.rows.append(row)


def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """How far output `a` is from reference `b`: max |a - b| / max |b|, and the median per-pixel relative error."""
    scale = float(np.abs(b).max()) or 1.0
    rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-6 * scale)
    return {"max_abs_over_max": float(np.abs(a - b).max() / scale), "median_rel": float(np.median(rel))}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    import transformers

    from depth_annotation.mono import save_tiny_model, small_sized_model

    bench = Bench(args.device, args.runs, args.warmup, args.budget_s)
    cuda = args.device.startswith("cuda")
    print(f"device: {bench.name}; torch {torch.__version__}, transformers {transformers.__version__}", flush=True)
    image = frame()
    result: dict[str, Any] = {
        "device": bench.name,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "image": "640x480 RGB",
        "runs": args.runs,
        "warmup": args.warmup,
        "rows": bench.rows,
        "agreement": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_tiny_model(f"{tmp}/m") if args.tiny else small_sized_model(f"{tmp}/m")
        outputs: dict[str, np.ndarray] = {}
        for fp16 in (True, False):
            _precision_rows(bench, result, outputs, str(model_dir), fp16, image, cuda)
            if cuda:
                torch.cuda.empty_cache()

        ref = outputs.get("before fp32")
        for key, out in outputs.items():
            if ref is not None and key != "before fp32":
                result["agreement"][f"{key} vs before fp32"] = agreement(out, ref)
        if "after fp16" in outputs and "before fp16" in outputs:
            result["agreement"]["after fp16 vs before fp16"] = agreement(outputs["after fp16"], outputs["before fp16"])
    result["elapsed_s"] = time.monotonic() - T0
    return result


def _precision_rows(
    bench: Bench,
    result: dict[str, Any],
    outputs: dict[str, np.ndarray],
    model_dir: str,
    fp16: bool,
    image: np.ndarray,
    cuda: bool,
) -> None:
    """Every row of one precision (each model built here, so nothing outlives its rows)."""
    import torch

    from depth_annotation.calibration import ScaleShift
    from depth_annotation.mono import DepthAnything, MetricAligner, MonoModelConfig

    precision = "fp16" if fp16 else "fp32"

    def cfg(**kw: Any) -> MonoModelConfig:
        return MonoModelConfig(model=model_dir, device=bench.device, fp16=fp16, **kw)

    before = DepthAnything(cfg(preprocess="processor"))
    if fp16:
        result["model_parameters"] = before.parameters
        result["network_input"] = "x".join(map(str, before.network_size(480, 640)))
        result["processor"] = type(before.processor).__name__
    bench.measure("predict, before (image processor on the CPU)", precision, lambda: before.predict(image))
    outputs[f"before {precision}"] = before.predict(image)[0]

    after = DepthAnything(cfg())
    bench.measure("predict, after (device path)", precision, lambda: after.predict(image))
    outputs[f"after {precision}"] = after.predict(image)[0]
    batch = [image] * 8
    bench.measure("predict_batch of 8, per frame", precision, lambda: after.predict_batch(batch), per=8)
    assert after.device_preprocess is not None
    size = after.network_size(480, 640)
    pixels = after.device_preprocess(torch.from_numpy(image)[None].to(after.device), size, after.dtype).contiguous()
    bench.measure("model forward only (pixel values on the device)", precision, lambda: after.forward_only(pixels))
    aligner = MetricAligner("scale_file", scale=ScaleShift(2.0, 0.1))

    def node_core() -> None:
        pred = after.predict_frame(image, aligner.pixel_transform(False))
        aligner.align(pred.output, None, depth_m=pred.depth_m)

    bench.measure("node core: predict_frame + metric on the device + align", precision, node_core)

    if not cuda:
        return
    graphs = DepthAnything(cfg(cuda_graphs=True))
    graphs.predict(image)  # captures
    note = f"graph not captured, ran eagerly: {graphs.graph_error}" if graphs.graph_error else ""
    bench.measure("predict, after + CUDA graph", precision, lambda: graphs.predict(image), note=note)
    outputs[f"graph {precision}"] = graphs.predict(image)[0]

    # torch.compile (default mode): fp16 always, fp32 while time is left; compiling takes tens of seconds
    if bench.time_left() < (60 if fp16 else 100):
        bench.rows.append(
            {
                "case": "torch.compile",
                "precision": precision,
                "device": bench.name,
                "ms_per_frame": None,
                "note": "skipped: time budget",
            }
        )
        return
    t0 = time.monotonic()
    compiled = DepthAnything(cfg(compile=True, cuda_graphs=True))
    try:
        compiled.forward_only(pixels)  # compiles
        note = f"compile {time.monotonic() - t0:.0f} s"
        bench.measure("model forward only, torch.compile", precision, lambda: compiled.forward_only(pixels), note=note)
        compiled.predict(image)
        if compiled.graph_error:
            note += f"; graph not captured: {compiled.graph_error}"
        bench.measure(
            "predict, after + torch.compile + CUDA graph", precision, lambda: compiled.predict(image), note=note
        )
        outputs[f"compiled {precision}"] = compiled.predict(image)[0]
    except Exception as exc:  # a compiler failure is a row, not the end of the table
        bench.rows.append(
            {
                "case": "torch.compile",
                "precision": precision,
                "device": bench.name,
                "ms_per_frame": None,
                "note": f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
            }
        )
        traceback.print_exc(limit=3)


def table(result: dict[str, Any]) -> str:
    """Issue 18's table: one line per path, fp16 and fp32 side by side, the device beside every figure."""
    cases: dict[str, dict[str, dict[str, Any]]] = {}
    for r in result["rows"]:
        cases.setdefault(r["case"], {})[r["precision"]] = r

    def cell(r: dict[str, Any] | None) -> str:
        if not r or r.get("ms_per_frame") is None:
            return "—" if not r else f"— ({r.get('note', '')})"
        extra = f"; {r['note']}" if r.get("note") else ""
        return f"{r['ms_per_frame']:.2f} ({r['device']}{extra})"

    lines = [
        f"model: Depth-Anything-V2-Small architecture, random weights, {result.get('model_parameters', 0) / 1e6:.1f} M "
        f"params; 640x480 input -> {result.get('network_input')}; median of {result['runs']} runs after "
        f"{result['warmup']} warm-up; torch {result['torch']}, transformers {result['transformers']}, "
        f"processor {result.get('processor')}",
        "",
        "| path | fp16 ms/frame | fp32 ms/frame |",
        "|---|---|---|",
    ]
    for case, by in cases.items():
        lines.append(f"| {case} | {cell(by.get('fp16'))} | {cell(by.get('fp32'))} |")
    fwd = {p: cases.get("model forward only (pixel values on the device)", {}).get(p) for p in ("fp16", "fp32")}
    pred = {p: cases.get("predict, after (device path)", {}).get(p) for p in ("fp16", "fp32")}
    lines.append("")
    for p in ("fp16", "fp32"):
        f, q = fwd[p], pred[p]
        if f and q and f.get("ms_per_frame") and q.get("ms_per_frame"):
            lines.append(
                f"{p}: predict after / forward only = {q['ms_per_frame'] / f['ms_per_frame']:.2f}x "
                f"(target <= 1.3x), {q['fps']:.0f} frames/s ({result['device']})"
            )
    for key, a in result["agreement"].items():
        lines.append(
            f"agreement {key}: max|a-b|/max|b| = {a['max_abs_over_max']:.2e}, median rel {a['median_rel']:.2e}"
        )
    lines.append(f"elapsed {result['elapsed_s']:.0f} s")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--runs", type=int, default=60)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--budget-s", type=float, default=200.0, help="start no new row after this (default %(default)s)")
    p.add_argument("--tiny", action="store_true", help="the tiny test model instead of the Small architecture")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        print(f"error: gpu_mono.py needs torch and transformers: {exc}", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: no CUDA device (torch.cuda.is_available() is False); try --device cpu --tiny", file=sys.stderr)
        return 2
    result = run(args)
    text = table(result)
    print("\n" + text, flush=True)
    out = os.environ.get("OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "gpu_mono.json").write_text(json.dumps(result, indent=2))
        (Path(out) / "gpu_mono.md").write_text(text + "\n")
        print(f"wrote {out}/gpu_mono.json", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
