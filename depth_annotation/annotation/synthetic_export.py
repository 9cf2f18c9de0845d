"""Ground truth turned into a Label Studio export, as annotators would produce it.

The synthetic scene renders the true label image, instance ids and 3D mug
keypoints of every frame. `annotators_export` turns them into Label Studio's JSON
export of our tasks: brush RLE (encoded by the SDK) or polygons per object, and
keypoint clicks where each keypoint is visible, one annotation per annotator.
Each `AnnotatorProfile` can make one controlled mistake (or several): object
boundaries eroded or dilated by k px, an object left out, keypoints shifted by d mm,
a keypoint clicked on the background behind the object, a mask bleeding k px
onto the background behind a silhouette. It is the fixture of the tests, the
benchmark and the demo: every metric has a known answer.

`synthetic_dataset` makes the dataset those tasks belong to: a synthetic bag,
exported by the real exporter, with the overlap marked.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depth_annotation.common import LABEL_IDS, SyntheticScene

from .keypoints3d import pixel_to_percent
from .labelstudio_codec import LabelStudioCodec
from .overlap import TASKS_FILE, mark_overlap

OBJECT_LABELS = ("target_object", "distractor_object", "gripper", "robot_arm")
KEYPOINT_VISIBLE_MM = 10.0  # a keypoint is clickable when the surface at its pixel is this close (handle tube: 7 mm)
_BATCH_TASKS = 16  # tasks whose masks are encoded together (bounded memory, parallel SDK workers)


@dataclass(frozen=True)
class AnnotatorProfile:
    """A synthetic annotator: who, and which mistakes (none by default: the ground truth)."""

    user_id: int
    boundary_px: int = 0  # > 0 dilates, < 0 erodes every object of `boundary_labels` by that many pixels
    boundary_labels: tuple[str, ...] = OBJECT_LABELS
    missed_objects: tuple[str, ...] = ()  # scene object names (e.g. "box") left unlabelled
    keypoint_shift_mm: float = 0.0  # every click moved by this many mm along the camera's x axis
    keypoints_on_background: tuple[str, ...] = ()  # keypoint names clicked on the far surface just beside them
    bleed_px: int = 0  # object masks spread this many pixels onto farther (background) surfaces
    polygon_labels: tuple[str, ...] = ()  # labels outlined as polygons (on the RGB view) instead of brushed
    skip_keypoints: bool = False

    @property
    def name(self) -> str:
        return f"user{self.user_id}"


@dataclass
class Drawn:
    """What a synthetic annotator produced for one frame (the known answer for tests)."""

    labels: np.ndarray  # uint8 (H, W): taxonomy ids painted (255 where nothing was painted)
    clicks: list[tuple[str, str, float, float]] = field(default_factory=list)  # (object, keypoint, u, v)


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def draw(frame: Any, scene: SyntheticScene, profile: AnnotatorProfile) -> tuple[Drawn, np.ndarray]:
    """The label image and clicks `profile` produces for a rendered frame; also its instance map."""
    labels = frame.labels.copy()
    inst = frame.instances.copy()
    names = ["<none>"] + [o.name for o in scene.objects]
    obj_label = np.array([LABEL_IDS["background"]] + [LABEL_IDS[o.label] for o in scene.objects], np.uint8)
    boundary_ids = [LABEL_IDS[n] for n in profile.boundary_labels]
    objects = [i for i in np.unique(inst) if i > 0 and obj_label[i] in boundary_ids]
    if profile.boundary_px < 0:
        r = -profile.boundary_px
        freed = np.zeros(labels.shape, bool)
        for i in objects:
            m = (inst == i).astype(np.uint8)
            freed |= (m > 0) & (cv2.erode(m, _disk(r)) == 0)
        # freed pixels take the label of the nearest pixel outside every eroded object
        source = ~freed & ~np.isin(inst, objects)
        if source.any():
            _, nearest = cv2.distanceTransformWithLabels(
                (~source).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
            )
            src_idx = np.zeros(int(nearest.max()) + 1, np.int64)
            rows, cols = np.nonzero(source)
            src_idx[nearest[rows, cols]] = rows * labels.shape[1] + cols
            flat = src_idx[nearest[freed]]
            labels[freed] = labels.ravel()[flat]
            inst[freed] = inst.ravel()[flat]
    elif profile.boundary_px > 0:
        taken = np.isin(inst, objects)
        for i in objects:
            grown = (cv2.dilate((inst == i).astype(np.uint8), _disk(profile.boundary_px)) > 0) & ~taken
            labels[grown], inst[grown] = obj_label[i], i
    if profile.bleed_px > 0:
        depth = np.nan_to_num(frame.depth_gt_m, nan=np.inf)
        taken = np.isin(obj_label[inst], [LABEL_IDS[n] for n in OBJECT_LABELS])
        for i in [i for i in np.unique(inst) if i > 0 and obj_label[i] in [LABEL_IDS[n] for n in OBJECT_LABELS]]:
            m = inst == i
            z = frame.depth_gt_m[m]
            z = z[np.isfinite(z)]
            if z.size == 0:
                continue
            far = float(np.percentile(z, 95)) + 0.02
            ring = (cv2.dilate(m.astype(np.uint8), _disk(profile.bleed_px)) > 0) & ~m & ~taken
            bleed = ring & (depth > far)
            labels[bleed], inst[bleed] = obj_label[i], i
    for name in profile.missed_objects:
        i = names.index(name)
        labels[inst == i] = 255
        inst[inst == i] = -1
    drawn = Drawn(labels)
    if not profile.skip_keypoints:
        drawn.clicks = _clicks(frame, scene, profile)
    return drawn, inst


def _clicks(frame: Any, scene: SyntheticScene, profile: AnnotatorProfile) -> list[tuple[str, str, float, float]]:
    intr = frame.intrinsics
    out = []
    for obj_name, kps in sorted(frame.keypoints.items()):
        obj = scene.object_index(obj_name) + 1
        if obj_name in profile.missed_objects:
            continue
        for kp_name, xyz in kps.items():
            u, v = intr.project(np.asarray(xyz))[0]
            col, row = int(round(u)), int(round(v))
            if not (0 <= col < intr.width and 0 <= row < intr.height) or frame.instances[row, col] != obj:
                continue
            if abs(float(frame.depth_gt_m[row, col]) - float(xyz[2])) * 1000.0 > KEYPOINT_VISIBLE_MM:
                continue  # hidden behind another part of the mug: annotators click only what they see
            if kp_name in profile.keypoints_on_background:
                u, v = _background_beside(frame, col, row, float(xyz[2]))
            elif profile.keypoint_shift_mm:
                shifted = np.asarray(xyz, np.float64) + [profile.keypoint_shift_mm / 1000.0, 0.0, 0.0]
                u, v = intr.project(shifted)[0]
            out.append((obj_name, kp_name, float(u), float(v)))
    return out


def _background_beside(frame: Any, col: int, row: int, z: float) -> tuple[float, float]:
    """The nearest pixel to (col, row) whose 3x3 neighbourhood all lies at least 5 cm behind depth z."""
    far = np.nan_to_num(frame.depth_gt_m, nan=np.inf) > z + 0.05
    far3 = cv2.erode(far.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    rows, cols = np.nonzero(far3)
    k = int(np.argmin((rows - row) ** 2 + (cols - col) ** 2))
    return float(cols[k]), float(rows[k])


def _region_id(*parts: object) -> str:
    return "".join(f"{p}" for p in parts).replace("_", "")[:40]


def _regions(
    drawn: Drawn, inst: np.ndarray, profile: AnnotatorProfile, tag: str
) -> tuple[list[tuple[str, np.ndarray]], list[dict[str, Any]]]:
    """Brush masks to encode (label, mask) and the polygon / keypoint regions, for one frame."""
    h, w = drawn.labels.shape
    masks, others = [], []
    id_to_name = {v: k for k, v in LABEL_IDS.items()}
    keys = np.unique(drawn.labels.astype(np.int64) * 4096 + (inst.astype(np.int64) + 1))
    for key in keys:
        label, instance = int(key // 4096), int(key % 4096) - 1
        if label == 255 or label == LABEL_IDS["void"]:
            continue
        mask = (drawn.labels == label) & (inst == instance)
        name = id_to_name[label]
        if name in profile.polygon_labels:
            contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            for n, c in enumerate(contours):
                if len(c) < 3:
                    continue
                pts = [[float((x + 0.5) / w * 100.0), float((y + 0.5) / h * 100.0)] for x, y in c[:, 0, :]]
                others.append(
                    {
                        "id": _region_id(tag, "p", label, instance, n),
                        "type": "polygonlabels",
                        "from_name": "outlines",
                        "to_name": "rgb",
                        "original_width": w,
                        "original_height": h,
                        "image_rotation": 0,
                        "origin": "manual",
                        "value": {"points": pts, "closed": True, "polygonlabels": [name]},
                    }
                )
            continue
        masks.append((name, mask))
    for n, (_obj, kp, u, v) in enumerate(drawn.clicks):
        x, y = pixel_to_percent(u, v, w, h)
        others.append(
            {
                "id": _region_id(tag, "k", n),
                "type": "keypointlabels",
                "from_name": "keypoints",
                "to_name": "depth",
                "original_width": w,
                "original_height": h,
                "image_rotation": 0,
                "origin": "manual",
                "value": {"x": x, "y": y, "width": 0.4, "keypointlabels": [kp]},
            }
        )
    return masks, others


def _brush(tag: str, n: int, name: str, rle: list[int], w: int, h: int) -> dict[str, Any]:
    return {
        "id": _region_id(tag, "b", n),
        "type": "brushlabels",
        "from_name": "segmentation",
        "to_name": "depth",
        "original_width": w,
        "original_height": h,
        "image_rotation": 0,
        "origin": "manual",
        "value": {"format": "rle", "rle": rle, "brushlabels": [name]},
    }


def annotators_export(
    tasks: Sequence[dict[str, Any]],
    truth: Mapping[tuple[str, int], Any],
    scene: SyntheticScene,
    annotators: Sequence[AnnotatorProfile],
    codec: LabelStudioCodec,
    *,
    assignment: str = "overlap",
    prediction: AnnotatorProfile | None = None,
    taxonomy_version: str | None = None,
    drawn_out: dict[tuple[int, str], Drawn] | None = None,
) -> list[dict[str, Any]]:
    """A Label Studio JSON export of `tasks` annotated by `annotators` from the ground truth.

    `truth[(episode, stamp_ns)]` is the rendered frame of a task. `assignment`:
    "overlap" gives tasks with `data.overlap == 2` to the first two annotators and
    the others to one annotator in turn; "all" gives every task to every annotator.
    `drawn_out`, when given, receives what each annotator drew per task id.
    """
    if assignment not in ("overlap", "all"):
        raise ValueError(f"assignment must be 'overlap' or 'all', got {assignment!r}")
    stamp = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc).isoformat()
    export: list[dict[str, Any]] = []
    turn = 0
    ann_id = 0
    for start in range(0, len(tasks), _BATCH_TASKS):
        pending: list[tuple[dict[str, Any], str, str, int, int]] = []  # (annotation, tag, name, w, h) per mask
        masks: list[np.ndarray] = []
        for offset, task in enumerate(tasks[start : start + _BATCH_TASKS]):
            task_id = start + offset + 1
            data = dict(task["data"])
            if taxonomy_version is not None:
                data["taxonomy_version"] = taxonomy_version
            frame = truth[(str(data["episode"]), int(data["stamp_ns"]))]
            if assignment == "all" or int(data.get("overlap", 1)) >= 2:
                who = list(annotators) if assignment == "all" else list(annotators[:2])
            else:
                who = [annotators[turn % len(annotators)]]
                turn += 1
            entry: dict[str, Any] = {"id": task_id, "data": data, "meta": task.get("meta", {})}
            entry["annotations"], entry["predictions"] = [], []
            for role, profile in [("a", p) for p in who] + ([("p", prediction)] if prediction else []):
                drawn, inst = draw(frame, scene, profile)
                if drawn_out is not None:
                    drawn_out[(task_id, profile.name if role == "a" else "prediction")] = drawn
                tag = f"t{task_id}{role}{profile.user_id}"
                brush, others = _regions(drawn, inst, profile, tag)
                h, w = drawn.labels.shape
                result: list[dict[str, Any]] = []
                if role == "a":
                    ann_id += 1
                    ann: dict[str, Any] = {
                        "id": ann_id,
                        "completed_by": profile.user_id,
                        "result": result,
                        "was_cancelled": False,
                        "ground_truth": False,
                        "created_at": stamp,
                        "updated_at": stamp,
                        "lead_time": 60.0,
                        "task": task_id,
                    }
                    entry["annotations"].append(ann)
                else:
                    ann = {"model_version": "synthetic-sam", "score": 0.9, "result": result, "task": task_id}
                    entry["predictions"].append(ann)
                for name, mask in brush:
                    pending.append((ann, tag, name, w, h))
                    masks.append(mask)
                result.extend(others)
            export.append(entry)
        for n, ((ann, tag, name, w, h), rle) in enumerate(zip(pending, codec.encode(masks), strict=True)):
            ann["result"].append(_brush(tag, n, name, rle, w, h))
    for entry in export:  # brush regions first, as Label Studio lists regions in drawing order
        for ann in entry["annotations"] + entry["predictions"]:
            ann["result"].sort(key=lambda r: 0 if r["type"] == "brushlabels" else 1)
    return export


def synthetic_dataset(
    out_dir: str | Path,
    *,
    frames: int = 20,
    every_k: int = 2,
    overlap: float = 0.2,
    seed: int = 0,
    episodes: int = 1,
    fps: float = 30.0,
    width: int = 640,
    height: int = 480,
    progress: bool = False,
) -> tuple[Path, dict[tuple[str, int], Any], SyntheticScene]:
    """A synthetic recording exported to a dataset (overlap marked): (dataset dir, ground truth, scene).

    Frame i views the scene from `orbit_pose(i / fps)`: a low `fps` spreads a few frames over the orbit.
    """
    from depth_annotation.dataset import ExportOptions, export_bags, write_synthetic_bag

    out = Path(out_dir)
    bags, truth = [], {}
    for e in range(episodes):
        bag = out / f"bag_{e}"
        rendered = write_synthetic_bag(
            bag,
            frames=frames,
            fps=fps,
            width=width,
            height=height,
            seed=seed,
            start_ns=1_700_000_000_000_000_000 + e * 10**12,
        )
        bags.append((bag, f"scene_{e}"))
        truth.update({(f"episode_{e}", int(stamp)): frame for stamp, frame in rendered})
    dataset = out / "dataset"
    export_bags(bags, ExportOptions(out_dir=dataset, every_k=every_k, exclude_flagged=False), progress=progress)
    if overlap > 0:
        mark_overlap(dataset, overlap, seed=seed)
    return dataset, truth, SyntheticScene(seed)


def load_tasks(dataset_dir: str | Path) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = json.loads((Path(dataset_dir) / TASKS_FILE).read_text())
    return tasks
