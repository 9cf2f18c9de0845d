"""Turning a monocular model's output into metric depth, frame by frame.

Three modes:

* `scale_file`: a fixed scale and shift from the calibration JSON (`mono_scale`
  section, written by calibration_node's calibrate_mono_scale);
* `sensor_fit`: a robust scale + shift fitted on every frame against the sensor's
  depth (where a sensor frame with the same stamp exists; otherwise the last fit
  is reused), evaluated on held-out pixels the fit never saw (both on a
  2x2-strided grid: plenty of pixels for two parameters, a quarter of the cost);
* `metric_model`: the model already predicts metres (metric checkpoints).

Whenever sensor depth is at hand the result is scored against it (AbsRel, delta<1.25).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from depth_annotation.calibration import ScaleFitError, ScaleShift, evaluate, fit_scale_shift

from .errors import MetricConfigError

if TYPE_CHECKING:
    import torch

MODES = ("scale_file", "sensor_fit", "metric_model")


def load_scale_file(path: str | Path) -> ScaleShift:
    """The `mono_scale` section of a calibration JSON (or a file holding scale/shift at top level)."""
    path = Path(path).expanduser()
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MetricConfigError(f"cannot read scale file {path}: {exc}") from None
    section = doc.get("mono_scale", doc)
    try:
        return ScaleShift(float(section["scale"]), float(section["shift"]), float(section.get("inlier_ratio", 1.0)))
    except (KeyError, TypeError, ValueError):
        raise MetricConfigError(
            f"{path} has no mono_scale scale/shift (run calibration_node's calibrate_mono_scale)"
        ) from None


@dataclass(frozen=True)
class PixelTransform:
    """The per-pixel half of the alignment, when it is known before inference (a fixed or
    previous scale, or a metric model): backends with a GPU apply it beside the network."""

    scale: float
    shift: float
    min_depth_m: float
    max_depth_m: float
    identity: bool = False  # metric_model: the output is already metres

    def apply(self, output: np.ndarray) -> np.ndarray:
        """Metric depth in metres (float32), NaN where invalid: what `MetricAligner.align` computes."""
        if self.identity:
            depth = np.asarray(output, dtype=np.float32).copy()
        else:
            depth = ScaleShift(self.scale, self.shift).depth(
                output, min_depth_m=self.min_depth_m, max_depth_m=self.max_depth_m
            )
        valid = np.isfinite(depth) & (depth >= self.min_depth_m) & (depth <= self.max_depth_m)
        depth[~valid] = np.nan
        return depth

    def apply_torch(self, output: torch.Tensor) -> torch.Tensor:
        """`apply` in torch (float32), on the output's device: no copy to the host, no synchronisation."""
        import torch

        if self.identity:
            z = output.float().clone()
            ok = torch.isfinite(z)
        else:
            inv = output.float() * self.scale + self.shift
            z = torch.reciprocal(inv)
            ok = torch.isfinite(z) & (inv > 0)
        ok &= (z >= self.min_depth_m) & (z <= self.max_depth_m)
        return torch.where(ok, z, torch.full_like(z, float("nan")))


@dataclass
class FitReport:
    mode: str
    fitted: bool
    scale: float
    shift: float
    inlier_ratio: float
    abs_rel: float
    delta_1_25: float
    fit_pixels: int
    eval_pixels: int
    fit_ms: float


