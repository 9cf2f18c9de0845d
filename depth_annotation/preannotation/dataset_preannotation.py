"""Pre-annotate an exported dataset: every Label Studio task gets the geometric proposal as a prediction.

Reads `annotation/label_studio_tasks.json` (written by `export`), finds each
task's frame in `export/dataset.h5` by episode and stamp, runs the geometric
pre-annotation on its aligned depth (+ colour for the optional hue rule) with
the episode's intrinsics, encodes every region with Label Studio's RLE, and
writes (crash-safe)

- `annotation/label_studio_tasks_preannotated.json`: the same tasks, each with
  `predictions` (import this file into Label Studio instead of the plain one);
- `annotation/preannotation_report.json`: per task the regions (label, score,
  pixels, centroid, extent, height), notes, and the settings used.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depth_annotation.common import Intrinsics, Taxonomy, TaxonomyError, atomic_io, load_taxonomy
from depth_annotation.dataset import open_h5

from .errors import PreannotationConfigError, PreannotationError
from .geometric import GeometricConfig, GeometricResult, preannotate_frame
from .labelstudio_predictions import MODEL_VERSION, BrushRleEncoder, brush_target, frame_prediction
from .sam import SamBackend

TASKS = "annotation/label_studio_tasks.json"
LABEL_CONFIG = "annotation/label_config.xml"
OUTPUT_TASKS = "annotation/label_studio_tasks_preannotated.json"
REPORT = "annotation/preannotation_report.json"
BATCH_FRAMES = 32  # frames whose masks go to the Label Studio encoder in one call


@dataclass
class PreannotationReport:
    """What `preannotate_dataset` did: counts, timing, where the files are."""

    tasks: int
    regions: dict[str, int]
    mean_score: dict[str, float]
    geometric_ms_per_frame: float
    encode_ms_per_frame: float
    model_version: str
    sam_ms_per_frame: float | None
    untrained: bool
    tasks_file: Path
    report_file: Path
    notes: list[str] = field(default_factory=list)


def load_preannotation_config(path: str | Path) -> GeometricConfig:
    """`geometric:` settings from a YAML file (config/preannotation.yaml); unknown keys are refused."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PreannotationConfigError(f"cannot read pre-annotation config {path}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("geometric", {}), dict):
        raise PreannotationConfigError(f"{path}: expected a mapping with a `geometric:` section")
    try:
        return GeometricConfig.from_dict(doc.get("geometric") or {})
    except PreannotationConfigError as exc:
        raise PreannotationConfigError(f"{path}: {exc}") from None


