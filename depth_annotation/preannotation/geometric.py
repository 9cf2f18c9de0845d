"""Geometric pre-annotation: table plane, objects above it, void and background, from aligned depth alone.

No model weights: the scene's geometry does the first pass so annotators refine
instead of drawing (the guide's stage 1 of its annotation workflow).

1. Depth (uint16 mm) is back-projected with the frame's intrinsics; pixels with
   no depth are `void`, pixels outside the working range are `background`.
2. The table is a plane found by Open3D's RANSAC (`segment_plane`) on a strided
   sample of the in-range points: the largest of up to `max_planes` planes whose
   normal is within `max_tilt_deg` of "up" (image up, -y of the optical frame,
   unless `up_camera` says otherwise, e.g. from a camera->base transform) and
   that has the camera above it. It is refitted to its inliers by least squares
   until the inlier set is stable (Open3D's RANSAC is multi-threaded and not
   reproducible bit for bit even when seeded; the refit makes the plane so).
   Table pixels are those within `plane_distance_m` + 3 sigma of the sensor's
   noise model (sigma = `noise_sigma_at_1m` * Z^2) of the plane, in connected
   pieces of at least `min_table_piece` of the largest piece.
3. Points above the table whose projection onto the plane falls inside the
   table's convex hull grown by `table_margin_m` are voxelised (`cluster_voxel_m`)
   and clustered in 3D with Open3D's DBSCAN (`cluster_eps_m`); each pixel takes
   its voxel's cluster.
4. Each cluster is classified by documented heuristics:
   - its largest extent (PCA) above `max_object_extent_m`: `background` (a wall, a shelf);
   - it rests on the table (its 2nd-percentile height within `support_m` of the
     plane): an object, `target_object` when `target_hue_deg` is set and the
     cluster's median colour has that hue (within `target_hue_tol_deg`, saturation
     at least `target_min_saturation`), otherwise `object_label`
     (`distractor_object` by default: geometry cannot tell which object the task is about);
   - it floats above the table: robot, `robot_arm` when longer than
     `robot_arm_extent_m` or cut by the image's top edge (in an upright tabletop
     view the arm reaches in from above; the gripper hangs at its end), otherwise `gripper`;
   - fewer than `min_object_pixels` pixels: `background` (specks).
   Everything else with depth is `background`.

Scores (0-1, per region, a ranking of how much to trust the proposal, not a
calibrated probability):
- table: the fraction of its pixels within 3 sigma of the fitted plane;
- object / robot: the fraction of the mask's one-pixel outer ring that is
  delimited by geometry (table, or depth at least `edge_jump_m` farther), times
  min(1, pixels / (4 * `min_object_pixels`)): a mask cut off by missing depth or
  touching another cluster scores lower;
- background: the fraction of its pixels that are background for a geometric
  reason (outside the working range or below the table plane).

Reflective and transparent objects return no depth on an active stereo sensor:
they are `void` here and left to the annotator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from depth_annotation.common import DEFAULT_TAXONOMY, Intrinsics, Taxonomy

from .errors import PreannotationConfigError

ROBOT_KINDS = ("gripper", "robot_arm")


@dataclass(frozen=True)
class GeometricConfig:
    """Settings of the geometric pre-annotation (defaults: a tabletop seen from 0.5-1.5 m)."""

    depth_range_m: tuple[float, float] = (0.3, 2.0)  # working range; outside: background
    noise_sigma_at_1m: float = 0.002  # sensor noise model sigma = this * Z^2 (the guide's 2 mm at 1 m)
    plane_distance_m: float = 0.008  # RANSAC inlier distance; table band = this + 3 sigma(Z)
    ransac_iterations: int = 400
    ransac_stride: int = 4  # plane fit on every 4th pixel each way
    max_planes: int = 3  # planes tried, largest first
    max_tilt_deg: float = 60.0  # table normal within this of up
    up_camera: tuple[float, float, float] | None = None  # "up" in the optical frame; None: (0, -1, 0)
    min_table_piece: float = 0.02  # band pieces smaller than this fraction of the largest are not table
    table_margin_m: float = 0.05  # object candidates project into the table hull grown by this
    footprint_cell_m: float = 0.005  # raster cell of the table hull
    max_height_m: float = 1.0  # above the table by more than this: background
    cluster_voxel_m: float = 0.008  # clustering runs on voxels of this size
    cluster_eps_m: float = 0.025  # DBSCAN neighbourhood (a mug handle seen past dropped edge pixels stays attached)
    cluster_min_points: int = 4  # DBSCAN core voxels
    min_object_pixels: int = 150
    support_m: float = 0.02  # lowest point this close to the plane: resting on the table
    max_object_extent_m: float = 0.5  # longer clusters are background
    robot_arm_extent_m: float = 0.2  # floating clusters longer than this are robot_arm, else gripper
    edge_jump_m: float = 0.02  # a ring pixel this much farther delimits a mask
    object_label: str = "distractor_object"  # label of objects the colour rule does not claim
    target_hue_deg: float | None = None  # colour rule for target_object (HSV hue, 0-360); None: off
    target_hue_tol_deg: float = 20.0
    target_min_saturation: float = 0.35
    seed: int = 0  # RANSAC seed (Open3D's global generator): results are reproducible

    def validate(self) -> None:
        lo, hi = self.depth_range_m
        if not 0.0 <= lo < hi:
            raise PreannotationConfigError(f"depth_range_m {self.depth_range_m} is empty")
        positive = (
            "plane_distance_m",
            "footprint_cell_m",
            "cluster_voxel_m",
            "cluster_eps_m",
            "max_height_m",
            "max_object_extent_m",
            "robot_arm_extent_m",
            "edge_jump_m",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise PreannotationConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("ransac_iterations", "ransac_stride", "max_planes", "cluster_min_points", "min_object_pixels"):
            if int(getattr(self, name)) < 1:
                raise PreannotationConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 < self.max_tilt_deg < 90.0:
            raise PreannotationConfigError(f"max_tilt_deg must be in (0, 90), got {self.max_tilt_deg}")
        if self.noise_sigma_at_1m < 0 or self.support_m < 0 or self.table_margin_m < 0:
            raise PreannotationConfigError("noise_sigma_at_1m, support_m and table_margin_m must not be negative")
        if not 0.0 <= self.min_table_piece <= 1.0:
            raise PreannotationConfigError(f"min_table_piece must be in [0, 1], got {self.min_table_piece}")
        if self.up_camera is not None and not np.linalg.norm(self.up_camera) > 0:
            raise PreannotationConfigError("up_camera must be a non-zero vector")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeometricConfig:
        """From a config mapping (config/preannotation.yaml's `geometric:`); unknown keys are refused."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise PreannotationConfigError(f"unknown pre-annotation setting(s) {unknown}; known: {sorted(known)}")
        values = dict(data)
        for key in ("depth_range_m", "up_camera"):
            if values.get(key) is not None:
                values[key] = tuple(float(v) for v in values[key])
        try:
            config = cls(**values)
        except TypeError as exc:
            raise PreannotationConfigError(str(exc)) from None
        config.validate()
        return config


@dataclass(frozen=True)
class Region:
    """One proposed region: a label, a score, and where it is (pixels of `instance` in the result)."""

    instance: int  # value of this region in GeometricResult.instances (1-based)
    label: str
    label_id: int
    kind: str  # table | object | robot | background
    score: float
    pixels: int
    centroid_m: tuple[float, float, float] | None = None  # camera frame
    extent_m: float | None = None  # longest PCA extent
    height_m: float | None = None  # top above the table plane

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "label": self.label,
            "label_id": self.label_id,
            "kind": self.kind,
            "score": round(self.score, 4),
            "pixels": self.pixels,
            "centroid_m": None if self.centroid_m is None else [round(v, 4) for v in self.centroid_m],
            "extent_m": None if self.extent_m is None else round(self.extent_m, 4),
            "height_m": None if self.height_m is None else round(self.height_m, 4),
        }


