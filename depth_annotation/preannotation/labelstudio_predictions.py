"""Pre-annotation regions as Label Studio predictions: brush masks in Label Studio's own RLE.

The RLE comes from Label Studio's SDK (`label_studio_sdk.converter.brush.mask2rle`),
never from an encoder of ours. The SDK's pins clash with ours (it wants
opencv 4 and an older numpy; we run opencv 5), so it lives in its own
interpreter (`.venv-labelstudio` of a checkout, see requirements/labelstudio.txt),
and the main package does not import it. `BrushRleEncoder` runs that
interpreter once per batch of masks: masks go in as a bit-packed `.npz`, RLE
lists come back as JSON. Which interpreter: the `python` argument, else
`DEPTH_ANNOTATION_LABELSTUDIO_PYTHON`, else the checkout's `.venv-labelstudio/bin/python`.

Prediction format (Label Studio's task import): each task gets
`predictions: [{model_version, score, result: [region, ...]}]`, a region being a
`brushlabels` result on the config's BrushLabels control with its own `score`.
`void` is no region: the labelling config has no void brush (annotators never
label missing depth), so unlabelled pixels are void, as on import.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LabelStudioEncoderError, PreannotationError
from .geometric import GeometricResult

ENV_PYTHON = "DEPTH_ANNOTATION_LABELSTUDIO_PYTHON"
MODEL_VERSION = "depth_annotation-geometric-1"

# Runs under Label Studio's interpreter: argv[1] is an .npz of bit-packed masks (m<k>) and shapes (s<k>).
_ENCODE_SCRIPT = r"""
import json, sys
import numpy as np
from label_studio_sdk.converter.brush import mask2rle
data = np.load(sys.argv[1])
out = []
for k in range(int(data["count"])):
    h, w = (int(v) for v in data[f"s{k}"])
    mask = np.unpackbits(data[f"m{k}"], count=h * w).reshape(h, w)
    out.append([int(v) for v in mask2rle(mask * np.uint8(255))])
json.dump(out, sys.stdout)
"""


def labelstudio_python(python: str | os.PathLike[str] | None = None) -> Path:
    """The interpreter with label-studio-sdk that encodes brush RLE (see the module docstring)."""
    candidates: list[tuple[str, Path]] = []
    if python:
        candidates.append(("--labelstudio-python", Path(python)))
    if os.environ.get(ENV_PYTHON):
        candidates.append((ENV_PYTHON, Path(os.environ[ENV_PYTHON])))
    checkout = Path(__file__).resolve().parents[2] / ".venv-labelstudio" / "bin" / "python"
    candidates.append(("the checkout's .venv-labelstudio", checkout))
    for source, path in candidates:
        if path.exists():
            return path
        if source != "the checkout's .venv-labelstudio":
            raise LabelStudioEncoderError(f"{source}: {path} does not exist")
    raise LabelStudioEncoderError(
        "no Python with label-studio-sdk for the brush RLE: make one (python -m venv ls && ls/bin/pip install "
        f"-r requirements/labelstudio.txt) and pass --labelstudio-python ls/bin/python or set {ENV_PYTHON}"
    )


class BrushRleEncoder:
    """Label Studio's `mask2rle`, run in Label Studio's interpreter, many masks per call."""

    def __init__(self, python: str | os.PathLike[str] | None = None, *, timeout_s: float = 600.0) -> None:
        self.python = labelstudio_python(python)
        self.timeout_s = timeout_s

    def encode(self, masks: list[np.ndarray]) -> list[list[int]]:
        if not masks:
            return []
        arrays: dict[str, Any] = {"count": np.array(len(masks))}
        for k, mask in enumerate(masks):
            m = np.asarray(mask, bool)
            if m.ndim != 2:
                raise LabelStudioEncoderError(f"mask {k} is {m.ndim}-D; brush masks are 2-D")
            arrays[f"m{k}"] = np.packbits(m.ravel())
            arrays[f"s{k}"] = np.array(m.shape, np.int64)
        with tempfile.TemporaryDirectory(prefix="ls-rle-") as tmp:
            path = Path(tmp) / "masks.npz"
            np.savez(path, **arrays)
            try:
                done = subprocess.run(
                    [str(self.python), "-c", _ENCODE_SCRIPT, str(path)],
                    capture_output=True,
                    text=True,
                    timeout=self.timeout_s,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise LabelStudioEncoderError(f"{self.python}: could not run the Label Studio encoder: {exc}") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no error output"])[-1]
            raise LabelStudioEncoderError(f"{self.python}: Label Studio's mask2rle failed: {last}")
        rles: list[list[int]] = json.loads(done.stdout)
        if len(rles) != len(masks):
            raise LabelStudioEncoderError(f"{self.python}: {len(rles)} RLEs came back for {len(masks)} masks")
        return rles


@dataclass(frozen=True)
class BrushTarget:
    """The labelling config's brush control: its name, the image it draws on, and its label values."""

    from_name: str
    to_name: str
    labels: frozenset[str]


def brush_target(label_config: str) -> BrushTarget:
    """Read the BrushLabels control of a Label Studio labelling config (ours: `segmentation` on `depth`)."""
    try:
        root = ET.fromstring(label_config)
    except ET.ParseError as exc:
        raise PreannotationError(f"label_config.xml is not XML: {exc}") from None
    brushes = list(root.iter("BrushLabels"))
    if len(brushes) != 1:
        raise PreannotationError(f"label_config.xml has {len(brushes)} BrushLabels controls; pre-annotation needs 1")
    brush = brushes[0]
    labels = frozenset(str(label.get("value")) for label in brush.iter("Label"))
    return BrushTarget(str(brush.get("name")), str(brush.get("toName")), labels)


def frame_prediction(
    result: GeometricResult,
    rles: list[list[int]],
    target: BrushTarget,
    *,
    model_version: str = MODEL_VERSION,
) -> dict[str, Any]:
    """One task's prediction: a brush region per pre-annotation region (labels the config lacks are left out)."""
    h, w = result.labels.shape
    items = []
    scored: list[tuple[float, int]] = []
    for region, rle in zip(result.regions, rles, strict=True):
        if region.label not in target.labels:
            continue
        items.append(
            {
                "id": f"geo{region.instance}",
                "type": "brushlabels",
                "from_name": target.from_name,
                "to_name": target.to_name,
                "original_width": w,
                "original_height": h,
                "image_rotation": 0,
                "score": round(float(region.score), 4),
                "value": {"format": "rle", "rle": rle, "brushlabels": [region.label]},
            }
        )
        scored.append((region.score, region.pixels))
    total = sum(p for _, p in scored)
    score = sum(s * p for s, p in scored) / total if total else 0.0
    return {"model_version": model_version, "score": round(float(score), 4), "result": items}
