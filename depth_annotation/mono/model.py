"""Depth Anything V2 through Hugging Face transformers, loaded safely and run on numpy images.

Loading goes through the real `from_pretrained` path (`DepthAnythingForDepthEstimation`
and its image processor) from a hub id or a local directory, safetensors only,
never `trust_remote_code`. In offline mode (the default here: our machines cannot
download, and a robot should not fetch hundreds of MB by surprise) nothing is
downloaded; a missing model fails at once with how to provide it.

Licences: Depth-Anything-V2-Small is Apache-2.0; Base and Large are CC-BY-NC-4.0
and are refused unless `allow_non_commercial` is set.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import MonoModelError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

DEFAULT_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
NON_COMMERCIAL_MARKERS = ("-base", "-large", "-giant")


@dataclass(frozen=True)
class MonoModelConfig:
    model: str = DEFAULT_MODEL  # hub id or local directory
    device: str = "cpu"  # cpu | cuda | cuda:N
    fp16: bool = True  # only applies on cuda
    input_size: int = 518  # shorter side fed to the network; 0 = native resolution
    offline: bool = True
    allow_non_commercial: bool = False


def _missing_message(model: str, detail: str) -> str:
    return (
        f"model {model!r} is not available offline ({detail}). Provide it as a local directory "
        "(config.json, model.safetensors, preprocessor_config.json: e.g. `huggingface-cli download "
        f"{DEFAULT_MODEL} --local-dir DIR` on a machine with internet) and pass that directory as the model, "
        "or pre-fill the Hugging Face cache (HF_HOME), or allow downloads with offline:=false"
    )


class DepthAnything:
    """A loaded Depth Anything model; `predict` maps an RGB image to its output at the image's size."""

    def __init__(self, config: MonoModelConfig) -> None:
        self.config = config
        name = config.model.lower()
        if any(m in name for m in NON_COMMERCIAL_MARKERS) and not config.allow_non_commercial:
            raise MonoModelError(
                f"{config.model} is licensed CC-BY-NC-4.0 (non-commercial); set allow_non_commercial to use it, "
                f"or use {DEFAULT_MODEL} (Apache-2.0)"
            )
        if config.offline:
            os.environ["HF_HUB_OFFLINE"] = "1"  # belt and braces: huggingface_hub never goes online
        local = Path(config.model).expanduser()
        if local.is_dir() or config.model.startswith((".", "/", "~")):
            if not local.is_dir():
                raise MonoModelError(_missing_message(config.model, "no such directory"))
            missing = [f for f in ("config.json", "model.safetensors") if not (local / f).exists()]
            if missing:
                raise MonoModelError(_missing_message(config.model, f"{local} lacks {', '.join(missing)}"))
            source = str(local)
        else:
            source = config.model

        import torch
        from transformers import AutoImageProcessor, DepthAnythingForDepthEstimation

        try:
            self.model = DepthAnythingForDepthEstimation.from_pretrained(
                source, local_files_only=config.offline, use_safetensors=True, trust_remote_code=False
            )
            # transformers leaves AutoImageProcessor.from_pretrained unannotated
            self.processor = AutoImageProcessor.from_pretrained(  # type: ignore[no-untyped-call]
                source, local_files_only=config.offline
            )
        except OSError as exc:
            raise MonoModelError(_missing_message(config.model, str(exc).splitlines()[0])) from None
        self.torch = torch
        device = config.device
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise MonoModelError(f"device {device!r} requested but CUDA is not available; use device:=cpu")
        self.device = torch.device(device)
        self.dtype = torch.float16 if (config.fp16 and self.device.type == "cuda") else torch.float32
        # transformers declares PreTrainedModel.to through functools.wraps(Module.to): mypy sees an unbound function
        self.model.to(self.device, dtype=self.dtype).eval()  # type: ignore[arg-type]
        self.is_metric = getattr(self.model.config, "depth_estimation_type", "relative") == "metric"
        self.max_depth = float(getattr(self.model.config, "max_depth", 0.0) or 0.0)
        self.parameters = sum(p.numel() for p in self.model.parameters())

    def _size(self, height: int, width: int) -> dict[str, int]:
        if self.config.input_size <= 0:  # native: nearest multiples of the patch size
            return {"height": max(14, round(height / 14) * 14), "width": max(14, round(width / 14) * 14)}
        return {"height": self.config.input_size, "width": self.config.input_size}

    def predict_batch(self, images: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
        """Model output (relative disparity, or metric depth in metres for metric models) per image,
        resized to each image's size; and the inference time in ms (preprocessing included)."""
        if not images:
            return [], 0.0
        h, w = images[0].shape[:2]
        for im in images:
            if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
                raise MonoModelError(f"expected uint8 RGB images (H, W, 3), got {im.dtype} {im.shape}")
            if im.shape[:2] != (h, w):
                raise MonoModelError("a batch must hold images of one size")
        t0 = time.perf_counter()
        inputs = self.processor(
            images=list(images),
            return_tensors="pt",
            size=self._size(h, w),
            keep_aspect_ratio=True,
            ensure_multiple_of=14,
        )
        pixel_values = inputs["pixel_values"].to(self.device, dtype=self.dtype)
        with self.torch.inference_mode():
            out = self.model(pixel_values=pixel_values).predicted_depth  # (B, h', w')
            out = self.torch.nn.functional.interpolate(
                out[:, None].float(), size=(h, w), mode="bilinear", align_corners=False
            )[:, 0]
        result = [o.cpu().numpy().astype(np.float32) for o in out]
        return result, (time.perf_counter() - t0) * 1000.0

    def predict(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        outs, ms = self.predict_batch([image])
        return outs[0], ms


def _save_with_processor(model: PreTrainedModel, directory: str | Path) -> Path:
    """Save a model (safetensors) with Depth Anything V2's image processor settings beside it."""
    from transformers import DPTImageProcessor

    directory = Path(directory)
    model.save_pretrained(directory, safe_serialization=True)
    DPTImageProcessor(
        do_resize=True,
        size={"height": 518, "width": 518},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        do_rescale=True,
        do_normalize=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        resample=3,
    ).save_pretrained(directory)
    return directory


def save_tiny_model(directory: str | Path, *, seed: int = 0, metric: bool = False) -> Path:
    """Write a tiny randomly initialised Depth Anything (about 140k parameters) with its processor.

    UNTRAINED: its output is noise-like. It exists so the real loading and
    inference path can run where weights cannot be downloaded (tests, the demo).
    """
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    torch.manual_seed(seed)
    backbone = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        mlp_ratio=4,
        patch_size=14,
        image_size=70,
        reshape_hidden_states=False,
    )
    backbone.out_features = ["stage1", "stage2", "stage3", "stage4"]  # a property: sets out_indices too
    cfg = DepthAnythingConfig(
        backbone_config=backbone,
        fusion_hidden_size=16,
        head_hidden_size=8,
        neck_hidden_sizes=[8, 16, 32, 32],
        reassemble_hidden_size=32,
        depth_estimation_type="metric" if metric else "relative",
        max_depth=20 if metric else 1,  # the head's output scale: metres for metric, 1 (transformers' default) else
    )
    directory = _save_with_processor(DepthAnythingForDepthEstimation(cfg), directory)
    (directory / "UNTRAINED.txt").write_text("Randomly initialised test model: its depth output is meaningless.\n")
    return directory


def small_sized_model(directory: str | Path, *, seed: int = 0) -> Path:
    """A randomly initialised model with the Depth-Anything-V2-Small architecture (ViT-S, ~24.8M params).

    For benchmarks: the real model's cost without its weights."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    torch.manual_seed(seed)
    backbone = Dinov2Config(
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        mlp_ratio=4,
        patch_size=14,
        image_size=518,
        reshape_hidden_states=False,
        layerscale_value=1.0,
    )
    backbone.out_features = ["stage3", "stage6", "stage9", "stage12"]
    cfg = DepthAnythingConfig(
        backbone_config=backbone,
        fusion_hidden_size=64,
        head_hidden_size=32,
        neck_hidden_sizes=[48, 96, 192, 384],
        reassemble_hidden_size=384,
        depth_estimation_type="relative",
    )
    return _save_with_processor(DepthAnythingForDepthEstimation(cfg), directory)