@dataclass
class GeometricResult:
    """The proposal for one frame: label image in the taxonomy's ids, region ids, regions, the table plane."""

    labels: np.ndarray  # uint8 (H, W), taxonomy ids; void where there is no depth
    instances: np.ndarray  # int32 (H, W): Region.instance, 0 = void
    regions: list[Region]
    plane: tuple[np.ndarray, float] | None  # (unit normal pointing up, offset): height = n . p + offset
    notes: list[str] = field(default_factory=list)

    def mask(self, region: Region) -> np.ndarray:
        return np.asarray(self.instances == region.instance)


@lru_cache(maxsize=8)
def _rays(intr: Intrinsics) -> np.ndarray:
    rays: np.ndarray = intr.pixel_rays().astype(np.float32)
    rays.setflags(write=False)
    return rays


def _label_ids(taxonomy: Taxonomy, config: GeometricConfig) -> dict[str, int]:
    ids = {label.name: label.id for label in taxonomy.labels}
    needed = {"void", "table_surface", "background", "gripper", "robot_arm", config.object_label}
    if config.target_hue_deg is not None:
        needed.add("target_object")
    missing = sorted(needed - set(ids))
    if missing:
        raise PreannotationConfigError(f"the taxonomy has no label(s) {missing} that pre-annotation assigns")
    return ids


