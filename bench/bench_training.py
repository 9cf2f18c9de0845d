"""Pre-annotation and training outputs at 640x480: pre-annotation, point cloud + FPS, dataloader vs naive loader.

Geometric pre-annotation and Label Studio RLE ms/frame, point cloud + FPS(4096/8192)
ms/frame, voxels, and dataloader samples/s with 0 and 2 workers against a naive
loader that opens the HDF5 files for every item. Wall times are medians (stages)
or the best of 3 epochs (loaders), CPU times are this process's: on a shared
machine the wall clock also counts other work.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from depth_annotation.common import SyntheticScene, default_intrinsics, orbit_pose
from depth_annotation.dataset import ExportOptions, export_bags, write_synthetic_bag
from depth_annotation.preannotation import BrushRleEncoder, GeometricConfig, preannotate_frame
from depth_annotation.training import (
    AugmentConfig,
    DepthFrameDataset,
    PointCloudConfig,
    VoxelSpec,
    annotate_with_ground_truth,
    backproject,
    sample_cloud,
    training_loader,
    voxelize,
    write_pointclouds,
)

FRAMES = int(os.environ.get("BENCH_TRAINING_FRAMES", "32"))
W, H = 640, 480


def _ms(times: list[float], cpu: list[float]) -> str:
    return f"{1000 * np.median(times):.0f} (CPU {1000 * np.median(cpu):.0f})"


def _frames(n: int) -> list:
    scene = SyntheticScene(0)
    intr = default_intrinsics(W, H)
    return [scene.render(intr, orbit_pose(i / 3.0), frame_seed=i) for i in range(n)]


def _preannotation(frames: list) -> list[dict]:
    config = GeometricConfig(target_hue_deg=5.0)
    times, cpu, results = [], [], []
    for f in frames:
        t0, c0 = time.perf_counter(), time.process_time()
        results.append(preannotate_frame(f.depth_mm, f.intrinsics, f.color, config=config))
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    masks = [r.mask(region) for r in results for region in r.regions]
    encoder = BrushRleEncoder()
    t0 = time.perf_counter()
    encoder.encode(masks[: len(masks) // len(results)])  # one frame: mostly the interpreter's start-up
    one = time.perf_counter() - t0
    t0 = time.perf_counter()
    encoder.encode(masks)
    batch = time.perf_counter() - t0
    return [
        {
            "stage": "geometric pre-annotation (RANSAC + DBSCAN + heuristics)",
            "ms/frame": _ms(times, cpu),
            "frames": len(frames),
        },
        {
            "stage": "Label Studio brush RLE (SDK mask2rle, own interpreter), one frame per call",
            "ms/frame": f"{1000 * one:.0f}",
            "frames": 1,
        },
        {
            "stage": f"Label Studio brush RLE, {len(frames)} frames per call",
            "ms/frame": f"{1000 * batch / len(frames):.0f}",
            "frames": len(frames),
        },
    ]


def _pointclouds(frames: list) -> list[dict]:
    rows = []
    spec = VoxelSpec.from_box((-0.6, -0.4, -0.05), (0.6, 0.4, 0.45), 0.005)
    back, vox = ([], []), ([], [])
    fps: dict[int, tuple[list[float], list[float]]] = {4096: ([], []), 8192: ([], [])}
    for f in frames:
        t0, c0 = time.perf_counter(), time.process_time()
        cloud = backproject(f.depth_mm, f.intrinsics, labels=f.annotation_labels(), color=f.color)
        back[0].append(time.perf_counter() - t0)
        back[1].append(time.process_time() - c0)
        for n, (wall, cpu) in fps.items():
            t0, c0 = time.perf_counter(), time.process_time()
            sample_cloud(cloud, n, f.intrinsics)
            wall.append(time.perf_counter() - t0 + back[0][-1])
            cpu.append(time.process_time() - c0 + back[1][-1])
        base = f.world_to_camera.inverse().apply(cloud.points)
        t0, c0 = time.perf_counter(), time.process_time()
        voxelize(base, cloud.labels, spec)
        vox[0].append(time.perf_counter() - t0)
        vox[1].append(time.process_time() - c0)
    rows.append(
        {"stage": "back-projection, labels and colours (all pixels)", "ms/frame": _ms(*back), "frames": len(frames)}
    )
    for n, t in fps.items():
        rows.append(
            {
                "stage": f"point cloud + FPS({n}) (voxel pre-sample to ~3N, Open3D FPS)",
                "ms/frame": _ms(*t),
                "frames": len(frames),
            }
        )
    rows.append(
        {
            "stage": "5 mm label voxels, 1.2 x 0.8 x 0.5 m box (sparse vote)",
            "ms/frame": _ms(*vox),
            "frames": len(frames),
        }
    )
    return rows


class NaiveDataset(Dataset):
    """What one writes first: open the files for every item, read, convert."""

    def __init__(self, ds: Path, items: list[tuple[str, int, int]]) -> None:
        self.ds, self.items = ds, items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ep, frame, row = self.items[i]
        with h5py.File(self.ds / "export" / "dataset.h5", "r") as f:
            depth = f[ep]["depth"][frame].astype(np.float32) * 0.001
            color = f[ep]["color"][frame]
            seg = f[ep]["segmentation"][row]
        with h5py.File(self.ds / "export" / "training.h5", "r") as f:
            points = f[ep]["pointcloud_8192"]["points_camera"][row]
            labels = f[ep]["pointcloud_8192"]["labels"][row]
        return {
            "depth": torch.from_numpy(np.clip(depth, 0.0, 2.0)[None]),
            "rgb": torch.from_numpy(color.transpose(2, 0, 1).copy()),
            "segmentation": torch.from_numpy(seg),
            "points": torch.from_numpy(points),
            "point_labels": torch.from_numpy(labels),
        }


def _throughput(loader: DataLoader, epochs: int = 3) -> float:
    """Samples/s of the best epoch (worker start-up included in each: persistent_workers is off)."""
    best = 0.0
    for _ in range(epochs):
        n, t0 = 0, time.perf_counter()
        for batch in loader:
            n += int(batch["depth"].shape[0])
        best = max(best, n / (time.perf_counter() - t0))
    return best


def _cpu_ms(dataset: Dataset) -> float:
    """CPU ms per sample in this process (no workers): the loader's own cost, whatever else runs."""
    c0 = time.process_time()
    for i in range(len(dataset)):
        dataset[i]
    return 1000 * (time.process_time() - c0) / len(dataset)


