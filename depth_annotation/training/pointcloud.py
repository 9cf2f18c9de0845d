"""Labelled point clouds from aligned depth, downsampled by farthest-point sampling to a fixed size.

Back-projection is vectorised over the pixel grid (the guide's X = (u - cx) Z / fx,
Y = (v - cy) Z / fy; undistorted rays when the camera has distortion), so every
point keeps its source pixel: labels and colours are indexed per pixel before
projection, as the guide says.

Farthest-point sampling is Open3D's (`PointCloud.farthest_point_down_sample`),
on a voxel pre-sample of the cloud: FPS costs O(cloud x samples), 2.9 s for
8192 of 300k points here, so the cloud is first reduced to one point per voxel
(the first pixel of each voxel, so it is a real point with its own label), the
voxel size chosen so that between 1 and 1.5 x `presample_factor` x N points
remain (0.35 s for 8192 samples of a 640x480 frame here, FPS itself most of it).
Open3D returns points, not indices; the point index rides along in the normals
(float64 holds it exactly), which Open3D copies with the selection.

Coverage guarantee: FPS picks each sample as the point farthest from those
already picked, so when it stops every pre-sample point lies within the last
pick distance, which is at most the smallest distance between two samples;
every original point is within sqrt(3) * voxel of its pre-sample point. So the
largest distance from any point of the cloud to its nearest sample is at most
min_pairwise_sample_distance + sqrt(3) * presample_voxel_m (tested).

Fewer distinct points than N: all are kept and the rest of the fixed-size array
repeats them in order (`num_valid` says how many are distinct).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from depth_annotation.common import Intrinsics

from .errors import TrainingDataError


@dataclass(frozen=True)
class LabelledCloud:
    """Points of one frame with what their pixels carry."""

    points: np.ndarray  # float32 (M, 3) metres, camera optical frame
    labels: np.ndarray  # uint8 (M,)
    colors: np.ndarray  # uint8 (M, 3)
    pixels: np.ndarray  # int32 (M, 2) u, v


@dataclass(frozen=True)
class SampledCloud:
    """A fixed-size sample of a LabelledCloud."""

    points: np.ndarray  # float32 (N, 3)
    labels: np.ndarray  # uint8 (N,)
    colors: np.ndarray  # uint8 (N, 3)
    pixels: np.ndarray  # int32 (N, 2)
    num_valid: int  # distinct points; later rows repeat earlier ones
    presample_voxel_m: float  # 0: FPS ran on the whole cloud


@lru_cache(maxsize=8)
def camera_rays(intr: Intrinsics) -> np.ndarray:
    """(H, W, 3) float32 rays with z = 1 through every pixel centre (undistorted when D is not zero)."""
    if not intr.is_distorted:
        rays: np.ndarray = intr.pixel_rays().astype(np.float32)
    else:
        u, v = np.meshgrid(np.arange(intr.width, dtype=np.float64), np.arange(intr.height, dtype=np.float64))
        pix = np.stack([u.ravel(), v.ravel()], axis=1).reshape(-1, 1, 2)
        norm = cv2.undistortPoints(pix, intr.k, intr.dist_coeffs).reshape(intr.height, intr.width, 2)
        rays = np.concatenate([norm, np.ones((intr.height, intr.width, 1))], axis=2).astype(np.float32)
    rays.setflags(write=False)
    return rays


def backproject(
    depth_mm: np.ndarray,
    intrinsics: Intrinsics,
    *,
    labels: np.ndarray | None = None,
    color: np.ndarray | None = None,
    depth_scale: float = 0.001,
    depth_range_m: tuple[float, float] = (0.3, 2.0),
) -> LabelledCloud:
    """Every pixel with depth inside the working range as a point, with its label, colour and pixel."""
    depth_mm = np.asarray(depth_mm)
    h, w = depth_mm.shape
    if (intrinsics.width, intrinsics.height) != (w, h):
        raise TrainingDataError(f"depth is {w}x{h} but the intrinsics are {intrinsics.width}x{intrinsics.height}")
    for name, arr in (("labels", labels), ("color", color)):
        if arr is not None and arr.shape[:2] != (h, w):
            raise TrainingDataError(f"{name} is {arr.shape[1]}x{arr.shape[0]}, depth is {w}x{h}")
    z = depth_mm.astype(np.float32) * np.float32(depth_scale)
    lo, hi = depth_range_m
    keep = (depth_mm > 0) & (z >= lo) & (z <= hi)
    rows, cols = np.nonzero(keep)
    points = camera_rays(intrinsics)[rows, cols] * z[rows, cols, None]
    return LabelledCloud(
        points=np.ascontiguousarray(points, np.float32),
        labels=(labels[rows, cols] if labels is not None else np.zeros(len(rows))).astype(np.uint8),
        colors=(color[rows, cols] if color is not None else np.zeros((len(rows), 3))).astype(np.uint8),
        pixels=np.stack([cols, rows], axis=1).astype(np.int32),
    )


def farthest_point_indices(points: np.ndarray, n: int, *, start_index: int = 0) -> np.ndarray:
    """Indices of `n` points chosen by Open3D's farthest-point sampling (all of them when there are fewer)."""
    import open3d as o3d

    pts = np.asarray(points, np.float64).reshape(-1, 3)
    if n >= len(pts):
        return np.arange(len(pts), dtype=np.int64)
    if n < 1:
        raise TrainingDataError(f"farthest-point sampling needs at least 1 sample, got {n}")
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    carrier = np.zeros_like(pts)
    carrier[:, 0] = np.arange(len(pts))
    cloud.normals = o3d.utility.Vector3dVector(carrier)  # the index travels with the point
    picked = cloud.farthest_point_down_sample(n, start_index)
    return np.asarray(picked.normals)[:, 0].astype(np.int64)


