"""Label voxel grids over a workspace box (5 mm by default, the guide's tabletop resolution).

Voxel (i, j, k) spans `origin + [i, i+1) * size` along x (and j, k along y, z),
the same indexing as Open3D's `VoxelGrid.create_from_point_cloud_within_bounds`
(the tests compare the occupied set with Open3D's). Open3D's grid averages the
points' colours; a label needs a vote instead, so labels are voted here: each
occupied voxel takes the label most of its points have (ties: the lower id).
Points outside the box are dropped. Stored sparse (coordinates + labels, the
form MinkowskiEngine-style models take) and, optionally, dense (uint8, 0 = empty:
void pixels have no depth, so no point is ever void).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import TrainingDataError


@dataclass(frozen=True)
class VoxelSpec:
    """The workspace box and resolution of a voxel grid."""

    origin_m: tuple[float, float, float]  # minimum corner of the box
    size_m: float  # voxel edge
    shape: tuple[int, int, int]  # voxels along x, y, z

    @classmethod
    def from_box(
        cls, box_min: tuple[float, float, float], box_max: tuple[float, float, float], size_m: float
    ) -> VoxelSpec:
        lo, hi = np.asarray(box_min, np.float64), np.asarray(box_max, np.float64)
        if not size_m > 0:
            raise TrainingDataError(f"voxel size must be positive, got {size_m}")
        if lo.shape != (3,) or hi.shape != (3,) or np.any(hi <= lo):
            raise TrainingDataError(f"workspace box min {box_min} must be below max {box_max} on every axis")
        shape = np.ceil((hi - lo) / size_m - 1e-9).astype(int)
        if np.any(shape > np.iinfo(np.int16).max):
            raise TrainingDataError(f"workspace of {tuple(shape)} voxels: more than 32767 along an axis")
        return cls(
            (float(lo[0]), float(lo[1]), float(lo[2])), float(size_m), (int(shape[0]), int(shape[1]), int(shape[2]))
        )

    def indices(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(voxel (i, j, k) of each point inside the box, which points are inside)."""
        ijk = np.floor((np.asarray(points, np.float64) - np.asarray(self.origin_m)) / self.size_m).astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < np.asarray(self.shape)), axis=1)
        return ijk[inside], inside


def voxelize(points: np.ndarray, labels: np.ndarray, spec: VoxelSpec) -> tuple[np.ndarray, np.ndarray]:
    """Occupied voxels (int16 (M, 3), sorted) and their majority labels (uint8 (M,))."""
    ijk, inside = spec.indices(points)
    lab = np.asarray(labels, np.int64)[inside]
    if len(ijk) == 0:
        return np.zeros((0, 3), np.int16), np.zeros(0, np.uint8)
    _, ny, nz = spec.shape
    flat = (ijk[:, 0] * ny + ijk[:, 1]) * nz + ijk[:, 2]
    pairs, counts = np.unique(flat * 256 + lab, return_counts=True)
    voxel, label = pairs // 256, pairs % 256
    order = np.lexsort((label, -counts, voxel))  # per voxel: most points first, then the lower id
    voxel, label = voxel[order], label[order]
    first = np.ones(len(voxel), bool)
    first[1:] = voxel[1:] != voxel[:-1]
    voxel, label = voxel[first], label[first]
    coords = np.stack([voxel // (ny * nz), (voxel // nz) % ny, voxel % nz], axis=1).astype(np.int16)
    return coords, label.astype(np.uint8)


def dense_grid(coords: np.ndarray, labels: np.ndarray, spec: VoxelSpec) -> np.ndarray:
    """uint8 (X, Y, Z) grid with each occupied voxel's label, 0 = empty."""
    grid = np.zeros(spec.shape, np.uint8)
    c = np.asarray(coords, np.int64)
    grid[c[:, 0], c[:, 1], c[:, 2]] = labels
    return grid