def _orient(normal: np.ndarray, offset: float, up: np.ndarray) -> tuple[np.ndarray, float]:
    return (normal, offset) if float(normal @ up) >= 0 else (-normal, -offset)


def _fit_table_plane(
    sample: np.ndarray, config: GeometricConfig, up: np.ndarray
) -> tuple[np.ndarray, float, int] | None:
    """(normal, offset, inliers) of the table among up to `max_planes` RANSAC planes, or None."""
    import open3d as o3d

    o3d.utility.random.seed(config.seed)
    remaining = sample.astype(np.float64)
    cos_tilt = np.cos(np.radians(config.max_tilt_deg))
    best: tuple[np.ndarray, float, int] | None = None
    for _ in range(config.max_planes):
        if len(remaining) < 3:
            break
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(remaining))
        _, found = cloud.segment_plane(
            distance_threshold=config.plane_distance_m, ransac_n=3, num_iterations=config.ransac_iterations
        )
        inliers = np.asarray(found, np.int64)
        if len(inliers) < 3:
            break
        normal, offset, inliers = _refine_plane(remaining, inliers, config.plane_distance_m)
        normal, offset = _orient(normal, offset, up)
        camera_above = offset > 0  # height of the camera centre (origin) above the plane
        if float(normal @ up) >= cos_tilt and camera_above and (best is None or len(inliers) > best[2]):
            best = (normal, offset, len(inliers))
        keep = np.ones(len(remaining), bool)
        keep[inliers] = False
        remaining = remaining[keep]
    return best


def _refine_plane(points: np.ndarray, inliers: np.ndarray, distance: float) -> tuple[np.ndarray, float, np.ndarray]:
    """Least-squares plane of the inliers, refitted until the inlier set stops changing.

    RANSAC's plane comes from three points, and Open3D runs RANSAC on parallel
    threads, so even seeded it differs slightly from run to run; the refit
    converges to the same inlier set, which makes the plane reproducible.
    """
    normal, offset = np.array([0.0, 0.0, 1.0]), 0.0
    for _ in range(10):
        sel = points[inliers]
        centre = sel.mean(axis=0)
        normal = np.linalg.svd(sel - centre, full_matrices=False)[2][2]
        offset = float(-normal @ centre)
        again = np.flatnonzero(np.abs(points @ normal + offset) <= distance)
        if len(again) < 3 or np.array_equal(again, inliers):
            break
        inliers = again
    return normal, offset, inliers


def _plane_basis(normal: np.ndarray) -> np.ndarray:
    """(2, 3): two unit vectors spanning the plane."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(normal[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(normal, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(normal, e1)
    return np.stack([e1, e2])


class _Footprint:
    """The table's convex hull in plane coordinates, grown by a margin, as a raster for fast lookups."""

    def __init__(self, table_points: np.ndarray, basis: np.ndarray, cell: float, margin: float) -> None:
        uv = (table_points @ basis.T).astype(np.float32)
        hull = cv2.convexHull(uv)
        self.cell = cell
        self.origin = uv.min(axis=0) - margin - cell
        size = np.ceil((uv.max(axis=0) + margin + cell - self.origin) / cell).astype(int) + 1
        self.raster: np.ndarray = np.zeros((int(size[1]), int(size[0])), np.uint8)
        cv2.fillConvexPoly(self.raster, np.round((hull[:, 0, :] - self.origin) / cell).astype(np.int32), 1)
        grow = int(np.ceil(margin / cell))
        if grow:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
            self.raster = cv2.dilate(self.raster, kernel)
        self.basis = basis

    def contains(self, points: np.ndarray) -> np.ndarray:
        idx = np.floor(((points @ self.basis.T) - self.origin) / self.cell).astype(np.int64)
        h, w = self.raster.shape
        inside = (idx[:, 0] >= 0) & (idx[:, 0] < w) & (idx[:, 1] >= 0) & (idx[:, 1] < h)
        out = np.zeros(len(points), bool)
        out[inside] = self.raster[idx[inside, 1], idx[inside, 0]] > 0
        return out


