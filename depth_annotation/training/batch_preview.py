"""`depth-annotation smoke`: load one batch, print its tensors, draw it (the guide's smoke test).

One row per sample: RGB, depth (TURBO over the working range, black = none, the
dropout patches too when augmenting), segmentation in the taxonomy's colours,
and the point cloud seen from above (base frame when known, else camera x/z),
coloured by label.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from depth_annotation.common import atomic_io, colorize_depth

from .augment import AugmentConfig
from .dataloader import DepthFrameDataset, training_loader

TILE_W = 320


@dataclass(frozen=True)
class SmokeResult:
    shapes: dict[str, tuple[str, tuple[int, ...]]]  # key -> (dtype, shape)
    png: Path
    samples: int


def _tile(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.resize(image, (TILE_W, max(1, round(h * TILE_W / w))), interpolation=cv2.INTER_NEAREST)


def _label_image(labels: np.ndarray, colors: dict[int, tuple[int, int, int]]) -> np.ndarray:
    lut = np.full((256, 3), 255, np.uint8)  # unknown ids (255 unlabelled): white
    for i, c in colors.items():
        lut[i] = c
    out: np.ndarray = lut[labels]
    return out


def _cloud_view(
    points: np.ndarray, labels: np.ndarray, colors: dict[int, tuple[int, int, int]], size: tuple[int, int], base: bool
) -> np.ndarray:
    h, w = size
    img = np.full((h, w, 3), 255, np.uint8)
    ok = np.all(np.isfinite(points), axis=1)
    if not ok.any():
        return img
    xy = points[ok][:, [0, 1]] if base else points[ok][:, [0, 2]]  # base: top view; camera: x right, z forward
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    scale = (min(w, h) - 10) / max(float(np.max(hi - lo)), 1e-6)
    px = ((xy - lo) * scale + 5).astype(int)
    col = _label_image(labels[ok], colors)
    img[np.clip(h - 1 - px[:, 1], 0, h - 1), np.clip(px[:, 0], 0, w - 1)] = col
    return img


def smoke(
    dataset_dir: str | Path,
    out_png: str | Path,
    *,
    split: str | None = None,
    batch_size: int = 4,
    num_workers: int = 0,
    augment: bool = False,
    seed: int = 0,
) -> SmokeResult:
    """Load one batch through `DepthFrameDataset` and a DataLoader; write its picture to `out_png`."""
    dataset = DepthFrameDataset(dataset_dir, split, augment=AugmentConfig() if augment else None, seed=seed)
    batch: dict[str, torch.Tensor] = next(
        iter(training_loader(dataset, batch_size=batch_size, num_workers=num_workers))
    )
    shapes = {k: (str(v.dtype).replace("torch.", ""), tuple(v.shape)) for k, v in batch.items()}
    colors = dataset.paths.label_colors
    lo, hi = dataset.depth_range_m
    rows = []
    for i in range(int(batch["episode"].shape[0])):
        tiles = []
        if "rgb" in batch:
            tiles.append(_tile(batch["rgb"][i].numpy().transpose(1, 2, 0)))
        if "depth" in batch:
            mm = (batch["depth"][i, 0].numpy() * 1000.0).astype(np.uint16)
            tiles.append(_tile(colorize_depth(mm, min_mm=lo * 1000, max_mm=hi * 1000)))
        if "segmentation" in batch:
            tiles.append(_tile(_label_image(batch["segmentation"][i].numpy(), colors)))
        if "points" in batch:
            h = tiles[0].shape[0] if tiles else TILE_W
            base = bool(torch.isfinite(batch["points_base"][i]).all())
            pts = batch["points_base" if base else "points"][i].numpy()
            tiles.append(_cloud_view(pts, batch["point_labels"][i].numpy(), colors, (h, TILE_W), base))
        rows.append(np.concatenate(tiles, axis=1))
    picture = np.concatenate(rows, axis=0)
    ok, png = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"PNG encoding failed for {out_png}")
    path = atomic_io.write_bytes(out_png, png.tobytes())
    return SmokeResult(shapes, path, int(batch["episode"].shape[0]))
