"""The exporter's own checks of a dataset directory: what a loader will rely on, verified."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .chunk_codecs import open_h5


def check_dataset(out_dir: str | Path) -> list[str]:
    """Problems found (empty list: the dataset is consistent)."""
    out = Path(out_dir)
    problems: list[str] = []
    h5_path = out / "export" / "dataset.h5"
    for p in (h5_path, out / "dataset_info.json", out / "taxonomy.json"):
        if not p.exists():
            problems.append(f"missing {p}")
    if problems:
        return problems
    if list(out.glob("export/*.partial")):
        problems.append("a .partial file is left in export/")
    info = json.loads((out / "dataset_info.json").read_text())
    with open_h5(h5_path) as f:
        episodes = sorted(k for k in f if k.startswith("episode_"))
        if [e["episode"] for e in info["episodes"]] != episodes:
            problems.append(f"dataset_info lists {[e['episode'] for e in info['episodes']]}, the file has {episodes}")
        for name in episodes:
            g = f[name]
            t = g["timestamps_ns"].shape[0]
            for key, dtype, ndim in (("depth", np.uint16, 3), ("color", np.uint8, 4)):
                ds = g[key]
                if ds.dtype != dtype or ds.ndim != ndim or ds.shape[0] != t:
                    problems.append(f"{name}/{key}: {ds.dtype} {ds.shape}, expected {np.dtype(dtype)} with {t} frames")
                if ds.chunks is None or ds.chunks[0] != 1:
                    problems.append(f"{name}/{key}: not chunked one frame per chunk")
                try:  # decode the first and last frames: a missing filter or a damaged chunk shows here
                    for i in {0, ds.shape[0] - 1} if ds.shape[0] else ():
                        ds[i]
                except (OSError, ValueError) as exc:
                    readers = info.get("files", {}).get("readable_by", "")
                    problems.append(f"{name}/{key}: cannot decode frames ({exc}); the codec needs: {readers}")
            if g["depth"].shape[1:] != g["color"].shape[1:3]:
                problems.append(f"{name}: depth and colour sizes differ")
            stamps = g["timestamps_ns"][:]
            if t and not np.all(np.diff(stamps) > 0):
                problems.append(f"{name}: timestamps do not increase")
            k = g["camera_intrinsics"][:]
            if k.shape != (4,) or not np.all(k[:2] > 0):
                problems.append(f"{name}: camera_intrinsics {k} is not fx, fy, cx, cy")
            if g.attrs.get("depth_scale") != 0.001:
                problems.append(f"{name}: depth_scale attribute is not 0.001")
            if "split" not in g.attrs or g.attrs["split"] != info["splits"]["assignment"].get(g.attrs["scene_id"]):
                problems.append(f"{name}: split attribute disagrees with dataset_info.json")
    tasks_path = out / "annotation" / "label_studio_tasks.json"
    if tasks_path.exists():
        for task in json.loads(tasks_path.read_text()):
            for key in ("image", "depth", "depth16"):
                rel = task["data"][key].split("?d=", 1)[-1]
                if not (out / rel).exists():
                    problems.append(f"task file missing: {rel}")
                    break
    return problems
