"""Validate imported annotations frame by frame, against the thresholds of `config.ValidationConfig`.

Per annotated frame:
- frames several annotators labelled: per-class IoU and Cohen's kappa between
  every pair, and keypoint agreement (same keypoint, distance in mm);
- every annotation: keypoint-to-surface distance and the mask-vs-depth MAD test.

A frame fails with one reason per failed check; failed frames go back to
annotation (`report.write_validation`). Each frame also gets a quality score in
[0, 1] — the worst of its min IoU, kappa, fraction of keypoint checks passed and
1 - its worst region's outlier fraction — that ranks the worst frames for review.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import ValidationConfig
from .keypoints3d import Keypoint3D, match_keypoints
from .ls_import import PREDICTION_PREFIX
from .metrics import class_iou, cohen_kappa, mask_depth_outliers, surface_distance_mm
from .store import UNLABELLED, DatasetFiles, EpisodeFrames, read_episodes


@dataclass
class PairResult:
    first: str
    second: str
    iou: dict[str, float]  # label name -> IoU (classes with enough pixels)
    iou_pixels: dict[str, int]  # label name -> union size
    kappa: float
    kappa_observed: float
    kappa_expected: float
    kappa_per_class: dict[str, float]
    keypoints: list[dict[str, Any]]  # name, distance_mm, threshold_mm, ok, reason


@dataclass
class FrameResult:
    episode: str
    frame_index: int
    stamp_ns: int
    scene_id: str
    sources: list[str]  # the annotators of the frame (predictions excluded)
    primary: str
    pairs: list[PairResult] = field(default_factory=list)
    surface: list[dict[str, Any]] = field(default_factory=list)  # annotator, name, distance_mm, ok, reason
    mask_regions: list[dict[str, Any]] = field(default_factory=list)  # annotator, label, pixels, outliers, ok, ...
    reasons: list[str] = field(default_factory=list)
    kinds: list[str] = field(
        default_factory=list
    )  # per reason: iou, kappa, keypoint_agreement, keypoint_surface, mask_depth
    score: float = 1.0
    per_annotator_score: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.reasons

    def fail(self, kind: str, reason: str) -> None:
        self.kinds.append(kind)
        self.reasons.append(reason)

    @property
    def key(self) -> str:
        return f"{self.episode}@{self.stamp_ns}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "episode": self.episode,
            "frame_index": self.frame_index,
            "stamp_ns": str(self.stamp_ns),
            "scene_id": self.scene_id,
            "annotators": self.sources,
            "label_image_from": self.primary,
            "passed": self.passed,
            "reasons": self.reasons,
            "failure_kinds": sorted(set(self.kinds)),
            "score": self.score,
            "per_annotator_score": self.per_annotator_score,
            "pairs": [
                {
                    "annotators": [p.first, p.second],
                    "iou": p.iou,
                    "iou_pixels": p.iou_pixels,
                    "kappa": p.kappa,
                    "kappa_observed": p.kappa_observed,
                    "kappa_expected": p.kappa_expected,
                    "kappa_per_class": p.kappa_per_class,
                    "keypoints": p.keypoints,
                }
                for p in self.pairs
            ],
            "keypoint_surface": self.surface,
            "mask_depth": self.mask_regions,
        }


@dataclass
class FrameData:
    """One annotated frame as read back from the dataset (what the checks and the report use)."""

    episode: EpisodeFrames
    frame_index: int
    depth_mm: np.ndarray
    labels: dict[str, np.ndarray]  # annotator -> label image (people only)
    primary: str
    keypoints: dict[str, list[Keypoint3D]]  # annotator -> keypoints
    qc_status: int | None
    outlier_masks: dict[str, np.ndarray] = field(default_factory=dict)  # annotator -> bool mask, set by the checks


def _keypoints_by_frame(g: Any) -> dict[int, dict[str, list[Keypoint3D]]]:
    out: dict[int, dict[str, list[Keypoint3D]]] = {}
    if "keypoints_3d" not in g:
        return out
    for row in g["keypoints_3d"][:]:
        ann = row["annotator"].decode() if isinstance(row["annotator"], bytes) else str(row["annotator"])
        name = row["name"].decode() if isinstance(row["name"], bytes) else str(row["name"])
        reason = row["reason"].decode() if isinstance(row["reason"], bytes) else str(row["reason"])
        kp = Keypoint3D(
            name, float(row["u"]), float(row["v"]), row["xyz"].astype(np.float64), int(row["valid_pixels"]), reason
        )
        out.setdefault(int(row["frame_index"]), {}).setdefault(ann, []).append(kp)
    return out


def iter_annotated_frames(h5: Any) -> Iterator[FrameData]:
    """Every annotated frame of every episode, with each annotator's label image and keypoints."""
    for name, ep in read_episodes(h5).items():
        g = h5[name]
        if "segmentation" not in g:
            continue
        seg, index = g["segmentation"], g["segmentation_index"][:]
        sources = [s.decode() if isinstance(s, bytes) else str(s) for s in g["segmentation_source"][:]]
        copies: dict[str, dict[int, int]] = {}
        if "annotations" in g:
            for grp in g["annotations"].values():
                src = str(grp.attrs["source"])
                if not src.startswith(PREDICTION_PREFIX):
                    copies[src] = {int(fi): row for row, fi in enumerate(grp["segmentation_index"][:])}
        kps = _keypoints_by_frame(g)
        qc = g["qc"]["status"][:] if "qc" in g and "status" in g["qc"] else None
        for row, fi in enumerate(index):
            fi = int(fi)
            labels = {
                src: np.asarray(g["annotations"][src.replace("/", "_")]["segmentation"][rows[fi]])
                for src, rows in copies.items()
                if fi in rows
            }
            if not labels:
                labels = {sources[row]: np.asarray(seg[row])}
            frame_kps = {a: k for a, k in kps.get(fi, {}).items() if not a.startswith(PREDICTION_PREFIX)}
            yield FrameData(
                ep,
                fi,
                np.asarray(g["depth"][fi]),
                labels,
                sources[row],
                frame_kps,
                int(qc[fi]) if qc is not None else None,
            )


