"""Learned pre-annotation: Segment Anything (transformers `SamModel`) prompted by the geometric clusters.

Each object or robot region of the geometric pass becomes a prompt (its bounding
box, or its innermost pixel as a point); SAM's mask replaces the region's mask
where the sensor has depth (void stays void), and SAM's predicted IoU becomes the
region's score. Pixels a region gives up become background; table and background
are geometry's. Regions whose SAM score is below `min_score` keep their geometric mask.

Loading is the monocular model's (`mono/model.py`): `from_pretrained` from a hub
id or a local directory, safetensors only, never `trust_remote_code`, offline by
default (nothing is downloaded; a missing model fails at once saying how to provide
it). Licence: Meta's SAM checkpoints (facebook/sam-vit-base, -large, -huge) are
Apache-2.0. A model directory with an `UNTRAINED.txt` (the tiny random model the
tests save) is marked UNTRAINED in its `model_version`, which Label Studio shows
beside every prediction, and in the command's output.

Serving it as a Label Studio ML backend would need `label-studio-ml`, whose last
release (1.0.9) pins Flask 1.1.2, Jinja2 3.0.3 and werkzeug 2.0.2, against the
SDK's Jinja2 3.1 and our stack: the predictions file is the interface.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depth_annotation.common import LABEL_IDS

from .errors import PreannotationConfigError, PreannotationError
from .geometric import GeometricResult, Region

DEFAULT_SAM = "facebook/sam-vit-base"  # Apache-2.0
PROMPTS = ("box", "point")


@dataclass(frozen=True)
class SamBackendConfig:
    model: str = DEFAULT_SAM  # hub id or local directory
    device: str = "cpu"
    offline: bool = True
    prompt: str = "box"  # box: the cluster's bounding box; point: its innermost pixel
    min_score: float = 0.0  # SAM masks predicted below this IoU keep the geometric mask

    def validate(self) -> None:
        if self.prompt not in PROMPTS:
            raise PreannotationConfigError(f"SAM prompt {self.prompt!r}: use one of {PROMPTS}")
        if not 0.0 <= self.min_score <= 1.0:
            raise PreannotationConfigError(f"min_score must be in [0, 1], got {self.min_score}")


def _missing(model: str, detail: str) -> str:
    return (
        f"SAM model {model!r} is not available offline ({detail}). Provide it as a local directory "
        "(config.json, model.safetensors, preprocessor_config.json: e.g. `huggingface-cli download "
        f"{DEFAULT_SAM} --local-dir DIR` on a machine with internet) and pass that directory, or pre-fill "
        "the Hugging Face cache (HF_HOME), or allow downloads (--sam-online)"
    )


class SamBackend:
    """A loaded SAM model that refines geometric pre-annotations."""

    def __init__(self, config: SamBackendConfig | None = None) -> None:
        config = config or SamBackendConfig()
        config.validate()
        self.config = config
        if config.offline:
            os.environ["HF_HUB_OFFLINE"] = "1"
        local = Path(config.model).expanduser()
        self.untrained = False
        if local.is_dir() or config.model.startswith((".", "/", "~")):
            if not local.is_dir():
                raise PreannotationError(_missing(config.model, "no such directory"))
            missing = [f for f in ("config.json", "model.safetensors") if not (local / f).exists()]
            if missing:
                raise PreannotationError(_missing(config.model, f"{local} lacks {', '.join(missing)}"))
            self.untrained = (local / "UNTRAINED.txt").exists()
            source = str(local)
        else:
            source = config.model
        import torch
        from transformers import SamModel, SamProcessor
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity(logging.ERROR)  # the processor's "torchvision not installed, using PIL" notice
        try:
            self.model = SamModel.from_pretrained(
                source, local_files_only=config.offline, use_safetensors=True, trust_remote_code=False
            )
            self.processor = SamProcessor.from_pretrained(source, local_files_only=config.offline)
        except OSError as exc:
            raise PreannotationError(_missing(config.model, str(exc).splitlines()[0])) from None
        finally:
            hf_logging.set_verbosity(verbosity)
        if config.device.startswith("cuda") and not torch.cuda.is_available():
            raise PreannotationError(f"device {config.device!r} requested but CUDA is not available; use cpu")
        self.torch = torch
        self.device = torch.device(config.device)
        model: Any = self.model  # transformers types `to` for its own wrapper, not a device
        model.to(self.device).eval()
        name = Path(source).name if local.is_dir() else source
        self.model_version = f"depth_annotation-geometric-1+sam:{name}" + ("-UNTRAINED" if self.untrained else "")

    def predict(self, image: np.ndarray, prompts: list[np.ndarray]) -> tuple[list[np.ndarray], list[float]]:
        """SAM masks (bool (H, W)) and predicted IoUs for box (x0, y0, x1, y1) or point (x, y) prompts."""
        if not prompts:
            return [], []
        kwargs: dict[str, Any] = {}
        if self.config.prompt == "box":
            kwargs["input_boxes"] = [[[float(v) for v in p] for p in prompts]]
        else:
            kwargs["input_points"] = [[[[float(p[0]), float(p[1])]] for p in prompts]]
            kwargs["input_labels"] = [[[1] for _ in prompts]]
        inputs = self.processor(images=image, return_tensors="pt", **kwargs)
        wanted = ("pixel_values", "input_boxes", "input_points", "input_labels")
        feed = {k: v.to(self.device) for k, v in inputs.items() if k in wanted}
        with self.torch.inference_mode():
            out = self.model(**feed, multimask_output=False)
        masks = self.processor.image_processor.post_process_masks(
            out.pred_masks.cpu(), inputs["original_sizes"], inputs["reshaped_input_sizes"]
        )[0]
        scores = out.iou_scores.cpu().numpy().reshape(-1)
        return [np.asarray(m[0].numpy(), bool) for m in masks], [float(s) for s in scores]

    def refine(
        self,
        image: np.ndarray,
        depth_mm: np.ndarray,
        result: GeometricResult,
        *,
        background_id: int = LABEL_IDS["background"],
    ) -> GeometricResult:
        """The geometric result with SAM's masks and scores for its object and robot regions."""
        targets = [r for r in result.regions if r.kind in ("object", "robot")]
        masks, scores = self.predict(image, [prompt_of(result.mask(r), self.config.prompt) for r in targets])
        proposals = {r.instance: (m, s) for r, m, s in zip(targets, masks, scores, strict=True)}
        return refine_regions(result, depth_mm, proposals, min_score=self.config.min_score, background_id=background_id)


