"""`depth-annotation validate`: per-frame checks, dataset statistics, the report and the re-annotation tasks.

Written into `DIR/validation/` (each file atomically):
- `validation_report.json`: thresholds, every frame's metrics and reasons, the
  dataset statistics (label distribution and the 10x imbalance check, keypoint
  coverage of the workspace, depth-range coverage over 0.3-2.0 m, QC status mix),
  annotator-level scores, and the figures the HTML page holds;
- `validation_report.html`: histograms and the worst frames (RGB, label overlay
  with mask-depth outliers in magenta and keypoints, disagreement, depth);
- `reannotation_tasks.json`: the failed frames' tasks (Label Studio import format,
  the original task data plus the reasons in `meta`) to send back to annotators.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depth_annotation.common import NO_QC, atomic_io, colorize_depth, status_name

from .config import ValidationConfig, load_validation_config
from .errors import AnnotationDatasetError
from .overlap import TASKS_FILE
from .store import UNLABELLED, DatasetFiles, dataset_files
from .validation import FrameData, FrameResult, validate_frames

SCHEMA_VERSION = 1
OUT_DIR = "validation"
JSON_NAME, HTML_NAME, TASKS_NAME = "validation_report.json", "validation_report.html", "reannotation_tasks.json"
MAX_WORST_SHOWN = 12


@dataclass
class _Stats:
    """Dataset-level accumulators, fed one annotated frame at a time."""

    cfg: ValidationConfig
    files: DatasetFiles
    label_pixels: Counter[int] = field(default_factory=Counter)
    object_depth_hist: np.ndarray = field(default_factory=lambda: np.zeros(0))
    keypoint_depth_hist: np.ndarray = field(default_factory=lambda: np.zeros(0))
    keypoint_cells: np.ndarray = field(default_factory=lambda: np.zeros(0))
    keypoint_uv: list[tuple[float, float]] = field(default_factory=list)
    qc: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        lo, hi = self.cfg.dataset.depth_range_m
        self.edges = np.arange(lo, hi + 1e-9, self.cfg.dataset.depth_bin_m)
        if self.edges[-1] < hi - 1e-9:
            self.edges = np.append(self.edges, hi)
        self.object_depth_hist = np.zeros(self.edges.size - 1, np.int64)
        self.keypoint_depth_hist = np.zeros(self.edges.size - 1, np.int64)
        cols, rows = self.cfg.dataset.workspace_grid
        self.keypoint_cells = np.zeros((rows, cols), np.int64)
        ids = self.files.label_ids
        self.object_ids = np.array([ids[n] for n in self.cfg.mask_depth.labels], np.uint8)

    def add(self, fd: FrameData) -> None:
        labels = fd.labels[fd.primary] if fd.primary in fd.labels else next(iter(fd.labels.values()))
        counts = np.bincount(labels.ravel(), minlength=256)
        for c in self.files.label_names:
            if c != self.files.void_id:
                self.label_pixels[c] += int(counts[c])
        obj = np.isin(labels, self.object_ids) & (fd.depth_mm > 0)
        self.object_depth_hist += np.histogram(fd.depth_mm[obj] / 1000.0, self.edges)[0]
        ep = fd.episode
        cols, rows = self.cfg.dataset.workspace_grid
        for kps in fd.keypoints.values():
            for k in kps:
                if not np.all(np.isfinite(k.xyz)):
                    continue
                self.keypoint_depth_hist += np.histogram([k.xyz[2]], self.edges)[0]
                c = min(max(int(k.u / ep.width * cols), 0), cols - 1)
                r = min(max(int(k.v / ep.height * rows), 0), rows - 1)
                self.keypoint_cells[r, c] += 1
                self.keypoint_uv.append((k.u / ep.width, k.v / ep.height))
        self.qc[status_name(fd.qc_status) if fd.qc_status is not None else status_name(NO_QC)] += 1

    def summary(self) -> dict[str, Any]:
        d = self.cfg.dataset
        names = self.files.label_names
        pixels = {names[c]: n for c, n in sorted(self.label_pixels.items())}
        present = {k: v for k, v in pixels.items()}
        largest = max(present.values(), default=0)
        under = sorted(k for k, v in present.items() if v == 0 or largest / v > d.max_class_imbalance)
        total = sum(pixels.values())
        lo_edges = self.edges[:-1]
        bins = zip(lo_edges, self.edges[1:], self.object_depth_hist, strict=True)
        gaps = [f"{a:.1f}-{b:.1f} m" for a, b, n in bins if n == 0]
        occupied = int(np.count_nonzero(self.keypoint_cells))
        coverage = occupied / self.keypoint_cells.size
        flags = []
        if under:
            flags.append(
                f"labels under-represented by more than {d.max_class_imbalance:g}x the largest class: "
                + ", ".join(under)
            )
        if gaps:
            flags.append(f"no annotated object pixels at {len(gaps)} of {lo_edges.size} depth bins: {', '.join(gaps)}")
        if coverage < d.min_workspace_coverage:
            flags.append(
                f"keypoints cover {occupied} of {self.keypoint_cells.size} workspace cells "
                f"({coverage:.0%} < {d.min_workspace_coverage:.0%})"
            )
        return {
            "label_distribution": {
                "pixels": pixels,
                "fraction": {k: (v / total if total else 0.0) for k, v in pixels.items()},
                "imbalance_ratio": (largest / min(present.values())) if present and min(present.values()) else None,
                "under_represented": under,
                "unlabelled_pixels_excluded": True,
            },
            "depth_coverage": {
                "bin_edges_m": [round(float(e), 4) for e in self.edges],
                "object_pixels": self.object_depth_hist.tolist(),
                "keypoints": self.keypoint_depth_hist.tolist(),
                "empty_bins": gaps,
                "labels": list(self.cfg.mask_depth.labels),
            },
            "keypoint_coverage": {
                "grid_cols_rows": list(d.workspace_grid),
                "counts": self.keypoint_cells.tolist(),
                "occupied_fraction": coverage,
                "keypoints": len(self.keypoint_uv),
            },
            "qc_status": dict(sorted(self.qc.items())),
            "flags": flags,
        }


def _annotators(frames: list[FrameResult], shortfall: float) -> dict[str, Any]:
    scores: dict[str, list[float]] = {}
    for f in frames:
        for a, s in f.per_annotator_score.items():
            scores.setdefault(a, []).append(s)
    means = {a: float(np.mean(v)) for a, v in scores.items()}
    overall = float(np.mean(list(means.values()))) if means else float("nan")
    out = {}
    for a in sorted(means):
        flagged = bool(len(means) > 1 and means[a] < (1.0 - shortfall) * overall)
        out[a] = {
            "frames": len(scores[a]),
            "mean_score": means[a],
            "failed_frames": sum(1 for f in frames if a in f.sources and not f.passed),
            "re_review_batch": flagged,
        }
    return {"average_score": overall, "per_annotator": out}


# --- figures -----------------------------------------------------------------------------------


def _png_b64(image_rgb: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def _fig_b64(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figures(
    data: dict[str, Any], frames: list[FrameResult], keypoint_uv: list[tuple[float, float]]
) -> list[tuple[str, str, str]]:
    """(id, caption, base64 PNG) of each histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = data["config"]
    stats = data["dataset"]
    figs: list[tuple[str, str, str]] = []

    def new(title: str) -> tuple[Any, Any]:
        fig, ax = plt.subplots(figsize=(6.0, 3.0))
        ax.set_title(title, fontsize=10)
        return fig, ax

    dist = stats["label_distribution"]["pixels"]
    fig, ax = new("Label distribution (pixels, log scale)")
    names = list(dist)
    vals = [max(v, 1) for v in dist.values()]
    colors = ["tab:red" if n in stats["label_distribution"]["under_represented"] else "tab:blue" for n in names]
    ax.bar(names, vals, color=colors)
    ax.set_yscale("log")
    if vals:
        ax.axhline(max(vals) / cfg["dataset"]["max_class_imbalance"], color="k", ls="--", lw=1, label="largest / 10")
        ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    figs.append(
        ("fig-labels", "Label distribution; red: under-represented by more than the allowed ratio", _fig_b64(fig))
    )

    ious = [v for f in frames for p in f.pairs for v in p.iou.values()]
    kappas = [p.kappa for f in frames for p in f.pairs if np.isfinite(p.kappa)]
    fig, ax = new(f"Inter-annotator IoU per class ({len(ious)} values)")
    ax.hist(ious, bins=np.linspace(0, 1, 41), color="tab:green")
    ax.axvline(cfg["segmentation"]["iou_min"], color="r", ls="--", lw=1, label="threshold")
    ax.legend(fontsize=8)
    figs.append(("fig-iou", "IoU between annotators, per frame and class", _fig_b64(fig)))

    fig, ax = new(f"Cohen's kappa per frame ({len(kappas)} pairs)")
    ax.hist(kappas, bins=np.linspace(0, 1, 41), color="tab:purple")
    ax.axvline(cfg["segmentation"]["kappa_min"], color="r", ls="--", lw=1, label="threshold")
    ax.legend(fontsize=8)
    figs.append(("fig-kappa", "Chance-corrected pixel agreement", _fig_b64(fig)))

    agree = [r["distance_mm"] for f in frames for p in f.pairs for r in p.keypoints if r["distance_mm"] is not None]
    surf = [r["distance_mm"] for f in frames for r in f.surface if r["distance_mm"] is not None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.0, 3.0))
    ax1.hist(agree, bins=30, color="tab:orange")
    ax1.axvline(cfg["keypoints"]["agreement_mm"], color="r", ls="--", lw=1)
    ax1.set_title(f"Keypoint agreement, mm ({len(agree)})", fontsize=10)
    ax2.hist(surf, bins=30, color="tab:brown")
    ax2.axvline(cfg["keypoints"]["surface_mm"], color="r", ls="--", lw=1)
    ax2.set_title(f"Keypoint to surface, mm ({len(surf)})", fontsize=10)
    figs.append(
        ("fig-keypoints", "Keypoint agreement between annotators and distance to the depth surface", _fig_b64(fig))
    )

    fracs = [r["outlier_fraction"] * 100 for f in frames for r in f.mask_regions]
    fig, ax = new(f"Mask pixels outside the object's depth range, % ({len(fracs)} regions)")
    ax.hist(fracs, bins=30, color="tab:pink")
    ax.axvline(cfg["mask_depth"]["max_outlier_fraction"] * 100, color="r", ls="--", lw=1)
    figs.append(("fig-mask-depth", "MAD test: region pixels whose depth leaves median ± k·sigma", _fig_b64(fig)))

    cov = stats["depth_coverage"]
    edges = np.asarray(cov["bin_edges_m"])
    fig, ax = new("Depth-range coverage of annotated objects")
    ax.bar(edges[:-1], cov["object_pixels"], width=np.diff(edges), align="edge", color="tab:cyan", label="object px")
    for a, b, n in zip(edges[:-1], edges[1:], cov["object_pixels"], strict=True):
        if n == 0:
            ax.axvspan(a, b, color="r", alpha=0.12)
    ax.set_xlabel("depth, m")
    ax.legend(fontsize=8)
    figs.append(("fig-depth-coverage", "Object pixels per depth bin; red: no annotations at that range", _fig_b64(fig)))

    kc = stats["keypoint_coverage"]
    fig, ax = plt.subplots(figsize=(4.0, 3.0))
    ax.imshow(np.asarray(kc["counts"]), cmap="viridis", extent=(0, 1, 1, 0))
    uv = np.asarray(keypoint_uv, np.float64).reshape(-1, 2)
    ax.scatter(uv[:, 0], uv[:, 1], s=4, c="w")
    ax.set_title(f"Keypoint coverage: {kc['occupied_fraction']:.0%} of cells", fontsize=10)
    figs.append(
        ("fig-keypoint-coverage", "Keypoints per image cell (the workspace as the camera sees it)", _fig_b64(fig))
    )

    qc = stats["qc_status"]
    per_ann = data["annotators"]["per_annotator"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.0, 3.0))
    ax1.bar(list(qc), list(qc.values()), color="tab:gray")
    ax1.set_title("QC status of annotated frames", fontsize=10)
    ax2.bar(list(per_ann), [v["mean_score"] for v in per_ann.values()], color="tab:olive")
    ax2.set_ylim(0, 1)
    ax2.set_title("Mean quality score per annotator", fontsize=10)
    ax2.tick_params(axis="x", labelrotation=30, labelsize=8)
    figs.append(("fig-qc-annotators", "QC status mix and annotator-level quality", _fig_b64(fig)))
    return figs


