"""Validation thresholds: `config/annotation_validation.yaml` (the guide's numbers as defaults).

The dataclass defaults equal the shipped file, so a missing file still validates
with the guide's thresholds; a file may set any subset. An unknown key (a typo),
a wrong type or a value out of range is a `ValidationConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ValidationConfigError


@dataclass(frozen=True)
class SegmentationThresholds:
    iou_min: float = 0.85
    iou_min_ambiguous: float = 0.70
    ambiguous_labels: tuple[str, ...] = ()
    min_class_pixels: int = 50
    kappa_min: float = 0.80


@dataclass(frozen=True)
class KeypointThresholds:
    agreement_mm: float = 5.0
    agreement_coarse_mm: float = 15.0
    coarse_keypoints: tuple[str, ...] = ("rim_center", "base_center")
    surface_mm: float = 2.0
    surface_window_px: int = 3
    object_labels: tuple[str, ...] = ("target_object", "distractor_object")


@dataclass(frozen=True)
class MaskDepthThresholds:
    labels: tuple[str, ...] = ("target_object", "distractor_object", "gripper", "robot_arm")
    mad_k: float = 5.0
    noise_sigma_at_1m_mm: float = 2.0
    min_region_pixels: int = 50
    max_outlier_fraction: float = 0.01
    min_outlier_pixels: int = 10


@dataclass(frozen=True)
class DatasetThresholds:
    max_class_imbalance: float = 10.0
    depth_range_m: tuple[float, float] = (0.3, 2.0)
    depth_bin_m: float = 0.1
    workspace_grid: tuple[int, int] = (4, 4)
    min_workspace_coverage: float = 0.5
    worst_fraction: float = 0.05
    annotator_shortfall: float = 0.2


@dataclass(frozen=True)
class ValidationConfig:
    segmentation: SegmentationThresholds = field(default_factory=SegmentationThresholds)
    keypoints: KeypointThresholds = field(default_factory=KeypointThresholds)
    mask_depth: MaskDepthThresholds = field(default_factory=MaskDepthThresholds)
    dataset: DatasetThresholds = field(default_factory=DatasetThresholds)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# key -> (low, high) inclusive bounds for numbers
_RANGES: dict[str, tuple[float, float]] = {
    "iou_min": (0, 1),
    "iou_min_ambiguous": (0, 1),
    "kappa_min": (-1, 1),
    "min_class_pixels": (1, 1e9),
    "agreement_mm": (0, 1e4),
    "agreement_coarse_mm": (0, 1e4),
    "surface_mm": (0, 1e4),
    "surface_window_px": (1, 50),
    "mad_k": (0.5, 100),
    "noise_sigma_at_1m_mm": (0, 100),
    "min_region_pixels": (1, 1e9),
    "max_outlier_fraction": (0, 1),
    "min_outlier_pixels": (0, 1e9),
    "max_class_imbalance": (1, 1e9),
    "depth_bin_m": (0.001, 10),
    "min_workspace_coverage": (0, 1),
    "worst_fraction": (0, 1),
    "annotator_shortfall": (0, 1),
}


def _coerce(path: str, key: str, value: Any, default: Any) -> Any:
    where = f"{path}: {key}"
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValidationConfigError(f"{where} must be a list, got {value!r}")
        items = list(value)
        if default and isinstance(default[0], (int, float)) and not isinstance(default[0], bool):
            if len(items) != len(default):
                raise ValidationConfigError(f"{where} must have {len(default)} numbers, got {value!r}")
            kind = type(default[0])
            try:
                return tuple(kind(v) for v in items)
            except (TypeError, ValueError):
                raise ValidationConfigError(f"{where} must be numbers, got {value!r}") from None
        if not all(isinstance(v, str) for v in items):
            raise ValidationConfigError(f"{where} must be a list of names, got {value!r}")
        return tuple(items)
    if isinstance(default, bool) or isinstance(value, bool):
        raise ValidationConfigError(f"{where} must be a number, got {value!r}")
    if isinstance(default, int) and not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
        raise ValidationConfigError(f"{where} must be an integer, got {value!r}")
    if not isinstance(value, (int, float)):
        raise ValidationConfigError(f"{where} must be a number, got {value!r}")
    number = type(default)(value)
    lo, hi = _RANGES.get(key.rsplit(".", 1)[-1], (-float("inf"), float("inf")))
    if not lo <= number <= hi:
        raise ValidationConfigError(f"{where} = {value} is outside [{lo:g}, {hi:g}]")
    return number


def config_from_dict(doc: dict[str, Any], path: str = "<config>") -> ValidationConfig:
    base = ValidationConfig()
    sections = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    unknown = set(doc) - set(sections)
    if unknown:
        raise ValidationConfigError(f"{path}: unknown section(s) {sorted(unknown)}; known: {sorted(sections)}")
    built = {}
    for name, default in sections.items():
        given = doc.get(name) or {}
        if not isinstance(given, dict):
            raise ValidationConfigError(f"{path}: {name} must be a mapping")
        keys = {f.name for f in dataclasses.fields(default)}
        bad = set(given) - keys
        if bad:
            raise ValidationConfigError(f"{path}: unknown key(s) {sorted(bad)} in {name}; known: {sorted(keys)}")
        values = {k: _coerce(path, f"{name}.{k}", v, getattr(default, k)) for k, v in given.items()}
        built[name] = dataclasses.replace(default, **values)
    cfg = ValidationConfig(**built)
    lo, hi = cfg.dataset.depth_range_m
    if not 0 <= lo < hi:
        raise ValidationConfigError(f"{path}: dataset.depth_range_m must be [low, high] with 0 <= low < high")
    if min(cfg.dataset.workspace_grid) < 1:
        raise ValidationConfigError(f"{path}: dataset.workspace_grid must be two positive integers")
    return cfg


def default_config_path() -> Path | None:
    """config/annotation_validation.yaml of a checkout or an installed share/ directory."""
    here = Path(__file__).resolve()
    for cand in (
        here.parents[2] / "config" / "annotation_validation.yaml",
        Path(sys.prefix) / "share" / "depth_annotation" / "config" / "annotation_validation.yaml",
    ):
        if cand.exists():
            return cand
    return None


def load_validation_config(path: str | Path | None = None) -> ValidationConfig:
    """The thresholds in `path` (default: the shipped config file; the built-in defaults if there is none)."""
    import yaml

    chosen = Path(path) if path else default_config_path()
    if chosen is None:
        return ValidationConfig()
    try:
        doc = yaml.safe_load(chosen.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValidationConfigError(f"{chosen}: cannot read ({exc})") from None
    if not isinstance(doc, dict):
        raise ValidationConfigError(f"{chosen}: expected a mapping of sections")
    return config_from_dict(doc, str(chosen))