def _presample(points: np.ndarray, voxel: float) -> np.ndarray:
    """Index of the first point in each occupied voxel of size `voxel`, in point order."""
    keys = np.floor(points / voxel).astype(np.int64)
    keys -= keys.min(axis=0)
    span = keys.max(axis=0) + 1
    flat = (keys[:, 0] * span[1] + keys[:, 1]) * span[2] + keys[:, 2]
    _, first = np.unique(flat, return_index=True)
    return np.sort(first)


def sample_cloud(
    cloud: LabelledCloud,
    n: int,
    intrinsics: Intrinsics,
    *,
    presample_factor: float = 3.0,
) -> SampledCloud:
    """Exactly `n` points by farthest-point sampling on a voxel pre-sample (see the module docstring)."""
    if n < 1:
        raise TrainingDataError(f"the point count must be at least 1, got {n}")
    m = len(cloud.points)
    if m == 0:
        raise TrainingDataError("the frame has no depth inside the working range: no point cloud")
    voxel = 0.0
    candidates = np.arange(m)
    target = presample_factor * n
    if presample_factor > 0 and m > target:
        # Start from the area the pixels cover (each Z^2 / (fx fy), as if facing the camera), then correct the
        # voxel size by the count it gave: oblique surfaces (a table seen from above) hold more voxels.
        z = cloud.points[:, 2].astype(np.float64)
        voxel = float(np.sqrt(float(np.sum(z * z)) / (intrinsics.fx * intrinsics.fy) / target))
        for _ in range(6):
            candidates = _presample(cloud.points, voxel)
            if n <= len(candidates) <= 1.5 * target:
                break
            voxel *= float(np.sqrt(len(candidates) / (1.2 * target)))
        if len(candidates) < n:  # too coarse at the last try: no pre-sampling
            voxel, candidates = 0.0, np.arange(m)
    picked = candidates[farthest_point_indices(cloud.points[candidates], n)]
    distinct = len(picked)
    if distinct < n:
        picked = np.resize(picked, n)  # repeats in order
    return SampledCloud(
        points=cloud.points[picked],
        labels=cloud.labels[picked],
        colors=cloud.colors[picked],
        pixels=cloud.pixels[picked],
        num_valid=distinct,
        presample_voxel_m=voxel,
    )


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(N, 3) points through a 4x4 rigid transform, float32 out."""
    m = np.asarray(matrix, np.float64)
    out: np.ndarray = np.asarray(points, np.float32) @ m[:3, :3].T.astype(np.float32) + m[:3, 3].astype(np.float32)
    return out
