"""The dataset side of the annotation round trip: what an import reads from and writes into the dataset.

Read: the HDF5 file's episodes (frame stamps, size, intrinsics) and `taxonomy.json`.
Written, per episode:

    /episode_N/segmentation            uint8 (A, H, W)  label image per annotated frame, taxonomy ids;
                                                        0 = void (no depth), 255 = nobody labelled the pixel
    /episode_N/segmentation_index      int64 (A,)       frame index in the episode of each row
    /episode_N/segmentation_source     str (A,)         whose annotation the row is (see ls_import)
    /episode_N/keypoints_3d            compound (K,)    every annotator's keypoints (keypoints3d.KEYPOINT_DTYPE)
    /episode_N/annotations/<source>/segmentation, segmentation_index
                                       per-annotator copies of the frames several annotators labelled

The dataset file is published atomically by the exporter; an import keeps that
promise: it copies the file beside itself, writes the annotations into the copy,
flushes it to disk and renames it over the original (`publish`). A reader sees the
old file or the new one, never a half-written one; a crash leaves only the
`.partial` copy, removed by the next import (and reported by `depth-annotation check`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depth_annotation.common import Intrinsics, atomic_io
from depth_annotation.dataset import LOCK_NAME, open_h5

from .errors import AnnotationDatasetError, AnnotationDatasetLockedError

UNLABELLED = 255  # a pixel with depth that no region of the annotation covers
ANNOTATION_KEYS = ("segmentation", "segmentation_index", "segmentation_source", "keypoints_3d", "annotations")


@dataclass(frozen=True)
class EpisodeFrames:
    """What the import needs to know about one episode: its frames and camera."""

    name: str
    scene_id: str
    width: int
    height: int
    intrinsics: Intrinsics
    stamps_ns: np.ndarray  # int64 (T,)

    def frame_of(self, stamp_ns: int) -> int | None:
        i = int(np.searchsorted(self.stamps_ns, stamp_ns))
        return i if i < self.stamps_ns.size and int(self.stamps_ns[i]) == stamp_ns else None


@dataclass(frozen=True)
class DatasetFiles:
    root: Path
    h5: Path
    taxonomy: dict[str, Any]

    @property
    def label_ids(self) -> dict[str, int]:
        return {str(label["name"]): int(label["id"]) for label in self.taxonomy["labels"]}

    @property
    def label_names(self) -> dict[int, str]:
        return {v: k for k, v in self.label_ids.items()}

    @property
    def keypoint_names(self) -> set[str]:
        return {str(k) for names in self.taxonomy.get("keypoints", {}).values() for k in names}

    @property
    def taxonomy_version(self) -> str:
        return str(self.taxonomy.get("taxonomy_version", ""))

    @property
    def void_id(self) -> int:
        return int(self.taxonomy.get("void_id", 0))


def dataset_files(root: str | Path) -> DatasetFiles:
    """The HDF5 file and taxonomy of a dataset directory made by `depth-annotation export`."""
    root = Path(root)
    info_path, tax_path = root / "dataset_info.json", root / "taxonomy.json"
    h5 = root / "export" / "dataset.h5"
    if info_path.exists():
        try:
            rel = json.loads(info_path.read_text()).get("files", {}).get("hdf5")
        except json.JSONDecodeError as exc:
            raise AnnotationDatasetError(f"{info_path}: not JSON ({exc})") from None
        if rel:
            h5 = root / rel
    if not h5.exists():
        raise AnnotationDatasetError(f"{root}: no dataset file {h5} (export a dataset first)")
    if not tax_path.exists():
        raise AnnotationDatasetError(f"{root}: no taxonomy.json")
    try:
        taxonomy = json.loads(tax_path.read_text())
        _ = [(int(x["id"]), str(x["name"])) for x in taxonomy["labels"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise AnnotationDatasetError(f"{tax_path}: not a taxonomy ({type(exc).__name__}: {exc})") from None
    return DatasetFiles(root, h5, taxonomy)


def read_episodes(h5: Any) -> dict[str, EpisodeFrames]:
    """Episode name -> frames and camera, from an open dataset file."""
    out = {}
    for name in sorted((k for k in h5 if k.startswith("episode_")), key=lambda k: int(k.split("_")[1])):
        g = h5[name]
        fx, fy, cx, cy = (float(x) for x in g["camera_intrinsics"][:])
        width, height = int(g.attrs["width"]), int(g.attrs["height"])
        d = tuple(float(x) for x in g["D"][:]) if "D" in g else (0.0,) * 5
        intr = Intrinsics(width, height, fx, fy, cx, cy, str(g.attrs.get("distortion_model", "plumb_bob")), d)
        out[name] = EpisodeFrames(
            name, str(g.attrs.get("scene_id", "")), width, height, intr, np.asarray(g["timestamps_ns"][:], np.int64)
        )
    return out


def partial_path(h5_path: Path) -> Path:
    return h5_path.with_name(h5_path.name + ".annotations.partial")


@contextmanager
def dataset_lock(root: str | Path) -> Iterator[None]:
    """Hold the dataset folder's `OUT/.export.lock`, the OS lock an export takes, while changing it.

    An import started while an export (or another import) writes the folder fails at once naming
    the holder, instead of publishing into a folder being swapped or interleaving with the other
    import's copy-and-replace of the HDF5 file and its report. The kernel drops the lock however
    its holder ends, so a killed run never blocks the next one.
    """
    path = Path(root) / LOCK_NAME
    try:
        lock = atomic_io.ExclusiveLock(path).acquire()
    except atomic_io.LockHeldError as exc:
        h = exc.holder
        raise AnnotationDatasetLockedError(
            f"{root} is being written by another program (pid {h.get('pid', '?')}, started "
            f"{h.get('started', '?')}, command: {h.get('command', '?')}); nothing was imported"
        ) from None
    except OSError as exc:
        raise AnnotationDatasetError(f"{path}: cannot lock the dataset folder ({exc.strerror or exc})") from None
    try:
        yield
    finally:
        lock.release()


def publish(h5_path: Path, write: Callable[[Any], None]) -> None:
    """Apply `write(h5file)` to a copy of the dataset file and atomically replace the original with it."""
    tmp = partial_path(h5_path)
    tmp.unlink(missing_ok=True)  # left by an interrupted import
    try:
        shutil.copyfile(h5_path, tmp)  # copy_file_range/sendfile: in-kernel, a reflink where the filesystem can
        with open_h5(tmp, "r+") as f:
            write(f)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, h5_path)
        dir_fd = os.open(h5_path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def clear_annotations(group: Any) -> None:
    """Remove an earlier import's datasets from an episode group (an import replaces them all)."""
    for key in ANNOTATION_KEYS:
        if key in group:
            del group[key]
