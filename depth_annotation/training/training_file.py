"""`depth-annotation pointclouds`: labelled point clouds and voxel grids of every annotated frame.

Writes `export/training.h5` beside the dataset (layout in `layout.py`): a file of
its own, so the exported dataset is never rewritten for derived data, written as
`.partial`, fsynced and renamed (a crash leaves the old file or none). Rerun it
after every annotation import: the dataloader refuses a training file whose
frames are not the annotated frames of the dataset.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from depth_annotation.common import Extrinsics

from . import layout
from .dataset_reader import (
    annotated_frames,
    camera_to_base,
    dataset_paths,
    episode_intrinsics,
    episode_names,
    open_dataset,
)
from .errors import TrainingDataError
from .pointcloud import backproject, sample_cloud, transform_points
from .voxels import VoxelSpec, dense_grid, voxelize


@dataclass(frozen=True)
class PointCloudConfig:
    """What `pointclouds` writes."""

    num_points: tuple[int, ...] = (8192,)  # one group per size (4096 and 8192 are the usual ones)
    depth_range_m: tuple[float, float] = (0.3, 2.0)  # points outside are dropped
    presample_factor: float = 3.0  # voxel pre-sample leaves about this x N points for FPS
    voxel_size_m: float = 0.005
    # Workspace box of the voxel grid: in the robot base frame when camera_to_base is known ...
    base_box: tuple[tuple[float, float, float], tuple[float, float, float]] = ((-0.6, -0.4, -0.05), (0.6, 0.4, 0.45))
    # ... else in the camera optical frame (x right, y down, z forward).
    camera_box: tuple[tuple[float, float, float], tuple[float, float, float]] = ((-0.5, -0.4, 0.3), (0.5, 0.4, 1.3))
    dense_voxels: bool = True
    camera_to_base: Extrinsics | None = None  # overrides the dataset's /episode_N/camera_to_base

    def validate(self) -> None:
        if not self.num_points or any(int(n) < 1 for n in self.num_points):
            raise TrainingDataError(f"point counts must be at least 1, got {self.num_points}")
        lo, hi = self.depth_range_m
        if not 0 <= lo < hi:
            raise TrainingDataError(f"depth range {self.depth_range_m} is empty")
        VoxelSpec.from_box(*self.base_box, self.voxel_size_m)
        VoxelSpec.from_box(*self.camera_box, self.voxel_size_m)


@dataclass
class PointCloudReport:
    path: Path
    episodes: int
    frames: int
    frame_of_voxels: str
    ms_per_frame: float
    skipped_episodes: list[str] = field(default_factory=list)


class _EpisodeOut:
    """Datasets of one episode in the training file, filled row by row."""

    def __init__(self, f: h5py.File, name: str, frames: np.ndarray, config: PointCloudConfig, spec: VoxelSpec) -> None:
        a = len(frames)
        self.g = f.create_group(name)
        self.g.create_dataset(layout.FRAME_INDEX, data=frames)
        self.clouds: dict[int, h5py.Group] = {}
        for n in config.num_points:
            c = self.g.create_group(layout.pointcloud_group(n))
            c.attrs.update(
                num_points=n,
                sampling="farthest point (Open3D) on a voxel pre-sample",
                presample_factor=config.presample_factor,
                depth_range_m=config.depth_range_m,
                frame="camera optical frame (x right, y down, z forward), metres",
            )
            c.create_dataset("points_camera", (a, n, 3), np.float32)
            c.create_dataset("labels", (a, n), np.uint8)
            c.create_dataset("colors", (a, n, 3), np.uint8)
            c.create_dataset("pixels", (a, n, 2), np.int32)
            c.create_dataset("num_valid", (a,), np.int32)
            c.create_dataset("presample_voxel_m", (a,), np.float32)
            self.clouds[n] = c
        v = self.g.create_group(layout.VOXELS)
        v.attrs.update(voxel_size_m=spec.size_m, origin_m=spec.origin_m, shape=spec.shape)
        if config.dense_voxels:
            v.create_dataset(
                "dense", (a, *spec.shape), np.uint8, chunks=(1, *spec.shape), compression="gzip", compression_opts=1
            )
        self.coords: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []

    def finish(self) -> None:
        v = self.g[layout.VOXELS]
        counts = [len(c) for c in self.coords]
        v.create_dataset("offsets", data=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
        v.create_dataset("coords", data=np.concatenate(self.coords) if self.coords else np.zeros((0, 3), np.int16))
        v.create_dataset("labels", data=np.concatenate(self.labels) if self.labels else np.zeros(0, np.uint8))


def write_pointclouds(
    dataset_dir: str | Path,
    config: PointCloudConfig | None = None,
    *,
    on_frame: Callable[[int], None] | None = None,
) -> PointCloudReport:
    """Write `export/training.h5` for every annotated frame of the dataset (see the module docstring)."""
    config = config or PointCloudConfig()
    config.validate()
    paths = dataset_paths(dataset_dir)
    out = paths.training
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    t0 = time.perf_counter()
    frames_done = 0
    skipped: list[str] = []
    voxel_frames: set[str] = set()
    try:
        with open_dataset(paths) as src, h5py.File(partial, "w") as dst:
            dst.attrs.update(schema_version=layout.SCHEMA_VERSION, source=str(paths.h5.relative_to(paths.root)))
            names = episode_names(src)
            for name in names:
                g = src[name]
                frames = annotated_frames(g)
                if len(frames) == 0:
                    skipped.append(name)
                    continue
                done = _write_episode(g, dst, name, frames, config, on_frame, frames_done)
                frames_done += done[0]
                voxel_frames.add(done[1])
            if frames_done == 0:
                raise TrainingDataError(
                    f"{paths.h5}: no annotated frames (no {layout.SEGMENTATION}); "
                    "import annotations first (depth-annotation annotations import)"
                )
        with open(partial, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return PointCloudReport(
        out,
        len(names) - len(skipped),
        frames_done,
        "/".join(sorted(voxel_frames)),
        1000.0 * (time.perf_counter() - t0) / max(1, frames_done),
        skipped,
    )


def _write_episode(
    g: Any,
    dst: h5py.File,
    name: str,
    frames: np.ndarray,
    config: PointCloudConfig,
    on_frame: Callable[[int], None] | None,
    done_before: int,
) -> tuple[int, str]:
    intr = episode_intrinsics(g)
    scale = float(g.attrs.get("depth_scale", 0.001))
    transforms = camera_to_base(g, frames, config.camera_to_base)
    box = config.base_box if transforms is not None else config.camera_box
    spec = VoxelSpec.from_box(*box, config.voxel_size_m)
    ep = _EpisodeOut(dst, name, frames, config, spec)
    frame_of_voxels = "base" if transforms is not None else "camera"
    ep.g[layout.VOXELS].attrs["frame"] = frame_of_voxels
    if transforms is not None:
        ep.g.create_dataset(layout.CAMERA_TO_BASE, data=transforms)
        for c in ep.clouds.values():
            c.create_dataset("points_base", (len(frames), c.attrs["num_points"], 3), np.float32)
    seg = g[layout.SEGMENTATION]
    digest = hashlib.sha1(np.asarray(frames).tobytes())
    for row, frame in enumerate(frames):
        labels = np.asarray(seg[row])
        digest.update(labels.tobytes())
        cloud = backproject(
            np.asarray(g[layout.DEPTH][frame]),
            intr,
            labels=labels,
            color=np.asarray(g[layout.COLOR][frame]),
            depth_scale=scale,
            depth_range_m=config.depth_range_m,
        )
        if len(cloud.points) == 0:
            raise TrainingDataError(f"{name} frame {frame}: no depth inside {config.depth_range_m} m")
        for n, c in ep.clouds.items():
            sample = sample_cloud(cloud, n, intr, presample_factor=config.presample_factor)
            c["points_camera"][row] = sample.points
            c["labels"][row] = sample.labels
            c["colors"][row] = sample.colors
            c["pixels"][row] = sample.pixels
            c["num_valid"][row] = sample.num_valid
            c["presample_voxel_m"][row] = sample.presample_voxel_m
            if transforms is not None:
                c["points_base"][row] = transform_points(sample.points, transforms[row])
        pts = transform_points(cloud.points, transforms[row]) if transforms is not None else cloud.points
        coords, vlabels = voxelize(pts, cloud.labels, spec)
        ep.coords.append(coords)
        ep.labels.append(vlabels)
        if config.dense_voxels:
            ep.g[layout.VOXELS]["dense"][row] = dense_grid(coords, vlabels, spec)
        if on_frame is not None:
            on_frame(done_before + row + 1)
    ep.finish()
    ep.g.attrs["segmentation_sha1"] = digest.hexdigest()
    return len(frames), frame_of_voxels