def episode_intrinsics(group: Any) -> Intrinsics:
    """An exported episode's intrinsics from its K, D and size attributes."""
    k = np.asarray(group["K"])
    return Intrinsics(
        int(group.attrs["width"]),
        int(group.attrs["height"]),
        float(k[0, 0]),
        float(k[1, 1]),
        float(k[0, 2]),
        float(k[1, 2]),
        str(group.attrs.get("distortion_model", "plumb_bob")),
        tuple(float(v) for v in np.asarray(group["D"]).ravel()),
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PreannotationError(f"{path} not found: export the dataset first (depth-annotation export)") from None
    except json.JSONDecodeError as exc:
        raise PreannotationError(f"{path}: not valid JSON ({exc})") from None


def _frames(h5: Any, tasks: list[dict[str, Any]]) -> Iterator[tuple[int, np.ndarray, np.ndarray, Intrinsics]]:
    """(task index, depth mm, colour, intrinsics) per task, located by episode and stamp."""
    stamps: dict[str, np.ndarray] = {}
    intrinsics: dict[str, Intrinsics] = {}
    for i, task in enumerate(tasks):
        data = task.get("data", {})
        episode, stamp = data.get("episode"), data.get("stamp_ns")
        if episode not in h5:
            raise PreannotationError(f"task {i}: episode {episode!r} is not in the dataset")
        if episode not in stamps:
            stamps[episode] = np.asarray(h5[episode]["timestamps_ns"])
            intrinsics[episode] = episode_intrinsics(h5[episode])
        found = np.flatnonzero(stamps[episode] == int(stamp))
        if found.size != 1:
            raise PreannotationError(f"task {i}: {episode} has no frame stamped {stamp}")
        index = int(found[0])
        yield i, np.asarray(h5[episode]["depth"][index]), np.asarray(h5[episode]["color"][index]), intrinsics[episode]


def preannotate_dataset(
    dataset_dir: str | Path,
    *,
    config: GeometricConfig | None = None,
    labelstudio_python: str | Path | None = None,
    sam: SamBackend | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> PreannotationReport:
    """Write Label Studio predictions for every exported task (see the module docstring).

    With `sam`, each frame's object and robot regions are refined by Segment Anything.
    """
    root = Path(dataset_dir)
    config = config or GeometricConfig()
    config.validate()
    tasks = _read_json(root / TASKS)
    if not isinstance(tasks, list):
        raise PreannotationError(f"{root / TASKS}: expected a list of tasks")
    info = _read_json(root / "dataset_info.json")
    try:
        taxonomy: Taxonomy = load_taxonomy(root / "taxonomy.json")
    except TaxonomyError as exc:
        raise PreannotationError(str(exc)) from None
    try:
        target = brush_target((root / LABEL_CONFIG).read_text())
    except FileNotFoundError:
        raise PreannotationError(f"{root / LABEL_CONFIG} not found: export the dataset first") from None
    encoder = BrushRleEncoder(labelstudio_python)
    h5_path = root / info.get("files", {}).get("hdf5", "export/dataset.h5")
    out_tasks: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    geometric_s = encode_s = 0.0
    batch: list[tuple[int, GeometricResult]] = []
    version = sam.model_version if sam is not None else MODEL_VERSION
    background_id = next((label.id for label in taxonomy.labels if label.name == "background"), 0)
    sam_s = 0.0

    def flush() -> None:
        nonlocal encode_s
        t0 = time.perf_counter()
        rles = encoder.encode([r.mask(region) for _, r in batch for region in r.regions])
        encode_s += time.perf_counter() - t0
        start = 0
        for i, result in batch:
            n = len(result.regions)
            task = dict(tasks[i])
            task["predictions"] = [frame_prediction(result, rles[start : start + n], target, model_version=version)]
            start += n
            out_tasks.append(task)
        batch.clear()

    try:
        h5 = open_h5(h5_path)
    except OSError as exc:
        raise PreannotationError(f"{h5_path}: cannot open ({exc})") from None
    with h5:
        for i, depth, color, intr in _frames(h5, tasks):
            t0 = time.perf_counter()
            result = preannotate_frame(depth, intr, color, config=config, taxonomy=taxonomy)
            geometric_s += time.perf_counter() - t0
            if sam is not None:
                t0 = time.perf_counter()
                result = sam.refine(color, depth, result, background_id=background_id)
                sam_s += time.perf_counter() - t0
            data = tasks[i]["data"]
            records.append(
                {
                    "task": i,
                    "episode": data["episode"],
                    "stamp_ns": str(data["stamp_ns"]),
                    "regions": [r.to_dict() for r in result.regions],
                    "notes": result.notes,
                }
            )
            batch.append((i, result))
            if len(batch) >= BATCH_FRAMES:
                flush()
            if on_frame is not None:
                on_frame(len(records))
        if batch:
            flush()
    counts: Counter[str] = Counter()
    scores: dict[str, list[float]] = {}
    for rec in records:
        for reg in rec["regions"]:
            counts[reg["label"]] += 1
            scores.setdefault(reg["label"], []).append(reg["score"])
    n = max(1, len(records))
    report = PreannotationReport(
        tasks=len(records),
        regions=dict(sorted(counts.items())),
        mean_score={k: round(float(np.mean(v)), 4) for k, v in sorted(scores.items())},
        geometric_ms_per_frame=1000.0 * geometric_s / n,
        encode_ms_per_frame=1000.0 * encode_s / n,
        model_version=version,
        sam_ms_per_frame=1000.0 * sam_s / n if sam is not None else None,
        untrained=bool(sam is not None and sam.untrained),
        tasks_file=root / OUTPUT_TASKS,
        report_file=root / REPORT,
        notes=[] if records else ["the dataset has no annotation tasks"],
    )
    # Compact: an RLE is thousands of numbers, one per line in indented JSON.
    atomic_io.write_text(root / OUTPUT_TASKS, json.dumps(out_tasks, separators=(",", ":")) + "\n")
    summary = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(report).items()}
    atomic_io.write_json(
        root / REPORT,
        {
            "schema_version": 1,
            "model_version": version,
            "sam": None
            if sam is None
            else {"model": sam.config.model, "prompt": sam.config.prompt, "untrained": sam.untrained},
            "labelstudio_encoder": str(encoder.python),
            "config": asdict(config),
            "summary": summary,
            "frames": records,
        },
    )
    return report