def _cluster_voxels(points: np.ndarray, config: GeometricConfig) -> np.ndarray:
    """DBSCAN cluster id (-1: noise) per point, clustering voxel centroids instead of every pixel."""
    import open3d as o3d

    keys = np.floor(points / config.cluster_voxel_m).astype(np.int64)
    keys -= keys.min(axis=0)
    span = keys.max(axis=0) + 1
    flat = (keys[:, 0] * span[1] + keys[:, 1]) * span[2] + keys[:, 2]
    _, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    centroids = np.stack([np.bincount(inverse, weights=points[:, k]) for k in range(3)], axis=1) / counts[:, None]
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(centroids))
    voxel_labels = np.asarray(
        cloud.cluster_dbscan(eps=config.cluster_eps_m, min_points=config.cluster_min_points, print_progress=False)
    )
    labels: np.ndarray = voxel_labels[inverse]
    return labels


def _hue_matches(color: np.ndarray, config: GeometricConfig) -> bool:
    if config.target_hue_deg is None or color.size == 0:
        return False
    median = np.median(color.reshape(-1, 3), axis=0).astype(np.uint8).reshape(1, 1, 3)
    hsv = cv2.cvtColor(median, cv2.COLOR_RGB2HSV)[0, 0]
    hue, saturation = float(hsv[0]) * 2.0, float(hsv[1]) / 255.0
    diff = abs((hue - config.target_hue_deg + 180.0) % 360.0 - 180.0)
    return diff <= config.target_hue_tol_deg and saturation >= config.target_min_saturation


