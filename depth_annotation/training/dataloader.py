"""A PyTorch `Dataset` over an exported dataset: depth in metres, RGB, segmentation, keypoints, point clouds.

Frames come from `export/dataset.h5` (+ `export/training.h5` for point clouds),
the split from `dataset_info.json` (scene-level). With segmentation, keypoints
or point clouds asked for, only annotated frames are samples.

A sample is a dict of tensors, the same keys and shapes for every sample:

| key | dtype, shape | what |
|---|---|---|
| depth | float32 (1, H, W) | metres: raw * depth_scale (float32), clipped to the working range; 0 = no depth |
| valid | bool (1, H, W) | depth present (after dropout) |
| rgb | uint8 (3, H, W) | as stored |
| segmentation | uint8 (H, W) | taxonomy ids, 0 void, 255 unlabelled |
| keypoints | float32 (K, 3) | camera frame, metres; NaN rows pad to K = max_keypoints (and keypoints without depth) |
| keypoint_ids | int64 (K,) | index into the taxonomy's keypoint names (categories in order); -1 pads |
| keypoints_base | float32 (K, 3) | the keypoints in the robot base frame (NaN when camera_to_base is unknown) |
| points, points_base | float32 (N, 3) | the frame's farthest-point sample, camera / base frame (base: NaN if unknown) |
| point_labels | uint8 (N,) | label of each point's source pixel |
| intrinsics | float32 (4,) | fx, fy, cx, cy |
| camera_to_base | float32 (4, 4) | camera optical frame -> robot base; NaN when unknown |
| dropout | bool (1, H, W) | the dropout patches (only with augmentation) |
| episode, frame | int64 () | where the sample comes from |

Augmentation (`AugmentConfig`, the guide's): scale jitter (depth and points),
Gaussian noise sigma = 2 mm (valid depth and points), then clipping to the
working range, then dropout patches (depth 0). Seeded per (seed, epoch, index).

Workers: each process opens its own HDF5 handles on first use (h5py handles do
not survive a fork); `set_epoch` changes the augmentation draw per epoch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from depth_annotation.common import Extrinsics

from . import layout
from .augment import AugmentConfig, dropout_mask, sample_rng
from .dataset_reader import (
    DatasetPaths,
    annotated_frames,
    camera_to_base,
    dataset_paths,
    episode_intrinsics,
    episode_names,
    keypoints_by_frame,
    open_dataset,
)
from .errors import StaleTrainingFileError, TrainingDataError
from .pointcloud import transform_points

FIELDS = ("depth", "rgb", "segmentation", "keypoints", "pointcloud")
ANNOTATED_FIELDS = ("segmentation", "keypoints", "pointcloud")


@dataclass(frozen=True)
class _Episode:
    name: str
    index: int
    intrinsics: np.ndarray  # float32 (4,)
    depth_scale: float
    frames: np.ndarray  # frames that are samples
    seg_rows: np.ndarray  # segmentation row of each sample frame (-1: none)
    transforms: np.ndarray | None  # (len(frames), 4, 4)
    keypoints: dict[int, tuple[np.ndarray, np.ndarray]]


class DepthFrameDataset(Dataset[dict[str, torch.Tensor]]):
    """Samples of one split of an exported dataset (see the module docstring)."""

    def __init__(
        self,
        dataset_dir: str | Path,
        split: str | None = "train",
        *,
        fields: tuple[str, ...] | None = None,
        num_points: int | None = None,
        depth_range_m: tuple[float, float] = (0.3, 2.0),
        augment: AugmentConfig | None = None,
        seed: int = 0,
        max_keypoints: int = 16,
        camera_to_base: Extrinsics | None = None,
    ) -> None:
        self.paths: DatasetPaths = dataset_paths(dataset_dir)
        lo, hi = depth_range_m
        if not 0 <= lo < hi:
            raise TrainingDataError(f"depth range {depth_range_m} is empty")
        if augment is not None:
            augment.validate()
        self.depth_range_m = (float(lo), float(hi))
        self.augment, self.seed, self.epoch = augment, int(seed), 0
        self.max_keypoints = int(max_keypoints)
        self.keypoint_names = self.paths.keypoint_names
        self._h5: Any = None
        self._training: Any = None
        self._pid: int | None = None
        with open_dataset(self.paths) as h5:
            names = episode_names(h5)
            have_seg = any(layout.SEGMENTATION in h5[n] for n in names)
            if fields is None:
                fields = ("depth", "rgb") + (("segmentation", "keypoints") if have_seg else ())
                if have_seg and self.paths.training.exists():
                    fields += ("pointcloud",)
            unknown = sorted(set(fields) - set(FIELDS))
            if unknown:
                raise TrainingDataError(f"unknown field(s) {unknown}; known: {list(FIELDS)}")
            self.fields = tuple(fields)
            self.annotated_only = any(f in ANNOTATED_FIELDS for f in self.fields)
            if self.annotated_only and not have_seg:
                raise TrainingDataError(
                    f"{self.paths.h5}: no annotated frames for {sorted(set(self.fields) & set(ANNOTATED_FIELDS))}; "
                    "import annotations first (depth-annotation annotations import)"
                )
            self.num_points = self._point_group(num_points) if "pointcloud" in self.fields else None
            self.episodes = [
                ep
                for i, name in enumerate(names)
                if split is None or self.paths.split_of(name) == split
                for ep in [self._episode(h5, name, i, camera_to_base)]
                if len(ep.frames)
            ]
        self.items = [(e, k) for e, ep in enumerate(self.episodes) for k in range(len(ep.frames))]
        if not self.items:
            raise TrainingDataError(
                f"{self.paths.root}: no {'annotated ' if self.annotated_only else ''}frames in split {split!r}"
            )

    # --- set-up ----------------------------------------------------------------------------
    def _point_group(self, num_points: int | None) -> int:
        if not self.paths.training.exists():
            raise TrainingDataError(f"{self.paths.training} not found: run depth-annotation pointclouds first")
        with h5py.File(self.paths.training, "r") as f:
            sizes = sorted({int(k.split("_")[1]) for n in f for k in f[n] if k.startswith("pointcloud_")})
        if not sizes:
            raise TrainingDataError(f"{self.paths.training} has no point clouds: rerun depth-annotation pointclouds")
        if num_points is None:
            return sizes[-1]  # the largest
        if num_points not in sizes:
            raise TrainingDataError(f"{self.paths.training} has no {num_points}-point clouds (it has {sizes})")
        return num_points

    def _episode(self, h5: Any, name: str, index: int, override: Extrinsics | None) -> _Episode:
        g = h5[name]
        if self.annotated_only:
            frames = annotated_frames(g)
            rows = np.arange(len(frames))
        else:
            frames = np.arange(g[layout.DEPTH].shape[0])
            annotated = {int(f): r for r, f in enumerate(annotated_frames(g))}
            rows = np.array([annotated.get(int(f), -1) for f in frames], np.int64)
        transforms = camera_to_base(g, frames, override)
        if self.num_points is not None and len(frames):
            with h5py.File(self.paths.training, "r") as f:
                written = np.asarray(f[name][layout.FRAME_INDEX]) if name in f else np.zeros(0, np.int64)
                if not np.array_equal(written, frames):
                    raise StaleTrainingFileError(
                        f"{self.paths.training}: {name} has point clouds of frames {written.tolist()[:8]}..., the "
                        f"dataset's annotated frames are {frames.tolist()[:8]}...: rerun depth-annotation pointclouds"
                    )
                if override is None and layout.CAMERA_TO_BASE in f[name]:
                    transforms = np.asarray(f[name][layout.CAMERA_TO_BASE], np.float64)
        keypoints = keypoints_by_frame(g, self.keypoint_names) if "keypoints" in self.fields else {}
        return _Episode(
            name,
            int(name.split("_")[1]),
            episode_intrinsics(g).as_vector(),
            float(g.attrs.get("depth_scale", 0.001)),
            frames,
            rows,
            transforms,
            keypoints,
        )

    # --- per process -------------------------------------------------------------------------
    def _files(self) -> tuple[Any, Any]:
        if self._pid != os.getpid():  # a new worker: never reuse a handle opened before the fork
            self._h5 = open_dataset(self.paths)
            self._training = h5py.File(self.paths.training, "r") if self.num_points is not None else None
            self._pid = os.getpid()
        return self._h5, self._training

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_h5=None, _training=None, _pid=None)
        return state

    def set_epoch(self, epoch: int) -> None:
        """Augmentation draws depend on the epoch (call before iterating each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    # --- samples -------------------------------------------------------------------------------
    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        e, k = self.items[index]
        ep = self.episodes[e]
        frame = int(ep.frames[k])
        h5, training = self._files()
        g = h5[ep.name]
        lo, hi = self.depth_range_m
        raw = np.asarray(g[layout.DEPTH][frame])
        valid = raw > 0
        depth = np.where(valid, np.clip(raw.astype(np.float32) * np.float32(ep.depth_scale), lo, hi), np.float32(0))
        transform = ep.transforms[k] if ep.transforms is not None else None
        rng = sample_rng(self.seed, self.epoch, index) if self.augment is not None else None
        points = labels = None
        if self.num_points is not None:
            c = training[ep.name][layout.pointcloud_group(self.num_points)]
            points = np.asarray(c["points_camera"][k], np.float32)
            labels = np.asarray(c["labels"][k])
        out: dict[str, torch.Tensor] = {}
        if self.augment is not None and rng is not None:
            a = self.augment
            scale = np.float32(rng.uniform(1 - a.scale_jitter, 1 + a.scale_jitter)) if a.scale_jitter else np.float32(1)
            noise = rng.standard_normal(depth.shape, dtype=np.float32) * np.float32(a.noise_sigma_m)
            depth = np.where(valid, np.clip(depth * scale + noise, lo, hi), np.float32(0)).astype(np.float32)
            if points is not None:
                points = points * scale + rng.standard_normal(points.shape, dtype=np.float32) * np.float32(
                    a.noise_sigma_m
                )
            drop = dropout_mask(depth.shape, a, rng) if a.dropout_fraction > 0 else np.zeros(depth.shape, bool)
            depth[drop] = 0
            valid = valid & ~drop
            out["dropout"] = torch.from_numpy(drop[None])
        if "depth" in self.fields:
            out["depth"] = torch.from_numpy(np.ascontiguousarray(depth[None]))
            out["valid"] = torch.from_numpy(valid[None])
        if "rgb" in self.fields:
            out["rgb"] = torch.from_numpy(np.ascontiguousarray(np.asarray(g[layout.COLOR][frame]).transpose(2, 0, 1)))
        if "segmentation" in self.fields:
            out["segmentation"] = torch.from_numpy(np.asarray(g[layout.SEGMENTATION][int(ep.seg_rows[k])]))
        if "keypoints" in self.fields:
            out.update(self._keypoints(ep, frame, transform))
        if points is not None and labels is not None:
            out["points"] = torch.from_numpy(points)
            out["point_labels"] = torch.from_numpy(labels)
            base = (
                transform_points(points, transform)
                if transform is not None
                else np.full(points.shape, np.nan, np.float32)
            )
            out["points_base"] = torch.from_numpy(base)
        out["intrinsics"] = torch.from_numpy(ep.intrinsics.copy())
        t = transform if transform is not None else np.full((4, 4), np.nan)
        out["camera_to_base"] = torch.from_numpy(np.asarray(t, np.float32))
        out["episode"] = torch.tensor(ep.index, dtype=torch.int64)
        out["frame"] = torch.tensor(frame, dtype=torch.int64)
        return out

    def _keypoints(self, ep: _Episode, frame: int, transform: np.ndarray | None) -> dict[str, torch.Tensor]:
        kmax = self.max_keypoints
        xyz = np.full((kmax, 3), np.nan, np.float32)
        ids = np.full(kmax, -1, np.int64)
        if frame in ep.keypoints:
            i, p = ep.keypoints[frame]
            n = min(kmax, len(i))
            ids[:n], xyz[:n] = i[:n], p[:n]
        base = transform_points(xyz, transform) if transform is not None else np.full_like(xyz, np.nan)
        return {
            "keypoints": torch.from_numpy(xyz),
            "keypoint_ids": torch.from_numpy(ids),
            "keypoints_base": torch.from_numpy(base),
        }


def training_loader(
    dataset: DepthFrameDataset,
    *,
    batch_size: int = 8,
    num_workers: int = 0,
    shuffle: bool = False,
    seed: int = 0,
    multiprocessing_context: str | None = None,
) -> DataLoader[dict[str, torch.Tensor]]:
    """A DataLoader whose shuffling is seeded too (sample order and augmentation are reproducible).

    `multiprocessing_context="spawn"` starts the workers fresh instead of forking: use it in a process
    that has already run the OpenVINO or ONNX Runtime mono backend, whose native thread pools do not
    survive a fork (the forked workers crash). The dataset pickles without its open files, so every
    start method gives the same samples.
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        shuffle=shuffle,
        generator=generator,
        persistent_workers=False,
        multiprocessing_context=multiprocessing_context if num_workers > 0 else None,
    )
