"""`dataset_info.json`: schema, sensor, taxonomy, scene-level splits and per-split statistics.

Splits are assigned per scene, never per frame: frames of one scene share the
background and objects, so splitting a scene leaks it into the test set.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SCHEMA_VERSION = 1
SPLITS = ("train", "val", "test")


def assign_splits(
    scene_ids: list[str], ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, str]:
    """Scene -> split, deterministic for a seed and the set of scenes (not their order)."""
    if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise ValueError(f"split ratios must be three non-negative numbers, got {ratios}")
    scenes = sorted(set(scene_ids))
    order = [scenes[i] for i in np.random.default_rng(seed).permutation(len(scenes))]
    total = sum(ratios)
    n = len(order)
    n_val = int(round(ratios[1] / total * n))
    n_test = int(round(ratios[2] / total * n))
    if n_val + n_test >= n:  # always keep at least one training scene
        n_val, n_test = min(n_val, max(n - 1, 0)), max(min(n_test, n - 1 - n_val), 0)
    out = {}
    for i, scene in enumerate(order):
        out[scene] = "val" if i < n_val else ("test" if i < n_val + n_test else "train")
    return out


def split_statistics(episodes: list[dict[str, Any]], splits: dict[str, str]) -> dict[str, Any]:
    stats = {}
    for split in SPLITS:
        eps = [e for e in episodes if splits.get(e["scene_id"]) == split]
        frames = sum(e["frames"] for e in eps)
        mins = [e["depth_min_mm"] for e in eps if e["depth_min_mm"] is not None]
        maxs = [e["depth_max_mm"] for e in eps if e["depth_max_mm"] is not None]
        cov = [(e["mean_valid_fraction"], e["frames"]) for e in eps if e["mean_valid_fraction"] is not None]
        stats[split] = {
            "scenes": sorted({e["scene_id"] for e in eps}),
            "episodes": [e["episode"] for e in eps],
            "frames": frames,
            "depth_range_mm": [min(mins), max(maxs)] if mins else None,
            "mean_valid_coverage": (sum(c * n for c, n in cov) / sum(n for _, n in cov))
            if cov and sum(n for _, n in cov)
            else None,
            "qc_flagged_frames": sum(e.get("qc_flagged", 0) for e in eps),
        }
    return stats


def build_dataset_info(
    *,
    episodes: list[dict[str, Any]],
    splits: dict[str, str],
    sensor: dict[str, Any],
    taxonomy: dict[str, Any],
    seed: int,
    ratios: tuple[float, float, float],
    files: dict[str, Any],
    sync: dict[str, Any],
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "depth": {"dtype": "uint16", "unit": "mm", "depth_scale": 0.001, "invalid": 0},
        "sensor": sensor,
        "taxonomy": taxonomy,
        "splits": {
            "level": "scene",
            "seed": seed,
            "ratios": dict(zip(SPLITS, ratios, strict=True)),
            "assignment": splits,
        },
        "statistics": split_statistics(episodes, splits),
        "episodes": episodes,
        "files": files,
        "sync": sync,
    }
