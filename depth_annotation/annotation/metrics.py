"""Annotation quality metrics (the guide, "Validate Annotations and Measure Quality"), on numpy arrays.

- `class_iou`: per class, `|A & B| / |A | B|` between two annotators' label images.
- `cohen_kappa`: chance-corrected pixel agreement, over all classes and per class
  (class vs rest): with most pixels table and background, raw agreement is high
  by chance alone; per-class kappa shows the small objects the overall figure hides.
- `surface_distance_mm`: how far a 3D keypoint lies from the depth surface of the
  object it was clicked on (a plane through that object's pixels around it).
- `mask_depth_outliers`: pixels inside an object mask whose depth leaves the
  object's robust depth range (median ± k·MAD-sigma): a mask bleeding onto the
  background behind a silhouette.

Pixels with no depth (void) are left out of every comparison: the taxonomy
forces them to `void` in every annotator's image, so they would only inflate agreement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from depth_annotation.common import MAD_TO_SIGMA, Intrinsics


def class_iou(a: np.ndarray, b: np.ndarray, classes: Iterable[int], valid: np.ndarray) -> dict[int, tuple[float, int]]:
    """class id -> (IoU, pixels in the union) over `valid` pixels; classes absent from both are left out."""
    out = {}
    av, bv = a[valid], b[valid]
    for c in classes:
        in_a, in_b = av == c, bv == c
        union = int(np.count_nonzero(in_a | in_b))
        if union:
            out[int(c)] = (float(np.count_nonzero(in_a & in_b)) / union, union)
    return out


@dataclass(frozen=True)
class Kappa:
    overall: float  # multi-class Cohen's kappa over the valid pixels
    observed: float  # raw agreement p_o
    expected: float  # chance agreement p_e from the two annotators' label frequencies
    per_class: dict[int, float]  # class vs rest (binary kappa), for classes either annotator used


def _kappa(p_o: float, p_e: float) -> float:
    return 1.0 if p_e >= 1.0 else (p_o - p_e) / (1.0 - p_e)


def cohen_kappa(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> Kappa:
    """Cohen's kappa of two label images over the `valid` pixels (labels are uint8 ids)."""
    av, bv = a[valid].astype(np.int64), b[valid].astype(np.int64)
    n = av.size
    if n == 0:
        return Kappa(float("nan"), float("nan"), float("nan"), {})
    confusion = np.bincount(av * 256 + bv, minlength=256 * 256).reshape(256, 256).astype(np.float64) / n
    rows, cols = confusion.sum(axis=1), confusion.sum(axis=0)
    p_o = float(np.trace(confusion))
    p_e = float(rows @ cols)
    per_class = {}
    for c in np.flatnonzero((rows > 0) | (cols > 0)):
        both = confusion[c, c]
        neither = 1.0 - rows[c] - cols[c] + both
        po_c = float(both + neither)
        pe_c = float(rows[c] * cols[c] + (1.0 - rows[c]) * (1.0 - cols[c]))
        per_class[int(c)] = _kappa(po_c, pe_c)
    return Kappa(_kappa(p_o, p_e), p_o, p_e, per_class)


@dataclass(frozen=True)
class SurfaceDistance:
    distance_mm: float  # NaN when no surface could be fitted (see reason)
    points: int  # object pixels with depth the plane was fitted to
    reason: str  # "" when measured


