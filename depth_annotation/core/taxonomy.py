"""The annotation taxonomy: label ids, names and display colours.

The default is the guide's manipulation taxonomy. `void` (id 0) marks pixels with
no valid depth, which annotators are not asked to label. Versioned from day one:
a dataset records the taxonomy version it was labelled with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


def taxonomy_dict(labels: tuple[Label, ...] = DEFAULT_LABELS) -> dict[str, Any]:
    """The `taxonomy.json` content."""
    return {
        "schema_version": 1,
        "taxonomy_version": TAXONOMY_VERSION,
        "void_id": LABEL_IDS["void"],
        "labels": [
            {"id": l.id, "name": l.name, "color": list(l.color), "description": l.description} for l in labels
        ],
        "keypoints": {k: list(v) for k, v in KEYPOINTS.items()},
    }