class FrameValidator:
    def __init__(self, files: DatasetFiles, config: ValidationConfig) -> None:
        self.cfg = config
        self.ids = files.label_ids
        self.names = files.label_names
        missing = [
            n
            for n in (*config.keypoints.object_labels, *config.mask_depth.labels, *config.segmentation.ambiguous_labels)
            if n not in self.ids
        ]
        if missing:
            from .errors import ValidationConfigError

            raise ValidationConfigError(f"labels {sorted(set(missing))} are not in the dataset's taxonomy")
        self.scored = [i for i in sorted(self.names) if i != files.void_id]
        self.object_ids = [self.ids[n] for n in config.keypoints.object_labels]
        self.mad_ids = [self.ids[n] for n in config.mask_depth.labels]

    def label_name(self, c: int) -> str:
        return self.names.get(c, "unlabelled" if c == UNLABELLED else str(c))

    def iou_threshold(self, label: str) -> float:
        seg = self.cfg.segmentation
        return seg.iou_min_ambiguous if label in seg.ambiguous_labels else seg.iou_min

    def keypoint_threshold(self, name: str) -> float:
        kp = self.cfg.keypoints
        return kp.agreement_coarse_mm if name in kp.coarse_keypoints else kp.agreement_mm

    def pair(self, a: str, b: str, la: np.ndarray, lb: np.ndarray, valid: np.ndarray, fd: FrameData) -> PairResult:
        seg = self.cfg.segmentation
        ious = class_iou(la, lb, self.scored, valid)
        kappa = cohen_kappa(la, lb, valid)
        kept = {self.label_name(c): v for c, v in ious.items() if v[1] >= seg.min_class_pixels}
        kp_rows = []
        ka, kb = fd.keypoints.get(a, []), fd.keypoints.get(b, [])
        for p in match_keypoints(ka, kb):
            thr = self.keypoint_threshold(p.name)
            if p.first is None or p.second is None:
                who = b if p.first is None else a
                kp_rows.append(
                    {
                        "name": p.name,
                        "distance_mm": None,
                        "threshold_mm": thr,
                        "ok": False,
                        "reason": f"only {who} placed it",
                    }
                )
            elif not np.isfinite(p.distance_mm):
                kp_rows.append(
                    {
                        "name": p.name,
                        "distance_mm": None,
                        "threshold_mm": thr,
                        "ok": False,
                        "reason": "no depth at one of the clicks",
                    }
                )
            else:
                ok = p.distance_mm <= thr
                kp_rows.append(
                    {
                        "name": p.name,
                        "distance_mm": p.distance_mm,
                        "threshold_mm": thr,
                        "ok": ok,
                        "reason": "" if ok else f"{p.distance_mm:.1f} mm apart (limit {thr:g} mm)",
                    }
                )
        return PairResult(
            a,
            b,
            {k: v[0] for k, v in kept.items()},
            {k: v[1] for k, v in kept.items()},
            kappa.overall,
            kappa.observed,
            kappa.expected,
            {self.label_name(c): v for c, v in kappa.per_class.items()},
            kp_rows,
        )

    def validate(self, fd: FrameData) -> FrameResult:
        ep = fd.episode
        res = FrameResult(
            ep.name, fd.frame_index, int(ep.stamps_ns[fd.frame_index]), ep.scene_id, sorted(fd.labels), fd.primary
        )
        valid = fd.depth_mm > 0
        seg, kpc, md = self.cfg.segmentation, self.cfg.keypoints, self.cfg.mask_depth
        own: dict[str, list[float]] = {a: [] for a in fd.labels}
        shared: list[float] = []
        for a, b in itertools.combinations(sorted(fd.labels), 2):
            p = self.pair(a, b, fd.labels[a], fd.labels[b], valid, fd)
            res.pairs.append(p)
            for label, v in p.iou.items():
                thr = self.iou_threshold(label)
                if v < thr:
                    res.fail("iou", f"IoU {label} {v:.3f} < {thr:g} ({a} vs {b})")
            if np.isfinite(p.kappa) and p.kappa < seg.kappa_min:
                res.fail("kappa", f"kappa {p.kappa:.3f} < {seg.kappa_min:g} ({a} vs {b})")
            for row in p.keypoints:
                if not row["ok"]:
                    res.fail("keypoint_agreement", f"keypoint {row['name']}: {row['reason']} ({a} vs {b})")
            shared += [min(p.iou.values(), default=1.0), max(p.kappa, 0.0) if np.isfinite(p.kappa) else 1.0]
            if p.keypoints:
                shared.append(sum(r["ok"] for r in p.keypoints) / len(p.keypoints))
        for ann, labels in sorted(fd.labels.items()):
            checks = []
            for kp in fd.keypoints.get(ann, []):
                sd = surface_distance_mm(
                    kp.xyz,
                    kp.u,
                    kp.v,
                    labels,
                    fd.depth_mm,
                    ep.intrinsics,
                    self.object_ids,
                    radius=kpc.surface_window_px,
                )
                reason = sd.reason or kp.reason
                ok = not reason and sd.distance_mm <= kpc.surface_mm
                if not ok and not reason:
                    reason = f"{sd.distance_mm:.1f} mm from the object's depth surface (limit {kpc.surface_mm:g} mm)"
                res.surface.append(
                    {
                        "annotator": ann,
                        "name": kp.name,
                        "u": kp.u,
                        "v": kp.v,
                        "distance_mm": sd.distance_mm if np.isfinite(sd.distance_mm) else None,
                        "ok": ok,
                        "reason": reason,
                    }
                )
                checks.append(1.0 if ok else 0.0)
                if not ok:
                    res.fail("keypoint_surface", f"keypoint {kp.name} of {ann}: {reason}")
            if checks:
                own[ann].append(sum(checks) / len(checks))
            worst = 0.0
            outliers = np.zeros(labels.shape, bool)
            for region in mask_depth_outliers(
                labels,
                fd.depth_mm,
                self.mad_ids,
                k=md.mad_k,
                min_pixels=md.min_region_pixels,
                noise_sigma_at_1m_mm=md.noise_sigma_at_1m_mm,
            ):
                frac = region.outliers / region.pixels
                ok = not (frac > md.max_outlier_fraction and region.outliers >= md.min_outlier_pixels)
                label = self.names[region.label]
                res.mask_regions.append(
                    {
                        "annotator": ann,
                        "label": label,
                        "pixels": region.pixels,
                        "outliers": region.outliers,
                        "outlier_fraction": frac,
                        "median_mm": region.median_mm,
                        "sigma_mm": region.sigma_mm,
                        "bbox": list(region.bbox),
                        "ok": ok,
                    }
                )
                worst = max(worst, frac)
                outliers |= region.outlier_mask
                if not ok:
                    res.fail(
                        "mask_depth",
                        f"mask {label} of {ann}: {region.outliers} px ({frac:.1%}) outside its depth range "
                        f"{region.median_mm:.0f} ± {md.mad_k:g}·{region.sigma_mm:.1f} mm",
                    )
            fd.outlier_masks[ann] = outliers
            own[ann].append(1.0 - worst)
        for ann in fd.labels:
            res.per_annotator_score[ann] = min(own[ann] + shared, default=1.0)
        res.score = min(res.per_annotator_score.values(), default=1.0)
        return res


def validate_frames(
    h5: Any,
    files: DatasetFiles,
    config: ValidationConfig,
    on_frame: Callable[[FrameData, FrameResult], None] | None = None,
) -> list[FrameResult]:
    """Validate every annotated frame of an open dataset file."""
    validator = FrameValidator(files, config)
    out = []
    for fd in iter_annotated_frames(h5):
        r = validator.validate(fd)
        if on_frame is not None:
            on_frame(fd, r)
        out.append(r)
    return out
