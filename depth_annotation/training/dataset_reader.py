"""Reading an exported, annotated dataset: files, splits, annotated frames, keypoints, camera->base.

One place that knows where things are (names in `layout.py`), shared by the
point-cloud writer, the dataloader and the smoke command.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depth_annotation.common import CameraModelError, Extrinsics, Intrinsics
from depth_annotation.dataset import open_h5

from . import layout
from .errors import TrainingDataError


@dataclass(frozen=True)
class DatasetPaths:
    root: Path
    h5: Path
    training: Path
    info: dict[str, Any]
    taxonomy: dict[str, Any]

    @property
    def keypoint_names(self) -> list[str]:
        """Every keypoint name of the taxonomy, categories in file order: a keypoint's id is its position."""
        return [str(k) for names in self.taxonomy.get("keypoints", {}).values() for k in names]

    @property
    def label_colors(self) -> dict[int, tuple[int, int, int]]:
        return {
            int(x["id"]): (int(x["color"][0]), int(x["color"][1]), int(x["color"][2])) for x in self.taxonomy["labels"]
        }

    def split_of(self, episode: str) -> str | None:
        scene = next((e.get("scene_id") for e in self.info.get("episodes", []) if e.get("episode") == episode), None)
        assignment: dict[str, str] = self.info.get("splits", {}).get("assignment", {})
        return assignment.get(str(scene)) if scene is not None else None


def dataset_paths(root: str | Path) -> DatasetPaths:
    """The files of a dataset directory made by `depth-annotation export`."""
    root = Path(root)
    info_path, tax_path = root / "dataset_info.json", root / "taxonomy.json"
    for path in (info_path, tax_path):
        if not path.exists():
            raise TrainingDataError(f"{path} not found: is {root} a dataset directory (depth-annotation export)?")
    try:
        info = json.loads(info_path.read_text())
        taxonomy = json.loads(tax_path.read_text())
    except json.JSONDecodeError as exc:
        raise TrainingDataError(f"{root}: dataset_info.json or taxonomy.json is not JSON ({exc})") from None
    h5 = root / info.get("files", {}).get("hdf5", layout.DATASET_FILE)
    if not h5.exists():
        raise TrainingDataError(f"{h5} not found (dataset_info.json names it)")
    return DatasetPaths(root, h5, root / layout.TRAINING_FILE, info, taxonomy)


def episode_names(h5: Any) -> list[str]:
    return sorted((k for k in h5 if k.startswith("episode_")), key=lambda k: int(k.split("_")[1]))


def episode_intrinsics(group: Any) -> Intrinsics:
    fx, fy, cx, cy = (float(v) for v in np.asarray(group[layout.INTRINSICS]))
    d = tuple(float(v) for v in np.asarray(group["D"]).ravel()) if "D" in group else (0.0,) * 5
    return Intrinsics(
        int(group.attrs["width"]),
        int(group.attrs["height"]),
        fx,
        fy,
        cx,
        cy,
        str(group.attrs.get("distortion_model", "plumb_bob")),
        d,
    )


def annotated_frames(group: Any) -> np.ndarray:
    """Episode frames with a segmentation row, in row order (empty when the episode has none)."""
    if layout.SEGMENTATION not in group:
        return np.zeros(0, np.int64)
    if layout.SEGMENTATION_INDEX not in group:
        raise TrainingDataError(f"{group.name}: {layout.SEGMENTATION} without {layout.SEGMENTATION_INDEX}")
    return np.asarray(group[layout.SEGMENTATION_INDEX], np.int64)


def _rigid(matrix: np.ndarray, where: str) -> np.ndarray:
    m = np.asarray(matrix, np.float64)
    if m.shape != (4, 4) or not np.allclose(m[3], [0, 0, 0, 1]):
        raise TrainingDataError(f"{where}: not a 4x4 homogeneous transform")
    try:
        Extrinsics(m[:3, :3], m[:3, 3])
    except CameraModelError as exc:
        raise TrainingDataError(f"{where}: {exc}") from None
    return m


def camera_to_base(group: Any, frames: np.ndarray, override: Extrinsics | None = None) -> np.ndarray | None:
    """(A, 4, 4) camera->base transforms of `frames`: the override, or the episode's dataset, or None."""
    if override is not None:
        return np.repeat(_rigid(override.matrix, "camera_to_base")[None], len(frames), axis=0)
    if layout.CAMERA_TO_BASE not in group:
        return None
    data = np.asarray(group[layout.CAMERA_TO_BASE], np.float64)
    where = f"{group.name}/{layout.CAMERA_TO_BASE}"
    if data.shape == (4, 4):
        return np.repeat(_rigid(data, where)[None], len(frames), axis=0)
    if data.ndim == 3 and data.shape[1:] == (4, 4) and data.shape[0] == group[layout.DEPTH].shape[0]:
        return np.stack([_rigid(data[f], f"{where}[{f}]") for f in frames]) if len(frames) else np.zeros((0, 4, 4))
    raise TrainingDataError(f"{where}: shape {data.shape}, expected (4, 4) or (frames, 4, 4)")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def keypoints_by_frame(group: Any, keypoint_names: list[str]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """frame -> (ids (K,), xyz (K, 3)) of the frame's primary annotator (the segmentation's source, else the
    first person by name; models' keypoints are never used). ids index `keypoint_names`; unknown names: -1."""
    if layout.KEYPOINTS not in group:
        return {}
    rows = np.asarray(group[layout.KEYPOINTS])
    if rows.size == 0:
        return {}
    primary: dict[int, str] = {}
    if layout.SEGMENTATION_SOURCE in group:
        for frame, source in zip(annotated_frames(group), group[layout.SEGMENTATION_SOURCE], strict=True):
            primary[int(frame)] = _text(source)
    annotators = [_text(a) for a in rows["annotator"]]
    for frame in np.unique(rows["frame_index"]):
        if int(frame) not in primary:
            people = sorted(
                {a for a, f in zip(annotators, rows["frame_index"], strict=True) if f == frame}
                - {a for a in annotators if a.startswith(layout.PREDICTION_PREFIX)}
            )
            if people:
                primary[int(frame)] = people[0]
    index = {name: i for i, name in enumerate(keypoint_names)}
    out: dict[int, tuple[list[int], list[np.ndarray]]] = {}
    for row, annotator in zip(rows, annotators, strict=True):
        frame = int(row["frame_index"])
        if primary.get(frame) != annotator:
            continue
        ids, xyz = out.setdefault(frame, ([], []))
        ids.append(index.get(_text(row["name"]), -1))
        xyz.append(np.asarray(row["xyz"], np.float32))
    return {f: (np.asarray(i, np.int64), np.stack(x).astype(np.float32)) for f, (i, x) in out.items()}


def open_dataset(paths: DatasetPaths) -> Any:
    return open_h5(paths.h5)
