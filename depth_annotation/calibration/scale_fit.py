"""Robust scale-and-shift fit of relative (affine-invariant) disparity to metric depth.

Monocular models such as Depth Anything V2 predict disparity only up to an
unknown scale and shift: d_rel ~ s / Z + t. Given reference depth Z_ref on some
pixels (sensor depth, or a calibration board's plane), we fit in disparity space

    1 / Z_ref  =  a * d_rel + b

by iteratively reweighted least squares with a Tukey biweight on residuals
scaled by their MAD, after a RANSAC-style start that survives a large share of
outliers (reflective surfaces, edge bleeding). Metric depth is then
Z = 1 / (a * d_rel + b) wherever that denominator is positive.

Quality is measured on held-out pixels (never used in the fit): AbsRel and
delta < 1.25, the usual monocular-depth metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from depth_annotation.common import mad_sigma, upper_median

from .errors import ScaleFitError


@dataclass(frozen=True)
class ScaleShift:
    """1/Z = scale * d_rel + shift."""

    scale: float
    shift: float
    inlier_ratio: float = 1.0
    n_pixels: int = 0

    def depth(self, d_rel: np.ndarray, *, min_depth_m: float = 0.05, max_depth_m: float = 20.0) -> np.ndarray:
        """Metric depth in metres; NaN where the fit gives no valid depth."""
        inv = self.scale * np.asarray(d_rel, dtype=np.float64) + self.shift
        with np.errstate(divide="ignore", invalid="ignore"):
            z = 1.0 / inv
        bad = ~np.isfinite(z) | (inv <= 0) | (z < min_depth_m) | (z > max_depth_m)
        z = z.astype(np.float32)
        z[bad] = np.nan
        return z

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": "inverse_depth = scale * relative_disparity + shift",
            "scale": self.scale,
            "shift": self.shift,
            "inlier_ratio": self.inlier_ratio,
            "n_pixels": self.n_pixels,
        }


@dataclass(frozen=True)
class FitQuality:
    abs_rel: float
    delta_1_25: float
    n_pixels: int


def _lstsq(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> tuple[float, float]:
    if w is None:
        w = np.ones_like(x)
    sw = w.sum()
    mx, my = (w * x).sum() / sw, (w * y).sum() / sw
    vx = (w * (x - mx) ** 2).sum()
    if vx <= 0:
        raise ScaleFitError("relative disparity is constant over the fit pixels: scale is undetermined")
    a = (w * (x - mx) * (y - my)).sum() / vx
    return float(a), float(my - a * mx)


def fit_scale_shift(
    d_rel: np.ndarray,
    depth_ref_m: np.ndarray,
    *,
    min_pixels: int = 100,
    ransac_iters: int = 48,
    ransac_samples: int = 1000,
    max_samples: int = 4000,
    seed: int = 0,
) -> ScaleShift:
    """Fit 1/Z_ref = a d_rel + b robustly. Inputs are matching 1-D (or same-shape) arrays.

    Pixels with non-finite values or non-positive reference depth are ignored.
    Raises ScaleFitError when fewer than `min_pixels` usable pixels remain.
    """
    x = np.asarray(d_rel).ravel()
    z = np.asarray(depth_ref_m).ravel()
    if x.size != z.size:
        raise ScaleFitError(f"relative ({x.size} px) and reference ({z.size} px) sizes differ")
    # A regular subsample first keeps the fit cheap at any resolution (every pixel
    # would add nothing to two parameters but time).
    step = max(1, x.size // (4 * max_samples))
    x, z = x[::step].astype(np.float64), z[::step].astype(np.float64)
    ok = np.isfinite(x) & np.isfinite(z) & (z > 0)
    x, y = x[ok], 1.0 / z[ok]
    if x.size < min_pixels:
        raise ScaleFitError(f"only {x.size} pixels with both relative and reference depth (need {min_pixels})")
    rng = np.random.default_rng(seed)
    if x.size > max_samples:
        pick = rng.integers(0, x.size, max_samples)
        x, y = x[pick], y[pick]

    # RANSAC start: minimal 2-point models, scored by the median absolute residual on a subset.
    best, best_score = None, np.inf
    spread = np.ptp(x)
    sub = rng.integers(0, x.size, min(ransac_samples, x.size))
    xs, ys = x[sub], y[sub]
    for _ in range(ransac_iters):
        i, j = rng.integers(0, x.size, 2)
        if abs(x[i] - x[j]) < 1e-6 * (spread + 1e-12):
            continue
        a = (y[i] - y[j]) / (x[i] - x[j])
        b = y[i] - a * x[i]
        score = upper_median(np.abs(ys - (a * xs + b)))
        if score < best_score:
            best, best_score = (a, b), score
    if best is None:
        best = _lstsq(x, y)
    a, b = best

    # IRLS with Tukey's biweight (c = 4.685 robust sigmas).
    inliers = np.ones(x.size, bool)
    for _ in range(10):
        r = y - (a * x + b)
        sigma = mad_sigma(r, fast=True) + 1e-12
        u = r / (4.685 * sigma)
        w = np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0.0)
        inliers = w > 0
        if inliers.sum() < 2:
            break
        a_new, b_new = _lstsq(x, y, w)
        converged = abs(a_new - a) <= 1e-9 * (abs(a) + 1e-12) and abs(b_new - b) <= 1e-9 * (abs(b) + 1e-12)
        a, b = a_new, b_new
        if converged:
            break
    return ScaleShift(float(a), float(b), float(inliers.mean()), int(x.size))


def evaluate(depth_pred_m: np.ndarray, depth_ref_m: np.ndarray) -> FitQuality:
    """AbsRel = mean |Z - Z_ref| / Z_ref and delta<1.25 over pixels valid in both."""
    p = np.asarray(depth_pred_m, dtype=np.float64).ravel()
    r = np.asarray(depth_ref_m, dtype=np.float64).ravel()
    ok = np.isfinite(p) & np.isfinite(r) & (p > 0) & (r > 0)
    if not ok.any():
        return FitQuality(float("nan"), float("nan"), 0)
    p, r = p[ok], r[ok]
    ratio = np.maximum(p / r, r / p)
    return FitQuality(float(np.mean(np.abs(p - r) / r)), float(np.mean(ratio < 1.25)), int(ok.sum()))


def holdout_split(mask: np.ndarray, holdout_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split a boolean pixel mask into (fit, held-out) masks by a fixed random pattern."""
    rng = np.random.default_rng(seed)
    held = rng.random(mask.shape) < holdout_fraction
    return mask & ~held, mask & held
