"""Import a Label Studio JSON export of our tasks into the dataset: label images and 3D keypoints.

The export is Label Studio's "JSON" format: a list of tasks, each with `data`
(our task data: `episode`, `stamp_ns`, ...), `annotations` (one per annotator;
cancelled ones are skipped and counted) and `predictions` (model pre-annotations).
Regions: `brushlabels` (RLE), `polygonlabels` and `keypointlabels`; decoded by the
Label Studio SDK (`labelstudio_codec`).

Per annotation the label image starts as 255 (unlabelled) and each region is
painted in the order Label Studio lists them (a later region covers an earlier
one, as in the editor; covered pixels are counted). Pixels with no depth become
`void`: the taxonomy defines void as "no valid depth", and annotators are not
asked to label it.

Which annotation is *the* label image of a frame (`/episode_N/segmentation`): the
one a reviewer marked `ground_truth` in Label Studio, else the earliest (lowest
annotation id). Frames labelled by several annotators also keep every annotator's
copy (`/episode_N/annotations/<annotator>/`); predictions are kept the same way
under `prediction:<model_version>` and are never the label image.

All or nothing: every problem (an unknown label, a task whose frame is not in the
dataset, a region the SDK cannot decode, a taxonomy version other than the
dataset's, ...) is collected with its task id, and if there is any, nothing is written.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .errors import AnnotationDatasetError, AnnotationImportError
from .keypoints3d import KEYPOINT_DTYPE, backproject_click, keypoint_rows, percent_to_pixel
from .labelstudio_codec import LabelStudioCodec, PolygonRegion, RleRegion
from .store import UNLABELLED, DatasetFiles, EpisodeFrames, clear_annotations, dataset_lock, publish, read_episodes

SEGMENTATION_TYPES = {"brushlabels": "brushlabels", "polygonlabels": "polygonlabels"}
KEYPOINT_TYPE = "keypointlabels"
PREDICTION_PREFIX = "prediction:"


@dataclass(frozen=True)
class Click:
    name: str
    u: float  # pixel coordinates, pixel centres at integers
    v: float


@dataclass
class SourceAnnotation:
    """One annotator's (or one model's) annotation of one frame."""

    source: str  # annotator ("user7", or the e-mail when the export has it) or "prediction:<model_version>"
    annotation_id: str
    ground_truth: bool
    labels: np.ndarray  # uint8 (H, W): taxonomy ids, UNLABELLED where no region covers the pixel
    clicks: list[Click] = field(default_factory=list)
    regions: int = 0
    covered_pixels: int = 0  # painted by more than one region (the later one wins)

    @property
    def is_prediction(self) -> bool:
        return self.source.startswith(PREDICTION_PREFIX)


@dataclass
class ImportedFrame:
    task_id: str
    episode: str
    frame_index: int
    stamp_ns: int
    annotations: list[SourceAnnotation]  # people, in annotation id order; then predictions

    @property
    def people(self) -> list[SourceAnnotation]:
        return [a for a in self.annotations if not a.is_prediction]

    def primary(self) -> SourceAnnotation | None:
        people = self.people
        if not people:
            return None
        marked = [a for a in people if a.ground_truth]
        return marked[0] if marked else people[0]


@dataclass
class _Pending:
    """A region waiting for the SDK to decode it."""

    frame: int  # index into the frame list
    annotation: int
    label_id: int
    region: RleRegion | PolygonRegion


def annotator_name(completed_by: Any) -> str:
    """Label Studio's `completed_by`: a user id, or (some exports) a user object with an e-mail."""
    if isinstance(completed_by, dict):
        email = completed_by.get("email")
        return str(email) if email else f"user{completed_by.get('id', '?')}"
    return f"user{completed_by}" if completed_by is not None else "unknown"


def _ann_sort_key(a: dict[str, Any]) -> tuple[int, str]:
    ident = str(a.get("id"))
    return (int(ident), "") if ident.isdigit() else (1 << 62, ident)


