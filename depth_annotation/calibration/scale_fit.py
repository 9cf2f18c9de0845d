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
    n_pixels: int = 0  # pixels (or reference pairs) behind the fit
    shift_fitted: bool = True  # False: held fixed (known-size fits with every reference at one depth)

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
            "shift_fitted": self.shift_fitted,
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


# --- from known sizes -------------------------------------------------------------------------


def fit_scale_shift_to_distances(
    rays_a: np.ndarray,
    rays_b: np.ndarray,
    d_a: np.ndarray,
    d_b: np.ndarray,
    distances_m: np.ndarray,
    *,
    shift: float | None = None,
    iterations: int = 30,
) -> ScaleShift:
    """1/Z = scale * d_rel + shift from pairs of pixels whose metric distance apart is known.

    A reference object of known size (two clicked points on a ruler, the corners of a board at
    an unknown pose) fixes the metric scale without a sensor or a board pose: each pixel's point
    is X = Z r, r its ray (z = 1, undistorted) and Z = 1 / (scale * d + shift); we minimise the
    relative distance errors (|X_a - X_b| - L) / L by Gauss-Newton with Tukey weights, started
    from the closed form with shift 0. The shift is observable only when the references lie at
    different depths; when they do not (or `shift` is given) it is held (at 0, or the given
    value) and `ScaleShift.shift_fitted` is False.
    """
    ra, rb = (np.asarray(r, np.float64).reshape(-1, 3) for r in (rays_a, rays_b))
    da, db = (np.asarray(x, np.float64).ravel() for x in (d_a, d_b))
    length = np.asarray(distances_m, np.float64).ravel()
    if not (len(ra) == len(rb) == len(da) == len(db) == len(length)):
        raise ScaleFitError("rays, disparities and distances must have one entry per pair")
    ok = np.isfinite(da) & np.isfinite(db) & (da > 0) & (db > 0) & (length > 0) & np.isfinite(length)
    ra, rb, da, db, length = ra[ok], rb[ok], da[ok], db[ok], length[ok]
    if len(length) < 1:
        raise ScaleFitError("no reference pair with a positive relative disparity at both ends")
    # Closed form with shift 0: X = r / (scale d), so |r_a/d_a - r_b/d_b| / scale = L.
    a = float(np.median(np.linalg.norm(ra / da[:, None] - rb / db[:, None], axis=1) / length))
    b = 0.0 if shift is None else float(shift)
    if shift is not None:  # same depths at the median disparity with the held shift
        a -= b / float(np.median(np.concatenate([da, db])))

    def residuals(a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
        za, zb = 1.0 / (a * da + b), 1.0 / (b + a * db)
        delta = ra * za[:, None] - rb * zb[:, None]
        dist = np.linalg.norm(delta, axis=1)
        f = (dist - length) / length
        unit = delta / np.maximum(dist, 1e-12)[:, None]
        # dZ/da = -d Z^2, dZ/db = -Z^2
        ja = np.sum(unit * (ra * (-da * za * za)[:, None] - rb * (-db * zb * zb)[:, None]), axis=1) / length
        jb = np.sum(unit * (ra * (-za * za)[:, None] - rb * (-zb * zb)[:, None]), axis=1) / length
        return f, np.column_stack([ja, jb])

    f, jac = residuals(a, b)
    fit_shift = shift is None and len(length) >= 2
    if fit_shift:
        # Both columns proportional (every reference at one depth): the shift is not observable.
        cols = jac / np.maximum(np.linalg.norm(jac, axis=0), 1e-300)
        fit_shift = abs(float(cols[:, 0] @ cols[:, 1])) < 0.99999
    w = np.ones(len(f))
    for _ in range(iterations):
        f, jac = residuals(a, b)
        sigma = mad_sigma(f) + 1e-12 if len(f) >= 5 else float("inf")
        u = f / (4.685 * sigma)
        w = np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0.0)
        if w.sum() < (2 if fit_shift else 1):
            w = np.ones(len(f))
        jw = jac * w[:, None]
        if fit_shift:
            step = np.linalg.lstsq(jw.T @ jac, -(jw.T @ f), rcond=None)[0]
        else:
            step = np.array([-(jw[:, 0] @ f) / max(float(jw[:, 0] @ jac[:, 0]), 1e-300), 0.0])
        a_new, b_new = a + float(step[0]), b + float(step[1])
        # keep every reference in front of the camera
        while np.any(a_new * np.concatenate([da, db]) + b_new <= 0) and abs(step).max() > 1e-15:
            step = step / 2
            a_new, b_new = a + float(step[0]), b + float(step[1])
        done = abs(a_new - a) <= 1e-10 * abs(a) and abs(b_new - b) <= 1e-10 * (abs(b) + abs(a) * 1e-3)
        a, b = a_new, b_new
        if done:
            break
    return ScaleShift(float(a), float(b), float((w > 0).mean()), int(len(length)), shift_fitted=fit_shift)