def _extent(points: np.ndarray, rng: np.random.Generator) -> float:
    sample = points if len(points) <= 4000 else points[rng.choice(len(points), 4000, replace=False)]
    centred = sample - sample.mean(axis=0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    proj = centred @ axis
    return float(np.percentile(proj, 99) - np.percentile(proj, 1))


def preannotate_frame(
    depth_mm: np.ndarray,
    intrinsics: Intrinsics,
    color_rgb: np.ndarray | None = None,
    *,
    config: GeometricConfig | None = None,
    taxonomy: Taxonomy = DEFAULT_TAXONOMY,
) -> GeometricResult:
    """Propose a label image and regions for one aligned RGB-D frame (see the module docstring)."""
    config = config or GeometricConfig()
    config.validate()
    ids = _label_ids(taxonomy, config)
    depth_mm = np.asarray(depth_mm)
    h, w = depth_mm.shape
    if (intrinsics.width, intrinsics.height) != (w, h):
        raise PreannotationConfigError(
            f"depth is {w}x{h} but the intrinsics are {intrinsics.width}x{intrinsics.height}"
        )
    z = depth_mm.astype(np.float32) * np.float32(0.001)
    valid = depth_mm > 0
    lo, hi = config.depth_range_m
    in_range = valid & (z >= lo) & (z <= hi)
    points = _rays(intrinsics) * z[..., None]
    sigma = np.float32(config.noise_sigma_at_1m) * z * z
    up = np.asarray(config.up_camera if config.up_camera is not None else (0.0, -1.0, 0.0), np.float64)
    up /= np.linalg.norm(up)

    labels = np.full((h, w), ids["background"], np.uint8)
    labels[~valid] = ids["void"]
    instances = np.zeros((h, w), np.int32)
    regions: list[Region] = []
    notes: list[str] = []
    s = config.ransac_stride
    sample_mask = in_range[::s, ::s]
    plane = _fit_table_plane(points[::s, ::s][sample_mask], config, up) if np.count_nonzero(sample_mask) >= 3 else None
    geometric_background = valid & ~in_range
    if plane is None:
        notes.append("no table plane: every pixel with depth is background")
    else:
        normal, offset, _ = plane
        height = points @ normal.astype(np.float32) + np.float32(offset)
        band = in_range & (np.abs(height) <= np.float32(config.plane_distance_m) + 3 * sigma)
        count, pieces, stats, _ = cv2.connectedComponentsWithStats(band.astype(np.uint8), connectivity=8)
        areas = stats[1:, cv2.CC_STAT_AREA] if count > 1 else np.zeros(0, np.int64)
        if areas.size == 0:
            notes.append("the table plane has no connected pixels")
            table = np.zeros((h, w), bool)
        else:
            keep = np.flatnonzero(areas >= config.min_table_piece * areas.max()) + 1
            table = np.isin(pieces, keep)
        geometric_background |= in_range & (height < -(np.float32(config.plane_distance_m) + 3 * sigma))
        if np.any(table):
            within = np.abs(height[table]) <= np.maximum(3 * sigma[table], np.float32(1e-4))
            instance = len(regions) + 1
            labels[table] = ids["table_surface"]
            instances[table] = instance
            regions.append(
                Region(
                    instance,
                    "table_surface",
                    ids["table_surface"],
                    "table",
                    float(np.mean(within)),
                    int(np.count_nonzero(table)),
                    tuple(float(v) for v in points[table].mean(axis=0)),  # type: ignore[arg-type]
                )
            )
            regions += _objects(
                points, height, sigma, table, in_range, color_rgb, labels, instances, ids, config, normal
            )
    background = valid & (instances == 0)
    if np.any(background):
        instance = len(regions) + 1
        instances[background] = instance
        explained = float(np.count_nonzero(geometric_background & background)) / float(np.count_nonzero(background))
        regions.append(
            Region(
                instance, "background", ids["background"], "background", explained, int(np.count_nonzero(background))
            )
        )
    return GeometricResult(
        labels, instances, regions, None if plane is None else (plane[0].copy(), float(plane[1])), notes
    )


def _mask_score(
    mask: np.ndarray,
    z: np.ndarray,
    table: np.ndarray,
    valid: np.ndarray,
    claimed: np.ndarray,
    config: GeometricConfig,
) -> float:
    """How well geometry delimits a mask: its 2-pixel outer ring is table or clearly farther (see module doc)."""
    ring = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~mask
    seen = ring & valid  # the sensor drops depth edges: a 2-pixel ring reaches past them
    if not seen.any():
        return 0.0
    z_obj = float(np.median(z[mask]))
    delimited = table[seen] | ((z[seen] > z_obj + config.edge_jump_m) & ~claimed[seen])
    size = min(1.0, float(np.count_nonzero(mask)) / (4.0 * config.min_object_pixels))
    seen_fraction = float(np.count_nonzero(seen)) / float(np.count_nonzero(ring))
    return float(np.mean(delimited)) * size * (0.5 + 0.5 * seen_fraction)


def _objects(
    points: np.ndarray,
    height: np.ndarray,
    sigma: np.ndarray,
    table: np.ndarray,
    in_range: np.ndarray,
    color_rgb: np.ndarray | None,
    labels: np.ndarray,
    instances: np.ndarray,
    ids: dict[str, int],
    config: GeometricConfig,
    normal: np.ndarray,
) -> list[Region]:
    """Cluster what stands above the table and classify each cluster; writes labels/instances in place."""
    normal_band = np.float32(config.plane_distance_m) + 3 * sigma
    above = in_range & ~table & (height > normal_band) & (height <= np.float32(config.max_height_m))
    table_pts = points[table][:: max(1, int(np.count_nonzero(table)) // 20000)]
    basis = _plane_basis(normal)
    footprint = _Footprint(table_pts.astype(np.float64), basis, config.footprint_cell_m, config.table_margin_m)
    rows, cols = np.nonzero(above)
    cand = points[rows, cols].astype(np.float64)
    inside = footprint.contains(cand)
    rows, cols, cand = rows[inside], cols[inside], cand[inside]
    if len(cand) == 0:
        return []
    cluster = _cluster_voxels(cand, config)
    rng = np.random.default_rng(config.seed)
    z = points[..., 2]
    valid = z > 0
    regions: list[Region] = []
    found = [c for c in np.unique(cluster) if c >= 0]
    masks = {}
    for c in found:
        sel = cluster == c
        if np.count_nonzero(sel) < config.min_object_pixels:
            continue
        mask = np.zeros(table.shape, bool)
        mask[rows[sel], cols[sel]] = True
        masks[c] = (mask, sel)
    claimed = np.zeros(table.shape, bool)
    for mask, _ in masks.values():
        claimed |= mask
    for mask, sel in masks.values():
        pts = cand[sel]
        heights = height[mask]
        extent = _extent(pts, rng)
        if extent > config.max_object_extent_m:
            continue  # a wall or furniture: stays background
        lowest = float(np.percentile(heights, 2))
        if lowest <= config.support_m + float(np.median(normal_band[mask])):
            kind = "object"
            colour = color_rgb[mask] if color_rgb is not None else np.zeros((0, 3), np.uint8)
            label = "target_object" if _hue_matches(colour, config) else config.object_label
        else:
            kind = "robot"
            from_above = bool(mask[0].any())  # enters the view through the image's top edge
            label = "robot_arm" if extent >= config.robot_arm_extent_m or from_above else "gripper"
        score = _mask_score(mask, z, table, valid, claimed, config)
        instance = int(instances.max()) + 1
        labels[mask] = ids[label]
        instances[mask] = instance
        regions.append(
            Region(
                instance,
                label,
                ids[label],
                kind,
                score,
                int(np.count_nonzero(mask)),
                tuple(float(v) for v in pts.mean(axis=0)),  # type: ignore[arg-type]
                extent,
                float(np.percentile(heights, 98)),
            )
        )
    return regions