class _Parser:
    def __init__(self, files: DatasetFiles, episodes: dict[str, EpisodeFrames]) -> None:
        self.files, self.episodes = files, episodes
        self.label_ids = files.label_ids
        self.keypoint_names = files.keypoint_names
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.frames: list[ImportedFrame] = []
        self.pending: list[_Pending] = []
        self.counts: Counter[str] = Counter()
        self.seen_frames: dict[tuple[str, int], str] = {}

    def problem(self, task_id: str, text: str) -> None:
        self.problems.append(f"task {task_id}: {text}")

    def parse(self, export: Any) -> None:
        if not isinstance(export, list):
            raise AnnotationImportError("export", ["not a Label Studio JSON export (expected a list of tasks)"])
        for i, task in enumerate(export):
            if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
                self.problems.append(f"task #{i} (no id): not a task object with 'data'")
                continue
            self.task(task, i)

    def task(self, task: dict[str, Any], position: int) -> None:
        tid = str(task.get("id", f"#{position}"))
        data = task["data"]
        version = data.get("taxonomy_version")
        if version is not None and str(version) != self.files.taxonomy_version:
            self.problem(
                tid, f"labelled with taxonomy {version}, the dataset has {self.files.taxonomy_version or 'no version'}"
            )
            return
        annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict)]
        cancelled = [a for a in annotations if a.get("was_cancelled")]
        self.counts["cancelled_annotations"] += len(cancelled)
        annotations = sorted((a for a in annotations if not a.get("was_cancelled")), key=_ann_sort_key)
        predictions = [p for p in task.get("predictions") or [] if isinstance(p, dict)]
        if not annotations and not predictions:
            self.counts["tasks_without_annotations"] += 1
            return
        episode, stamp = data.get("episode"), data.get("stamp_ns")
        ep = self.episodes.get(str(episode))
        try:
            stamp_ns = int(str(stamp))
        except ValueError:
            self.problem(tid, f"data.stamp_ns {stamp!r} is not an integer stamp")
            return
        frame = ep.frame_of(stamp_ns) if ep is not None else None
        if ep is None or frame is None:
            self.problem(tid, f"frame {episode} @ {stamp} is not in the dataset ({self.files.h5.name})")
            return
        key = (ep.name, frame)
        if key in self.seen_frames:
            self.problem(tid, f"frame {episode} @ {stamp} is also task {self.seen_frames[key]}")
            return
        self.seen_frames[key] = tid
        imported = ImportedFrame(tid, ep.name, frame, stamp_ns, [])
        by_source: dict[str, int] = {}
        for ann in annotations:
            source = annotator_name(ann.get("completed_by"))
            if source in by_source:  # the same person twice (re-opened task): the later annotation wins
                self.notes.append(f"task {tid}: {source} has several annotations; kept annotation {ann.get('id')}")
                imported.annotations.pop(by_source.pop(source))
                by_source = {a.source: i for i, a in enumerate(imported.annotations)}
            by_source[source] = len(imported.annotations)
            self.annotation(imported, ep, tid, ann, source, bool(ann.get("ground_truth")))
        for pred in predictions:
            source = PREDICTION_PREFIX + str(pred.get("model_version") or "unknown")
            self.annotation(imported, ep, tid, pred, source, False)
        self.counts["annotations"] += len([a for a in imported.annotations if not a.is_prediction])
        self.counts["predictions"] += len([a for a in imported.annotations if a.is_prediction])
        self.frames.append(imported)

    def annotation(
        self, frame: ImportedFrame, ep: EpisodeFrames, tid: str, ann: dict[str, Any], source: str, gt: bool
    ) -> None:
        labels = np.full((ep.height, ep.width), UNLABELLED, np.uint8)
        out = SourceAnnotation(source, str(ann.get("id", "")), gt, labels)
        frame_idx, ann_idx = len(self.frames), len(frame.annotations)
        results = ann.get("result")
        if not isinstance(results, list):
            self.problem(tid, f"{source}: 'result' is not a list")
            return
        for j, region in enumerate(results):
            where = f"{source}, region {region.get('id', j) if isinstance(region, dict) else j}"
            if not isinstance(region, dict) or not isinstance(region.get("value"), dict):
                self.problem(tid, f"{where}: not a region with a 'value'")
                continue
            kind, value = str(region.get("type", "")).lower(), region["value"]
            if kind not in SEGMENTATION_TYPES and kind != KEYPOINT_TYPE:
                self.problem(
                    tid, f"{where}: region type {region.get('type')!r} is not imported (brush, polygon, keypoint)"
                )
                continue
            size = (region.get("original_width"), region.get("original_height"))
            if size != (ep.width, ep.height):
                self.problem(tid, f"{where}: drawn on a {size[0]}x{size[1]} image, the frame is {ep.width}x{ep.height}")
                continue
            if region.get("image_rotation", 0) not in (0, None):
                self.problem(tid, f"{where}: rotated images are not supported")
                continue
            names = value.get(kind)
            if not isinstance(names, list) or len(names) != 1:
                self.problem(tid, f"{where}: expected exactly one label in value.{kind}, got {names!r}")
                continue
            name = str(names[0])
            if kind == KEYPOINT_TYPE:
                if name not in self.keypoint_names:
                    self.problem(tid, f"{where}: unknown keypoint {name!r} (taxonomy: {sorted(self.keypoint_names)})")
                    continue
                try:
                    x, y = float(value["x"]), float(value["y"])
                except (KeyError, TypeError, ValueError):
                    self.problem(tid, f"{where}: keypoint without numeric x, y")
                    continue
                if not (0.0 <= x <= 100.0 and 0.0 <= y <= 100.0):
                    self.problem(tid, f"{where}: keypoint at ({x}, {y}) % is outside the image")
                    continue
                out.clicks.append(Click(name, *percent_to_pixel(x, y, ep.width, ep.height)))
                continue
            if name not in self.label_ids:
                self.problem(tid, f"{where}: unknown label {name!r} (taxonomy {self.files.taxonomy_version})")
                continue
            if kind == "brushlabels":
                rle = value.get("rle")
                if value.get("format", "rle") != "rle" or not isinstance(rle, list):
                    self.problem(tid, f"{where}: brush region without an RLE list")
                    continue
                reg: RleRegion | PolygonRegion = RleRegion(rle, ep.width, ep.height)
            else:
                pts = value.get("points")
                if not isinstance(pts, list):
                    self.problem(tid, f"{where}: polygon without points")
                    continue
                reg = PolygonRegion(pts, ep.width, ep.height)
            self.pending.append(_Pending(frame_idx, ann_idx, self.label_ids[name], reg))
            out.regions += 1
        frame.annotations.append(out)