class MetricAligner:
    def __init__(
        self,
        mode: str,
        *,
        scale: ScaleShift | None = None,
        holdout_fraction: float = 0.2,
        min_fit_pixels: int = 500,
        min_depth_m: float = 0.1,
        max_depth_m: float = 10.0,
        seed: int = 0,
    ) -> None:
        if mode not in MODES:
            raise MetricConfigError(f"metric mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode == "scale_file" and scale is None:
            raise MetricConfigError("mode scale_file needs a scale (scale_file parameter)")
        self.mode = mode
        self.scale = scale  # current scale/shift (fixed, or the latest per-frame fit)
        self.holdout_fraction = holdout_fraction
        self.min_fit_pixels = min_fit_pixels
        self.min_depth_m, self.max_depth_m = min_depth_m, max_depth_m
        self.seed = seed
        self._split_cache: dict[tuple[int, int], np.ndarray] = {}

    def _held_out(self, shape: tuple[int, int]) -> np.ndarray:
        if shape not in self._split_cache:
            self._split_cache[shape] = np.random.default_rng(self.seed).random(shape) < self.holdout_fraction
        return self._split_cache[shape]

    def pixel_transform(self, sensor_available: bool) -> PixelTransform | None:
        """The metric transform of the next frame if it is known before inference: always for a
        metric model or a scale file, for sensor_fit only when this frame has no sensor depth to
        fit on (the last fit is reused) and a fit exists."""
        if self.mode == "metric_model":
            return PixelTransform(0.0, 0.0, self.min_depth_m, self.max_depth_m, identity=True)
        if self.scale is None or (self.mode == "sensor_fit" and sensor_available):
            return None
        return PixelTransform(self.scale.scale, self.scale.shift, self.min_depth_m, self.max_depth_m)

    def align(
        self,
        output: np.ndarray,
        sensor_depth_m: np.ndarray | None = None,
        *,
        depth_m: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, FitReport]:
        """(metric depth in metres with NaN where invalid, validity mask, report).

        `depth_m`: this frame's depth already computed with `pixel_transform(...)` (on the GPU);
        then only the validity mask and the score are computed here."""
        t0 = time.perf_counter()
        if depth_m is not None:
            if self.pixel_transform(sensor_depth_m is not None) is None:
                raise MetricConfigError("depth_m given for a frame whose scale is fitted on its own output")
            if depth_m.shape != output.shape:
                raise MetricConfigError(f"depth_m {depth_m.shape} does not match the output {output.shape}")
        nan = float("nan")
        fitted, inliers, fit_px = False, nan, 0
        sensor_ok = None
        if sensor_depth_m is not None:
            if sensor_depth_m.shape != output.shape:
                raise MetricConfigError(
                    f"sensor depth {sensor_depth_m.shape[1]}x{sensor_depth_m.shape[0]} does not match the image "
                    f"{output.shape[1]}x{output.shape[0]}: use depth aligned to the colour camera"
                )
            sensor_ok = (
                np.isfinite(sensor_depth_m)
                & (sensor_depth_m >= self.min_depth_m)
                & (sensor_depth_m <= self.max_depth_m)
            )
        held = self._held_out(output.shape)

        if depth_m is not None:
            depth = depth_m
        elif self.mode == "metric_model":
            depth = np.asarray(output, dtype=np.float32).copy()
        else:
            if self.mode == "sensor_fit" and sensor_depth_m is not None and sensor_ok is not None:
                # Fit on every 2nd pixel each way: thousands of pixels fix two parameters;
                # the full frame would only cost time.
                sub = (slice(None, None, 2), slice(None, None, 2))
                fit_mask = sensor_ok[sub] & ~held[sub]
                try:
                    self.scale = fit_scale_shift(
                        output[sub][fit_mask], sensor_depth_m[sub][fit_mask], min_pixels=self.min_fit_pixels
                    )
                    fitted, inliers, fit_px = True, self.scale.inlier_ratio, self.scale.n_pixels
                except ScaleFitError:
                    pass  # keep the previous fit
            if self.scale is None:
                empty = np.full(output.shape, np.nan, np.float32)
                return (
                    empty,
                    np.zeros(output.shape, bool),
                    FitReport(self.mode, False, nan, nan, nan, nan, nan, 0, 0, (time.perf_counter() - t0) * 1000),
                )
            depth = self.scale.depth(output, min_depth_m=self.min_depth_m, max_depth_m=self.max_depth_m)
        valid = np.isfinite(depth) & (depth >= self.min_depth_m) & (depth <= self.max_depth_m)
        depth[~valid] = np.nan
        abs_rel = delta = nan
        eval_px = 0
        if sensor_depth_m is not None and sensor_ok is not None:
            sub = (slice(None, None, 2), slice(None, None, 2))
            score = held[sub] & sensor_ok[sub]
            q = evaluate(depth[sub][score], sensor_depth_m[sub][score])
            abs_rel, delta, eval_px = q.abs_rel, q.delta_1_25, q.n_pixels
        scale, shift = (
            (self.scale.scale, self.scale.shift) if (self.scale and self.mode != "metric_model") else (0.0, 0.0)
        )
        report = FitReport(
            self.mode, fitted, scale, shift, inliers, abs_rel, delta, fit_px, eval_px, (time.perf_counter() - t0) * 1000
        )
        return depth, valid, report
