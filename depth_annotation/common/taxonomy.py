"""The annotation taxonomy: label ids, names and display colours.

The default is the guide's manipulation taxonomy. `void` (id 0) marks pixels with
no valid depth, which annotators are not asked to label. Versioned from day one:
a dataset records the taxonomy version it was labelled with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import TaxonomyError

TAXONOMY_VERSION = "1.0.0"


@dataclass(frozen=True)
class Label:
    id: int
    name: str
    color: tuple[int, int, int]  # RGB display colour
    description: str = ""


DEFAULT_LABELS: tuple[Label, ...] = (
    Label(0, "void", (0, 0, 0), "no valid depth (sensor returned zero); not annotated"),
    Label(1, "table_surface", (160, 120, 80), "the supporting table top"),
    Label(2, "target_object", (230, 60, 60), "the object the task manipulates"),
    Label(3, "distractor_object", (60, 120, 230), "other objects on the table"),
    Label(4, "gripper", (250, 200, 40), "the robot's gripper / end effector"),
    Label(5, "robot_arm", (150, 80, 200), "robot links other than the gripper"),
    Label(6, "background", (110, 110, 110), "everything else: walls, floor, far scene"),
)

LABEL_IDS: dict[str, int] = {label.name: label.id for label in DEFAULT_LABELS}

# Keypoints per object category (3D, in the camera frame), from the guide.
KEYPOINTS: dict[str, tuple[str, ...]] = {
    "mug": ("handle_top", "handle_bottom", "rim_center", "base_center"),
}


@dataclass(frozen=True)
class Taxonomy:
    version: str
    labels: tuple[Label, ...]
    keypoints: dict[str, tuple[str, ...]]

    @property
    def void_id(self) -> int:
        return next(label.id for label in self.labels if label.name == "void")

    def to_dict(self) -> dict[str, Any]:
        """The `taxonomy.json` content."""
        return {
            "schema_version": 1,
            "taxonomy_version": self.version,
            "void_id": self.void_id,
            "labels": [
                {"id": label.id, "name": label.name, "color": list(label.color), "description": label.description}
                for label in self.labels
            ],
            "keypoints": {k: list(v) for k, v in self.keypoints.items()},
        }


DEFAULT_TAXONOMY = Taxonomy(TAXONOMY_VERSION, DEFAULT_LABELS, KEYPOINTS)


def _rgb(color: Any) -> tuple[int, int, int]:
    r, g, b = (int(c) for c in color)
    return r, g, b


def load_taxonomy(path: str | Path) -> Taxonomy:
    """A taxonomy YAML (see config/taxonomy.yaml): ids unique, a `void` label required."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text())
        labels = tuple(
            Label(int(x["id"]), str(x["name"]), _rgb(x["color"]), str(x.get("description", ""))) for x in doc["labels"]
        )
        keypoints = {k: tuple(v) for k, v in (doc.get("keypoints") or {}).items()}
        version = str(doc["taxonomy_version"])
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise TaxonomyError(f"bad taxonomy file {path}: {exc}") from None
    ids = [label.id for label in labels]
    if len(set(ids)) != len(ids) or len({label.name for label in labels}) != len(labels):
        raise TaxonomyError(f"bad taxonomy file {path}: label ids and names must be unique")
    if "void" not in {label.name for label in labels}:
        raise TaxonomyError(f"bad taxonomy file {path}: a 'void' label (no depth) is required")
    return Taxonomy(version, labels, keypoints)


def default_taxonomy_path() -> Path | None:
    """config/taxonomy.yaml of a checkout or an installed share/ directory."""
    import sys

    here = Path(__file__).resolve()
    for cand in (
        here.parents[2] / "config" / "taxonomy.yaml",
        Path(sys.prefix) / "share" / "depth_annotation" / "config" / "taxonomy.yaml",
    ):
        if cand.exists():
            return cand
    return None