@dataclass
class ImportResult:
    """What an import wrote (or would have written): counts for the user, frames for the caller."""

    source: str
    frames: list[ImportedFrame]
    counts: dict[str, int]
    notes: list[str]
    sdk_version: str
    seconds: dict[str, float]

    def summary(self) -> dict[str, Any]:
        per_annotator = Counter(a.source for f in self.frames for a in f.annotations)
        return {
            "source": self.source,
            "frames": len(self.frames),
            "frames_with_several_annotators": sum(1 for f in self.frames if len(f.people) > 1),
            "keypoints": sum(len(a.clicks) for f in self.frames for a in f.annotations),
            "per_source": dict(sorted(per_annotator.items())),
            **self.counts,
            "notes": self.notes,
            "label_studio_sdk": self.sdk_version,
            "seconds": self.seconds,
        }


def parse_export(
    export: Any, files: DatasetFiles, episodes: dict[str, EpisodeFrames], codec: LabelStudioCodec, source: str
) -> ImportResult:
    """Parse and decode an export; raises AnnotationImportError listing every problem."""
    t0 = time.perf_counter()
    parser = _Parser(files, episodes)
    parser.parse(export)
    t1 = time.perf_counter()
    masks = codec.decode([p.region for p in parser.pending]) if parser.pending else []
    t2 = time.perf_counter()
    for p, mask in zip(parser.pending, masks, strict=True):
        frame = parser.frames[p.frame]
        ann = frame.annotations[p.annotation]
        if isinstance(mask, str):
            kind = "brush RLE" if isinstance(p.region, RleRegion) else "polygon"
            parser.problem(frame.task_id, f"{ann.source}: malformed {kind} ({mask})")
            continue
        painted = mask.astype(bool)
        ann.covered_pixels += int(np.count_nonzero(painted & (ann.labels != UNLABELLED)))
        ann.labels[painted] = p.label_id
    if parser.problems:
        raise AnnotationImportError(source, parser.problems)
    counts = {
        k: parser.counts[k]
        for k in ("annotations", "predictions", "cancelled_annotations", "tasks_without_annotations")
    }
    counts["regions"] = len(parser.pending)
    return ImportResult(
        source, parser.frames, counts, parser.notes, codec.sdk_version, {"parse": t1 - t0, "decode": t2 - t1}
    )