def prompt_of(mask: np.ndarray, kind: str) -> np.ndarray:
    """A region's prompt: its bounding box (x0, y0, x1, y1), or its innermost pixel (x, y)."""
    rows, cols = np.nonzero(mask)
    if kind == "box":
        return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float64)
    inside = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(inside)), inside.shape)
    return np.array([x, y], np.float64)


def refine_regions(
    result: GeometricResult,
    depth_mm: np.ndarray,
    proposals: dict[int, tuple[np.ndarray, float]],
    *,
    min_score: float = 0.0,
    background_id: int = LABEL_IDS["background"],
) -> GeometricResult:
    """Replace the masks of regions `instance -> (mask, score)` (see the module docstring).

    Masks apply where there is depth; where two proposals overlap the smaller one
    wins (an object in front of a larger one); pixels a region gives up become background.
    """
    valid = np.asarray(depth_mm) > 0
    labels, instances = result.labels.copy(), result.instances.copy()
    by_instance = {r.instance: r for r in result.regions}
    accepted = {i: (m & valid, s) for i, (m, s) in proposals.items() if s >= min_score and i in by_instance}
    background = next((r for r in result.regions if r.kind == "background"), None)
    bg_instance = background.instance if background else max(by_instance, default=0) + 1
    bg_label = background.label_id if background else background_id
    for i in accepted:
        released = instances == i
        labels[released], instances[released] = bg_label, bg_instance
    for i, (mask, _) in sorted(accepted.items(), key=lambda kv: -int(np.count_nonzero(kv[1][0]))):
        labels[mask], instances[mask] = by_instance[i].label_id, i
    regions: list[Region] = []
    for r in result.regions + (
        [] if background else [Region(bg_instance, "background", bg_label, "background", 0.0, 0)]
    ):
        pixels = int(np.count_nonzero(instances == r.instance))
        if pixels == 0:
            continue
        score = float(np.clip(accepted[r.instance][1], 0.0, 1.0)) if r.instance in accepted else r.score
        regions.append(dataclasses.replace(r, pixels=pixels, score=score))
    notes = result.notes + [f"SAM refined {len(accepted)} of {len(proposals)} object/robot regions"]
    return GeometricResult(labels, instances, regions, result.plane, notes)


def save_tiny_sam(directory: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny randomly initialised SAM (about 96k parameters) with its processor, marked UNTRAINED.

    Its masks are meaningless; it lets the real loading and inference path run where
    weights cannot be downloaded (tests).
    """
    import torch
    from transformers import (
        SamConfig,
        SamImageProcessorPil,
        SamMaskDecoderConfig,
        SamModel,
        SamProcessor,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )
    from transformers.utils import logging as hf_logging

    torch.manual_seed(seed)
    vision = SamVisionConfig(
        hidden_size=32,
        output_channels=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=128,
        patch_size=16,
        mlp_dim=64,
        global_attn_indexes=[1],
        window_size=4,
        num_pos_feats=16,
    )
    prompt = SamPromptEncoderConfig(hidden_size=32, image_size=128, patch_size=16, mask_input_channels=4)
    decoder = SamMaskDecoderConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_dim=64, iou_head_hidden_dim=32
    )
    config = SamConfig(
        vision_config=vision.to_dict(), prompt_encoder_config=prompt.to_dict(), mask_decoder_config=decoder.to_dict()
    )
    directory = Path(directory)
    SamModel(config).save_pretrained(directory, safe_serialization=True)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity(logging.ERROR)
    try:
        processor: Any = SamProcessor
        processor(
            SamImageProcessorPil(  # the torch backend would want torchvision, which we do not install
                size={"longest_edge": 128},
                pad_size={"height": 128, "width": 128},
                mask_size={"longest_edge": 32},
                mask_pad_size={"height": 32, "width": 32},
            )
        ).save_pretrained(directory)
    finally:
        hf_logging.set_verbosity(verbosity)
    (directory / "UNTRAINED.txt").write_text("Randomly initialised test model: its masks are meaningless.\n")
    return directory
