"""A folder of metric depth: one uint16 PNG (millimetres) per frame and `scale.json` beside them.

What `depth-annotation mono` and `depth-annotation batch mono` write; both call this, so a batch
run's output is the single-machine command's, byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depth_annotation.common import atomic_io, depth_to_millimetres

from .metric import MetricAligner
from .model import DepthModel

DEPTH_UNIT = "millimetre (uint16 PNG), 0 = no depth"


def write_depth_folder(
    frames: Iterable[tuple[str, np.ndarray, np.ndarray | None]],
    model: DepthModel,
    aligner: MetricAligner,
    out: Path,
    *,
    model_name: str,
    scale_file: str | None,
) -> int:
    """Predict, align and write each (name, RGB, sensor depth in metres or None); returns the frame count.

    `out/depth/` must be creatable; scale.json is written last (atomically), after every PNG.
    """
    (out / "depth").mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    for name, rgb, sensor in frames:
        pred = model.predict_frame(rgb, aligner.pixel_transform(sensor is not None))
        depth_m, _, rep = aligner.align(pred.output, sensor, depth_m=pred.depth_m)
        cv2.imwrite(str(out / "depth" / f"{name}.png"), depth_to_millimetres(depth_m, "32FC1"))
        records.append(
            {
                "frame": name,
                "mode": rep.mode,
                "fitted": rep.fitted,
                "scale": rep.scale,
                "shift": rep.shift,
                "abs_rel": rep.abs_rel,
                "delta_1_25": rep.delta_1_25,
                "inference_ms": pred.inference_ms,
            }
        )
    atomic_io.write_json(
        out / "scale.json",
        {
            "schema_version": 1,
            "model": model_name,
            "backend": model.describe(),
            "mode": aligner.mode,
            "untrained_model": model.untrained,
            "scale_file": scale_file,
            "depth_unit": DEPTH_UNIT,
            "frames": records,
        },
    )
    return len(records)