def _write(h5: Any, result: ImportResult, files: DatasetFiles, episodes: dict[str, EpisodeFrames]) -> None:
    """Every episode's annotation datasets (replacing an earlier import's) into an open, writable file."""
    by_episode: dict[str, list[ImportedFrame]] = {}
    for f in result.frames:
        by_episode.setdefault(f.episode, []).append(f)
    void = files.void_id
    meta = {
        "taxonomy_version": files.taxonomy_version,
        "void_id": void,
        "unlabelled_value": UNLABELLED,
        "labels": json.dumps(files.label_names),
        "imported_from": result.source,
        "imported_at_unix": time.time(),
        "label_studio_sdk": result.sdk_version,
    }
    for name in episodes:
        g = h5[name]
        clear_annotations(g)
        frames = sorted(by_episode.get(name, []), key=lambda f: f.frame_index)
        if not frames:
            continue
        ep = episodes[name]
        depth_ds = g["depth"]
        rows, primary, index, sources = [], [], [], []
        copies: dict[str, tuple[list[int], list[np.ndarray]]] = {}
        for f in frames:
            depth = np.asarray(depth_ds[f.frame_index])
            no_depth = depth == 0
            for ann in f.annotations:
                ann.labels[no_depth] = void
                kps = [backproject_click(c.name, c.u, c.v, depth, ep.intrinsics) for c in ann.clicks]
                rows.append(keypoint_rows(f.frame_index, f.stamp_ns, ann.source, kps))
            main = f.primary()
            if main is not None:
                primary.append(main.labels)
                index.append(f.frame_index)
                sources.append(main.source)
            if len(f.people) > 1 or any(a.is_prediction for a in f.annotations):
                for ann in f.annotations if len(f.people) > 1 else [a for a in f.annotations if a.is_prediction]:
                    idx, imgs = copies.setdefault(ann.source, ([], []))
                    idx.append(f.frame_index)
                    imgs.append(ann.labels)
        shape = (ep.height, ep.width)
        if primary:
            seg = g.create_dataset(
                "segmentation", data=np.stack(primary), chunks=(1, *shape), compression="gzip", compression_opts=4
            )
            for k, v in meta.items():
                seg.attrs[k] = v
            g.create_dataset("segmentation_index", data=np.asarray(index, np.int64))
            g.create_dataset("segmentation_source", data=sources, dtype=h5py.string_dtype())
        kp = g.create_dataset(
            "keypoints_3d", data=np.concatenate(rows) if rows else np.zeros(0, KEYPOINT_DTYPE), maxshape=(None,)
        )
        kp.attrs["frame"] = "camera optical frame of the colour stream (x right, y down, z forward), metres"
        kp.attrs["depth"] = (
            "mean of the middle half of the valid depths in the 5x5 window around the click (>= 3 valid)"
        )
        kp.attrs["pixel_convention"] = "u, v with pixel centres at integers (Label Studio x% * W / 100 - 0.5)"
        ag = g.create_group("annotations")
        ag.attrs["what"] = "per-annotator label images of frames several annotators labelled, and predictions"
        for source, (idx, imgs) in sorted(copies.items()):
            sg = ag.create_group(source.replace("/", "_"))
            sg.attrs["source"] = source
            sg.create_dataset(
                "segmentation", data=np.stack(imgs), chunks=(1, *shape), compression="gzip", compression_opts=4
            )
            sg.create_dataset("segmentation_index", data=np.asarray(idx, np.int64))


def import_export(
    export_path: str | Path,
    files: DatasetFiles,
    *,
    codec: LabelStudioCodec | None = None,
    workers: int | None = None,
    lock: bool = True,
) -> ImportResult:
    """Import a Label Studio JSON export into the dataset (crash-safe; all or nothing).

    With `lock` the import holds the dataset folder's lock (`dataset_lock`) from reading the
    episodes to publishing the file, and fails at once while an export or another import holds
    it; `lock=False` is for a caller that holds it already (around the import and its report).
    """
    if not lock:
        return _import_export(export_path, files, codec, workers)
    with dataset_lock(files.root):
        return _import_export(export_path, files, codec, workers)


def _import_export(
    export_path: str | Path, files: DatasetFiles, codec: LabelStudioCodec | None, workers: int | None
) -> ImportResult:
    from depth_annotation.dataset import open_h5

    path = Path(export_path)
    try:
        export = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationImportError(str(path), [f"cannot read the export: {exc}"]) from None
    with open_h5(files.h5) as h5:
        episodes = read_episodes(h5)
    if not episodes:
        raise AnnotationDatasetError(f"{files.h5}: no episodes")
    own = codec is None
    active = codec or LabelStudioCodec(workers)
    try:
        result = parse_export(export, files, episodes, active, str(path))
    finally:
        if own:
            active.close()
    t0 = time.perf_counter()
    publish(files.h5, lambda h5: _write(h5, result, files, episodes))
    result.seconds["write"] = time.perf_counter() - t0
    return result
