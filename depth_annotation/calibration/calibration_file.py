"""The calibration JSON on disk: one versioned document with a section per result.

`calibration.json` holds `intrinsics`, `stereo`, `depth_check` and `mono_scale`
sections; each write replaces one section, keeps the others, and leaves a copy of
the new section under `history/` (named by time and section), so an earlier
calibration of the same camera can always be found again. Writes are crash-safe.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from depth_annotation.common import Intrinsics, atomic_io, to_camera_info_yaml

from .errors import CalibrationError
from .solver import calibration_document

CALIBRATION_FILE = "calibration.json"


def save_section(cal_dir: Path, section: str, payload: dict[str, Any], *, camera: str) -> Path:
    """Replace `section` of `cal_dir/calibration.json` (creating it), keep a history copy; return its path."""
    path = cal_dir / CALIBRATION_FILE
    existing: dict[str, Any] | None = None
    if path.exists():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise CalibrationError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    doc = calibration_document(existing, section, payload, camera=camera)
    stamp = str(doc["updated_utc"]).replace(":", "")
    atomic_io.write_json(cal_dir / "history" / f"{stamp}_{section}.json", doc[section])
    return atomic_io.write_json(path, doc)


def save_camera_info_yaml(cal_dir: Path, intrinsics: Intrinsics, camera: str) -> Path:
    """`cal_dir/<camera>.yaml` in camera_calibration_parsers' format (what camera_info_manager loads)."""
    return atomic_io.write_text(cal_dir / f"{camera}.yaml", to_camera_info_yaml(intrinsics, camera))