def _loaders(tmp: Path) -> list[dict]:
    truth = write_synthetic_bag(tmp / "bag", frames=FRAMES, width=W, height=H)
    export_bags([(tmp / "bag", "s")], ExportOptions(out_dir=tmp / "ds", every_k=1), progress=False)
    annotate_with_ground_truth(tmp / "ds", [truth])
    t0 = time.perf_counter()
    write_pointclouds(tmp / "ds", PointCloudConfig(num_points=(8192,)))
    write_ms = 1000 * (time.perf_counter() - t0) / FRAMES
    rows = [
        {
            "loader": "pointclouds command (FPS 8192 + dense and sparse voxels, gzip)",
            "samples/s": f"{1000 / write_ms:.2f}",
            "note": f"{write_ms:.0f} ms/frame",
        }
    ]
    ours = DepthFrameDataset(tmp / "ds", split=None)
    items = [(ep.name, int(f), int(r)) for ep in ours.episodes for f, r in zip(ep.frames, ep.seg_rows, strict=True)]
    naive = NaiveDataset(tmp / "ds", items)
    for label, data in (("naive", naive), ("DepthFrameDataset", ours)):
        ms = _cpu_ms(data)
        rows.append(
            {"loader": f"{label}, CPU per sample, 0 workers", "samples/s": f"{1000 / ms:.1f}", "note": f"{ms:.1f} ms"}
        )
    for workers in (0, 2):
        rows.append(
            {
                "loader": f"naive (h5py files opened per item), {workers} workers",
                "samples/s": f"{_throughput(DataLoader(naive, batch_size=8, num_workers=workers)):.1f}",
                "note": "depth, rgb, segmentation, points",
            }
        )
        rows.append(
            {
                "loader": f"DepthFrameDataset, {workers} workers",
                "samples/s": f"{_throughput(training_loader(ours, batch_size=8, num_workers=workers)):.1f}",
                "note": "+ keypoints, base-frame points, transforms",
            }
        )
    augmented = DepthFrameDataset(tmp / "ds", split=None, augment=AugmentConfig(scale_jitter=0.02))
    for workers in (0, 2):
        rows.append(
            {
                "loader": f"DepthFrameDataset + augmentation, {workers} workers",
                "samples/s": f"{_throughput(training_loader(augmented, batch_size=8, num_workers=workers)):.1f}",
                "note": "noise 2 mm, 5 % dropout patches, scale jitter",
            }
        )
    return rows


def run() -> list[dict]:
    frames = _frames(min(FRAMES, 16))
    rows = [
        {"what": r["stage"], "result": f"{r['ms/frame']} ms/frame", "frames": r["frames"]}
        for r in _preannotation(frames)
    ]
    rows += [
        {"what": r["stage"], "result": f"{r['ms/frame']} ms/frame", "frames": r["frames"]} for r in _pointclouds(frames)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for r in _loaders(Path(tmp)):
            rows.append(
                {"what": f"{r['loader']} ({r['note']})", "result": f"{r['samples/s']} samples/s", "frames": FRAMES}
            )
    return rows