def surface_distance_mm(
    xyz: np.ndarray,
    u: float,
    v: float,
    labels: np.ndarray,
    depth_mm: np.ndarray,
    intr: Intrinsics,
    object_ids: Sequence[int],
    *,
    radius: int = 3,
    min_points: int = 6,
) -> SurfaceDistance:
    """Distance from a 3D keypoint to the local depth surface of its object, in mm.

    The surface is a plane fitted (least squares, then refitted without points
    beyond 3 robust sigmas) to the 3D points of the pixels in the (2r+1)^2 window
    around the click that the same annotator labelled with an object class and
    that have depth. A keypoint clicked on the background behind a mug handle is
    centimetres from that plane; one on the handle is within the depth noise.
    """
    if not np.all(np.isfinite(xyz)):
        return SurfaceDistance(float("nan"), 0, "keypoint has no depth")
    h, w = depth_mm.shape
    col, row = int(round(u)), int(round(v))
    r0, r1, c0, c1 = max(row - radius, 0), min(row + radius + 1, h), max(col - radius, 0), min(col + radius + 1, w)
    win_d = depth_mm[r0:r1, c0:c1]
    sel = (win_d > 0) & np.isin(labels[r0:r1, c0:c1], np.asarray(object_ids, np.uint8))
    n = int(np.count_nonzero(sel))
    if n < min_points:
        return SurfaceDistance(
            float("nan"), n, f"no object surface under the keypoint ({n} object pixels with depth within {radius} px)"
        )
    rr, cc = np.nonzero(sel)
    pts = intr.backproject(cc + c0, rr + r0, win_d[sel].astype(np.float64) / 1000.0)
    normal, centre = _plane(pts)
    resid = (pts - centre) @ normal
    spread = max(MAD_TO_SIGMA * float(np.median(np.abs(resid - np.median(resid)))), 1e-4)
    keep = np.abs(resid - np.median(resid)) <= 3.0 * spread
    if np.count_nonzero(keep) >= min_points:
        normal, centre = _plane(pts[keep])
    return SurfaceDistance(abs(float((np.asarray(xyz, np.float64) - centre) @ normal)) * 1000.0, n, "")


def _plane(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centre = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centre, full_matrices=False)
    return vt[-1], centre


@dataclass(frozen=True)
class MaskOutliers:
    """One connected region of one object class and its pixels outside the robust depth range."""

    label: int
    pixels: int  # region pixels with depth
    outliers: int
    median_mm: float
    sigma_mm: float  # the MAD-sigma used (floored at the sensor's noise at that depth)
    bbox: tuple[int, int, int, int]  # x, y, width, height
    outlier_mask: np.ndarray  # bool (H, W), for the report's images


def mask_depth_outliers(
    labels: np.ndarray,
    depth_mm: np.ndarray,
    label_ids: Iterable[int],
    *,
    k: float = 5.0,
    min_pixels: int = 50,
    noise_sigma_at_1m_mm: float = 2.0,
) -> list[MaskOutliers]:
    """Per connected region of each class in `label_ids`: pixels whose depth deviates from the
    region's median by more than k·sigma, sigma = max(MAD·1.4826, sensor noise sigma(Z))."""
    out = []
    for c in label_ids:
        full_mask = labels == c
        rows, cols = np.flatnonzero(full_mask.any(axis=1)), np.flatnonzero(full_mask.any(axis=0))
        if rows.size == 0:
            continue
        oy, ox = int(rows[0]), int(cols[0])  # label only the class's bounding box: objects are small
        mask = np.asarray(full_mask[oy : rows[-1] + 1, ox : cols[-1] + 1], np.uint8)
        n, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        for i in range(1, n):
            if stats[i, cv2.CC_STAT_AREA] < min_pixels:
                continue
            cx, cy, bw, bh = (int(v) for v in stats[i, :4])
            x, y = cx + ox, cy + oy
            sub_c, sub_d = comp[cy : cy + bh, cx : cx + bw] == i, depth_mm[y : y + bh, x : x + bw]
            sel = sub_c & (sub_d > 0)
            d = sub_d[sel].astype(np.float64)
            if d.size < min_pixels:
                continue
            med = float(np.median(d))
            sigma = max(MAD_TO_SIGMA * float(np.median(np.abs(d - med))), noise_sigma_at_1m_mm * (med / 1000.0) ** 2)
            bad = sel & (np.abs(sub_d.astype(np.float64) - med) > k * sigma)
            full = np.zeros(labels.shape, bool)
            full[y : y + bh, x : x + bw] = bad
            out.append(MaskOutliers(int(c), int(d.size), int(np.count_nonzero(bad)), med, sigma, (x, y, bw, bh), full))
    return out
