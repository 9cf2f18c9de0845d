"""The synthetic scene's ground truth written as annotations, in the annotation import's layout.

For tests, benchmarks and demos of the training outputs on a synthetic dataset
(`write_synthetic_bag` + `export_bags`): the rendered label image (void where
the sensor returned no depth, as annotators leave it), the mug keypoints and the
camera->base transform (the synthetic world frame: table top at z = 0, z up)
of the frames that have Label Studio tasks, written where a real annotation
import puts them (`layout.py`). The file is rewritten into a copy that replaces
the original (a reader never sees half of it).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from depth_annotation.dataset import open_h5

from . import layout
from .dataset_reader import dataset_paths, episode_names
from .errors import TrainingDataError

SOURCE = "ground_truth"
# The fields of the import's keypoint rows (issue 16's annotation/keypoints3d.py KEYPOINT_DTYPE).
KEYPOINT_DTYPE = np.dtype(
    [
        ("frame_index", "<i8"),
        ("stamp_ns", "<i8"),
        ("annotator", h5py.string_dtype()),
        ("name", h5py.string_dtype()),
        ("u", "<f4"),
        ("v", "<f4"),
        ("xyz", "<f4", (3,)),
        ("valid_pixels", "<u1"),
        ("reason", h5py.string_dtype()),
    ]
)


def _task_frames(root: Path) -> dict[str, set[int]]:
    tasks = json.loads((root / "annotation" / "label_studio_tasks.json").read_text())
    out: dict[str, set[int]] = {}
    for t in tasks:
        out.setdefault(str(t["data"]["episode"]), set()).add(int(t["data"]["stamp_ns"]))
    return out


def annotate_with_ground_truth(
    dataset_dir: str | Path,
    rendered: Sequence[Sequence[tuple[int, Any]]],
    *,
    every: int | None = None,
    camera_to_base: bool = True,
) -> dict[str, list[int]]:
    """Write ground truth for episode i from `rendered[i]` (write_synthetic_bag's (stamp, frame) list).

    Frames: those with a Label Studio task, or every `every`-th frame. Returns episode -> annotated frames.
    """
    paths = dataset_paths(dataset_dir)
    wanted = _task_frames(paths.root) if every is None else None
    tmp = paths.h5.with_name(paths.h5.name + ".gt.partial")
    shutil.copyfile(paths.h5, tmp)
    done: dict[str, list[int]] = {}
    try:
        with open_h5(tmp, "r+") as f:
            names = episode_names(f)
            if len(names) != len(rendered):
                raise TrainingDataError(f"{len(names)} episodes in the dataset, ground truth for {len(rendered)}")
            for name, truth in zip(names, rendered, strict=True):
                done[name] = _episode(f[name], name, truth, wanted, every, camera_to_base)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, paths.h5)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return done


def _episode(
    g: Any,
    name: str,
    truth: Sequence[tuple[int, Any]],
    wanted: dict[str, set[int]] | None,
    every: int | None,
    with_pose: bool,
) -> list[int]:
    stamps = np.asarray(g[layout.STAMPS])
    by_stamp = {int(s): frame for s, frame in truth}
    frames, images, rows = [], [], []
    for index, stamp in enumerate(stamps):
        keep = (int(stamp) in wanted.get(name, set())) if wanted is not None else (index % (every or 1) == 0)
        if not keep:
            continue
        if int(stamp) not in by_stamp:
            raise TrainingDataError(f"{name} frame {index} (stamp {stamp}) has no ground truth")
        rendered = by_stamp[int(stamp)]
        frames.append(index)
        images.append(rendered.annotation_labels())
        intr = rendered.intrinsics
        for obj in sorted(rendered.keypoints):
            for kp_name, xyz in rendered.keypoints[obj].items():
                u, v = intr.project(np.asarray(xyz)[None])[0]
                rows.append((index, int(stamp), SOURCE, kp_name, u, v, np.asarray(xyz, np.float32), 25, ""))
    for key in (layout.SEGMENTATION, layout.SEGMENTATION_INDEX, layout.SEGMENTATION_SOURCE, layout.KEYPOINTS):
        if key in g:
            del g[key]
    if frames:
        shape = images[0].shape
        g.create_dataset(layout.SEGMENTATION, data=np.stack(images), chunks=(1, *shape), compression="gzip")
        g.create_dataset(layout.SEGMENTATION_INDEX, data=np.asarray(frames, np.int64))
        g.create_dataset(layout.SEGMENTATION_SOURCE, data=[SOURCE] * len(frames), dtype=h5py.string_dtype())
        g.create_dataset(layout.KEYPOINTS, data=np.array(rows, KEYPOINT_DTYPE))
    if with_pose:
        if layout.CAMERA_TO_BASE in g:
            del g[layout.CAMERA_TO_BASE]
        poses = [by_stamp[int(s)].world_to_camera.inverse().matrix for s in stamps]
        g.create_dataset(layout.CAMERA_TO_BASE, data=np.stack(poses))
    return frames
