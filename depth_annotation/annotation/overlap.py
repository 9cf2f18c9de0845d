"""The guide's overlap: a fraction of the annotation frames goes to two independent annotators.

Label Studio's own setting (`maximum_annotations` with an overlap cohort) picks
tasks at random inside the server, neither reproducible nor per scene. Here the
exported tasks say it themselves: `data.overlap` is 2 for the chosen tasks and 1
for the rest (filter on it in the Data Manager, or import the two sets into
projects with 1 and 2 annotators per task). The choice is per scene — every
scene gets its share, at least one frame when the fraction is above zero — and
reproducible: a seed and the scene id fix it, whatever the order of the scenes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from depth_annotation.common import atomic_io
from depth_annotation.dataset import file_checksum

from .errors import AnnotationDatasetError

TASKS_FILE = Path("annotation") / "label_studio_tasks.json"


def choose_overlap(tasks: list[dict[str, Any]], fraction: float, seed: int) -> dict[str, list[int]]:
    """scene id -> indices (into `tasks`) of the tasks for two annotators."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"overlap must be a fraction between 0 and 1, got {fraction}")
    by_scene: dict[str, list[int]] = {}
    for i, t in enumerate(tasks):
        by_scene.setdefault(str(t["data"].get("scene_id", "")), []).append(i)
    chosen = {}
    for scene, idx in sorted(by_scene.items()):
        idx = sorted(idx, key=lambda i: (str(tasks[i]["data"].get("episode")), int(tasks[i]["data"]["stamp_ns"])))
        k = 0 if fraction == 0 else min(len(idx), max(1, int(round(fraction * len(idx)))))
        scene_key = int.from_bytes(hashlib.sha256(scene.encode("utf-8")).digest()[:8], "little")
        order = np.random.default_rng([seed, scene_key]).permutation(len(idx))
        chosen[scene] = sorted(idx[int(j)] for j in order[:k])
    return chosen


def mark_overlap(dataset_dir: str | Path, fraction: float, *, seed: int = 0) -> dict[str, Any]:
    """Mark `fraction` of each scene's annotation tasks for two annotators, in the tasks file and
    dataset_info.json (each written atomically; the tasks first, so dataset_info never claims a
    marking the tasks do not carry). Returns what dataset_info records."""
    root = Path(dataset_dir)
    tasks_path, info_path = root / TASKS_FILE, root / "dataset_info.json"
    try:
        tasks = json.loads(tasks_path.read_text())
        info = json.loads(info_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AnnotationDatasetError(f"{root}: cannot mark overlap: {exc}") from None
    chosen = choose_overlap(tasks, fraction, seed)
    two = {i for idx in chosen.values() for i in idx}
    for i, t in enumerate(tasks):
        t["data"]["overlap"] = 2 if i in two else 1
    per_scene = {
        scene: {"tasks": sum(1 for t in tasks if str(t["data"].get("scene_id", "")) == scene), "overlap": len(idx)}
        for scene, idx in chosen.items()
    }
    record = {
        "fraction": fraction,
        "seed": seed,
        "annotators_per_overlap_task": 2,
        "field": "data.overlap in annotation/label_studio_tasks.json (2: two annotators, 1: one)",
        "per_scene": per_scene,
        "tasks": [f"{tasks[i]['data']['episode']}@{tasks[i]['data']['stamp_ns']}" for i in sorted(two)],
    }
    atomic_io.write_json(tasks_path, tasks)
    info["annotation_overlap"] = record
    recorded = info.get("files", {}).get("checksums", {}).get("annotation")
    if isinstance(recorded, dict) and TASKS_FILE.as_posix() in recorded:  # the tasks file changed: and its checksum
        recorded[TASKS_FILE.as_posix()] = file_checksum(tasks_path)
    atomic_io.write_json(info_path, info)
    return record