def _overlay(rgb: np.ndarray, labels: np.ndarray, colors: dict[int, tuple[int, int, int]]) -> np.ndarray:
    lut = np.zeros((256, 3), np.uint8)
    for c, col in colors.items():
        lut[c] = col
    lut[UNLABELLED] = (255, 255, 255)
    return np.asarray(0.45 * rgb + 0.55 * lut[labels], np.uint8)


def _frame_panels(
    fd: FrameData,
    result: FrameResult,
    color: np.ndarray,
    colors: dict[int, tuple[int, int, int]],
    depth_range: tuple[float, float],
) -> np.ndarray:
    """RGB | label overlay + outliers (magenta) + keypoints | disagreement | depth, side by side."""
    primary = fd.labels.get(fd.primary, next(iter(fd.labels.values())))
    over = _overlay(color, primary, colors)
    for ann, mask in fd.outlier_masks.items():
        if ann == fd.primary or len(fd.outlier_masks) == 1:
            over[mask] = (255, 0, 255)
    for row in result.surface:
        cv2.circle(over, (int(round(row["u"])), int(round(row["v"]))), 5, (0, 255, 0) if row["ok"] else (255, 0, 0), 2)
    disagree = np.zeros_like(color)
    if len(fd.labels) > 1:
        imgs = list(fd.labels.values())
        diff = np.zeros(primary.shape, bool)
        for other in imgs[1:]:
            diff |= other != imgs[0]
        disagree[diff] = (255, 255, 255)
    else:
        disagree[:] = (40, 40, 40)
    lo, hi = depth_range
    depth = colorize_depth(fd.depth_mm, min_mm=lo * 1000, max_mm=hi * 1000)
    panels = np.concatenate([color, over, disagree, depth], axis=1)
    scale = 320 / color.shape[1]
    return cv2.resize(panels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def render_html(data: dict[str, Any], figures: list[tuple[str, str, str]], worst: list[tuple[FrameResult, str]]) -> str:
    esc = html.escape
    s = data["summary"]
    flags = "".join(f"<li>{esc(f)}</li>" for f in data["dataset"]["flags"]) or "<li>none</li>"
    figs = "\n".join(
        f'<figure id="{fid}" class="figure"><img alt="{esc(cap)}" src="data:image/png;base64,{b64}">'
        f"<figcaption>{esc(cap)}</figcaption></figure>"
        for fid, cap, b64 in figures
    )
    worst_html = "\n".join(
        f'<figure class="worst-frame" id="worst-{i}"><img alt="{esc(r.key)}" src="data:image/png;base64,{b64}">'
        f"<figcaption><b>{esc(r.key)}</b> score {r.score:.3f} ({esc(', '.join(r.sources))}): "
        f"{esc('; '.join(r.reasons[:6]) or 'passed')}</figcaption></figure>"
        for i, (r, b64) in enumerate(worst)
    )
    failed = "".join(
        f"<tr><td>{esc(f['episode'])}</td><td>{esc(f['stamp_ns'])}</td><td>{f['score']:.3f}</td>"
        f"<td>{esc('; '.join(f['reasons']))}</td></tr>"
        for f in data["frames"]
        if not f["passed"]
    )
    annot = "".join(
        f"<tr><td>{esc(a)}</td><td>{v['frames']}</td><td>{v['mean_score']:.3f}</td><td>{v['failed_frames']}</td>"
        f"<td>{'re-review the batch' if v['re_review_batch'] else ''}</td></tr>"
        for a, v in data["annotators"]["per_annotator"].items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Annotation validation report</title>
<style>
body{{font-family:sans-serif;margin:1.5em;max-width:1400px}}
figure{{display:inline-block;margin:.5em;vertical-align:top}}
figcaption{{font-size:.85em;max-width:640px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:.85em}} .worst-frame img{{max-width:1280px}}
</style></head>
<body data-figures-expected="{len(figures)}" data-worst-expected="{len(worst)}">
<h1>Annotation validation report</h1>
<p>{esc(data["dataset_dir"])} — {s["frames"]} annotated frames,
{s["frames_with_several_annotators"]} with several annotators;
<b>{s["failed"]}</b> failed and go back for re-annotation ({esc(data["files"]["reannotation_tasks"])}).
Median IoU {_fmt(s["median_iou"])}, median kappa {_fmt(s["median_kappa"])},
keypoint agreement p95 {_fmt(s["keypoint_agreement_p95_mm"])} mm,
keypoint-to-surface p95 {_fmt(s["keypoint_surface_p95_mm"])} mm.</p>
<h2>Dataset flags</h2><ul>{flags}</ul>
<h2>Figures</h2>
{figs}
<h2>Worst frames</h2><p>RGB | labels (magenta: pixels outside the object's depth range;
circles: keypoints, red = failed) | disagreement between annotators | depth</p>
{worst_html or "<p>no annotated frames</p>"}
<h2>Annotators</h2><table>
<tr><th>annotator</th><th>frames</th><th>mean score</th><th>failed frames</th><th></th></tr>{annot}</table>
<h2>Failed frames</h2><table><tr><th>episode</th><th>stamp</th><th>score</th><th>reasons</th></tr>
{failed or "<tr><td colspan=4>none</td></tr>"}</table>
<script>
window.addEventListener("load", () => {{
  const ok = (sel) => [...document.querySelectorAll(sel)].filter((i) => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.figuresLoaded = ok(".figure img");
  document.body.dataset.worstLoaded = ok(".worst-frame img");
}});
</script>
</body></html>
"""


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


@dataclass
class ValidationSummary:
    """What `validate_dataset` found and wrote."""

    frames: list[FrameResult]
    report: dict[str, Any]
    paths: dict[str, Path]

    @property
    def failed(self) -> list[FrameResult]:
        return [f for f in self.frames if not f.passed]


def validate_dataset(
    dataset_dir: str | Path, config: ValidationConfig | str | Path | None = None, *, out_dir: str | Path | None = None
) -> ValidationSummary:
    """Validate a dataset's imported annotations and write the report and the re-annotation tasks."""
    from depth_annotation.dataset import open_h5

    files = dataset_files(dataset_dir)
    cfg = config if isinstance(config, ValidationConfig) else load_validation_config(config)
    out = Path(out_dir) if out_dir else files.root / OUT_DIR
    stats = _Stats(cfg, files)
    t0 = time.perf_counter()
    with open_h5(files.h5) as h5:
        if not any("segmentation" in h5[k] for k in h5 if k.startswith("episode_")):
            raise AnnotationDatasetError(
                f"{files.h5}: no imported annotations (run `depth-annotation annotations import`)"
            )
        frames = validate_frames(h5, files, cfg, on_frame=lambda fd, r: stats.add(fd))
        t_validate = time.perf_counter() - t0
        data = _report_data(files, cfg, frames, stats, out)
        n_worst = min(MAX_WORST_SHOWN, max(1, int(np.ceil(cfg.dataset.worst_fraction * len(frames))))) if frames else 0
        worst_ranked = sorted(frames, key=lambda f: (f.score, f.key))[:n_worst]
        colors = {
            int(x["id"]): (int(x["color"][0]), int(x["color"][1]), int(x["color"][2])) for x in files.taxonomy["labels"]
        }
        worst = []
        wanted = {(r.episode, r.frame_index): r for r in worst_ranked}
        from .validation import FrameValidator, iter_annotated_frames

        validator = FrameValidator(files, cfg)
        for fd in iter_annotated_frames(h5):
            r = wanted.get((fd.episode.name, fd.frame_index))
            if r is None:
                continue
            validator.validate(fd)  # fills the outlier masks for the picture
            color = np.asarray(h5[fd.episode.name]["color"][fd.frame_index])
            worst.append((r, _png_b64(_frame_panels(fd, r, color, colors, cfg.dataset.depth_range_m))))
        worst.sort(key=lambda x: (x[0].score, x[0].key))
    data["worst_frames"] = [r.key for r, _ in worst]
    figures = _figures(data, frames, stats.keypoint_uv)
    data["figures"] = [fid for fid, _, _ in figures]
    data["seconds"] = {"validate": t_validate, "total": time.perf_counter() - t0}
    paths = {"json": out / JSON_NAME, "html": out / HTML_NAME, "tasks": out / TASKS_NAME}
    atomic_io.write_json(paths["tasks"], _reannotation_tasks(files, frames))
    atomic_io.write_text(paths["html"], render_html(data, figures, worst))
    atomic_io.write_json(paths["json"], data)
    return ValidationSummary(frames, data, paths)


def _report_data(
    files: DatasetFiles, cfg: ValidationConfig, frames: list[FrameResult], stats: _Stats, out: Path
) -> dict[str, Any]:
    ious = [v for f in frames for p in f.pairs for v in p.iou.values()]
    kappas = [p.kappa for f in frames for p in f.pairs if np.isfinite(p.kappa)]
    agree = [r["distance_mm"] for f in frames for p in f.pairs for r in p.keypoints if r["distance_mm"] is not None]
    surf = [r["distance_mm"] for f in frames for r in f.surface if r["distance_mm"] is not None]
    reasons = Counter(k for f in frames for k in f.kinds)
    return {
        "schema_version": SCHEMA_VERSION,
        "dataset_dir": str(files.root),
        "taxonomy_version": files.taxonomy_version,
        "config": cfg.to_dict(),
        "summary": {
            "frames": len(frames),
            "frames_with_several_annotators": sum(1 for f in frames if f.pairs),
            "passed": sum(1 for f in frames if f.passed),
            "failed": sum(1 for f in frames if not f.passed),
            "median_iou": _pct(ious, 50),
            "min_iou": min(ious) if ious else None,
            "median_kappa": _pct(kappas, 50),
            "min_kappa": min(kappas) if kappas else None,
            "keypoint_pairs": len(agree),
            "keypoint_agreement_p95_mm": _pct(agree, 95),
            "keypoints_checked_on_surface": len(surf),
            "keypoint_surface_p95_mm": _pct(surf, 95),
            "mask_regions_failed": sum(1 for f in frames for r in f.mask_regions if not r["ok"]),
            "failure_kinds": dict(reasons.most_common()),
        },
        "dataset": stats.summary(),
        "annotators": _annotators(frames, cfg.dataset.annotator_shortfall),
        "frames": [f.to_dict() for f in frames],
        "files": {
            "reannotation_tasks": str((out / TASKS_NAME).relative_to(files.root))
            if out.is_relative_to(files.root)
            else str(out / TASKS_NAME),
            "html": HTML_NAME,
        },
    }


def _reannotation_tasks(files: DatasetFiles, frames: list[FrameResult]) -> list[dict[str, Any]]:
    """Label Studio tasks of the failed frames: the exported task data, the reasons in `meta`."""
    tasks_path = files.root / TASKS_FILE
    by_key: dict[str, dict[str, Any]] = {}
    if tasks_path.exists():
        for t in json.loads(tasks_path.read_text()):
            by_key[f"{t['data'].get('episode')}@{t['data'].get('stamp_ns')}"] = t
    out = []
    for f in frames:
        if f.passed:
            continue
        base = by_key.get(f.key)
        data = (
            dict(base["data"]) if base else {"episode": f.episode, "stamp_ns": str(f.stamp_ns), "scene_id": f.scene_id}
        )
        meta = dict(base.get("meta", {})) if base else {}
        meta.update({"reannotation_reasons": f.reasons, "previous_annotators": f.sources, "quality_score": f.score})
        out.append({"data": data, "meta": meta})
    return out
