"""Depth Anything V2 through Hugging Face transformers, loaded safely and run on numpy images.

Loading goes through the real `from_pretrained` path (`DepthAnythingForDepthEstimation`
and its image processor) from a hub id or a local directory, safetensors only,
never `trust_remote_code`. In offline mode (the default here: our machines cannot
download, and a robot should not fetch hundreds of MB by surprise) nothing is
downloaded; a missing model fails at once with how to provide it.

A frame's path (torch backend): the uint8 image goes to the model's device (through a
pinned buffer on CUDA), is resized and normalised there exactly as the image processor
does it (`preprocess.py`), runs through the network (fp16 on CUDA by default), is resized
back to the image's size and, when the metric scale is known before inference, made
metric there too; one synchronisation brings the results home. Optionally the network is
`torch.compile`d and, for a fixed image shape on CUDA, the whole device path is captured
once as a CUDA graph and replayed. On the CPU, Pillow does the same resize (bit-identical)
and is faster there. `load_model` picks the backend: `torch`, or an exported ONNX model
run by ONNX Runtime or OpenVINO (`onnx_backend.py`, for robots without a GPU).

Licences: Depth-Anything-V2-Small is Apache-2.0; Base and Large are CC-BY-NC-4.0
and are refused unless `allow_non_commercial` is set.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import MonoModelError
from .preprocess import ProcessorSettings, TensorPreprocessor, network_input_size, pil_preprocess

if TYPE_CHECKING:
    import torch
    from torch import Tensor
    from transformers import PreTrainedModel

    from .metric import PixelTransform

DEFAULT_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
NON_COMMERCIAL_MARKERS = ("-base", "-large", "-giant")
BACKENDS = ("torch", "onnxruntime", "openvino")
PREPROCESS = ("device", "processor")


@dataclass(frozen=True)
class MonoModelConfig:
    model: str = DEFAULT_MODEL  # hub id or local directory (torch); an exported .onnx file (onnxruntime, openvino)
    device: str = "cpu"  # cpu | cuda | cuda:N (torch)
    fp16: bool = True  # reduced precision: fp16 on CUDA; OpenVINO's bf16 where the CPU has it
    input_size: int = 518  # shorter side fed to the network; 0 = native resolution (an ONNX model's is fixed)
    offline: bool = True
    allow_non_commercial: bool = False
    backend: str = "torch"  # torch | onnxruntime | openvino
    preprocess: str = "device"  # device: ours, where the model runs; processor: transformers' on the CPU
    compile: bool = False  # torch.compile the network
    cuda_graphs: bool = False  # capture a frame's device path per image shape and replay it (CUDA)
    threads: int = 0  # CPU threads for inference (torch, ONNX Runtime, OpenVINO); 0 = the library's default


@dataclass
class Prediction:
    """One frame: the model output at the image's size, its metric depth where a transform was
    applied on the device (NaN where invalid; None otherwise) and the inference time."""

    output: np.ndarray
    depth_m: np.ndarray | None
    inference_ms: float


def _missing_message(model: str, detail: str) -> str:
    return (
        f"model {model!r} is not available offline ({detail}). Provide it as a local directory "
        "(config.json, model.safetensors, preprocessor_config.json: e.g. `huggingface-cli download "
        f"{DEFAULT_MODEL} --local-dir DIR` on a machine with internet) and pass that directory as the model, "
        "or pre-fill the Hugging Face cache (HF_HOME), or allow downloads with offline:=false"
    )


def _check_images(images: list[np.ndarray]) -> tuple[int, int]:
    h, w = images[0].shape[:2]
    for im in images:
        if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
            raise MonoModelError(f"expected uint8 RGB images (H, W, 3), got {im.dtype} {im.shape}")
        if im.shape[:2] != (h, w):
            raise MonoModelError("a batch must hold images of one size")
    return h, w


class DepthModel:
    """What every backend offers: model output per image at the image's size."""

    config: MonoModelConfig
    settings: ProcessorSettings
    is_metric: bool = False
    max_depth: float = 0.0
    parameters: int = 0
    untrained: bool = False  # a randomly initialised test model (UNTRAINED.txt beside it): meaningless depth

    def describe(self) -> str:
        raise NotImplementedError

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        """The network input (height, width) for an image of this size."""
        return network_input_size(height, width, self._target(height, width), keep_aspect_ratio=True, multiple=14)

    def _target(self, height: int, width: int) -> tuple[int, int]:
        """The size asked of the processor: the input size, or the image's nearest multiples of 14 (native)."""
        if self.config.input_size <= 0:
            return max(14, round(height / 14) * 14), max(14, round(width / 14) * 14)
        return self.config.input_size, self.config.input_size

    def _infer(
        self, images: list[np.ndarray], transform: PixelTransform | None
    ) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        raise NotImplementedError

    def predict_batch(self, images: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
        """Model output (relative disparity, or metric depth in metres for metric models) per image,
        resized to each image's size; and the inference time in ms (pre- and postprocessing included)."""
        if not images:
            return [], 0.0
        _check_images(images)
        t0 = time.perf_counter()
        outs, _ = self._infer(images, None)
        return outs, (time.perf_counter() - t0) * 1000.0

    def predict(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        outs, ms = self.predict_batch([image])
        return outs[0], ms

    def predict_frame(self, image: np.ndarray, transform: PixelTransform | None = None) -> Prediction:
        """`predict`, and where the backend can, the metric transform applied beside the network
        (on the GPU) in the same pass: `depth_m` is then set."""
        _check_images([image])
        t0 = time.perf_counter()
        outs, depths = self._infer([image], transform)
        return Prediction(outs[0], depths[0] if depths else None, (time.perf_counter() - t0) * 1000.0)


def load_model(config: MonoModelConfig) -> DepthModel:
    """The model for `config.backend`; a missing backend package fails with one line saying what to install."""
    if config.backend not in BACKENDS:
        raise MonoModelError(f"backend must be one of {', '.join(BACKENDS)}, got {config.backend!r}")
    if config.backend == "torch":
        return DepthAnything(config)
    from .onnx_backend import OnnxDepthModel

    return OnnxDepthModel(config)


class DepthAnything(DepthModel):
    """A loaded Depth Anything model (torch); `predict` maps an RGB image to its output at the image's size."""

    def __init__(self, config: MonoModelConfig) -> None:
        self.config = config
        if config.preprocess not in PREPROCESS:
            raise MonoModelError(f"preprocess must be one of {', '.join(PREPROCESS)}, got {config.preprocess!r}")
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
            self.untrained = (local / "UNTRAINED.txt").exists()
        else:
            source = config.model

        import torch
        from transformers import AutoImageProcessor, DepthAnythingForDepthEstimation

        if config.threads > 0:
            torch.set_num_threads(config.threads)
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
        self.settings = ProcessorSettings.from_processor(self.processor)
        self.device_preprocess: TensorPreprocessor | None = None
        self.preprocess = config.preprocess
        if config.preprocess == "device":
            try:
                self.device_preprocess = TensorPreprocessor(self.settings)
            except MonoModelError:  # a resampling filter we do not reproduce: the processor does it
                self.preprocess = f"processor (resample {self.settings.resample} not on the device)"
        self.net: Any = torch.compile(self.model) if config.compile else self.model
        self.cuda_graphs = config.cuda_graphs and self.device.type == "cuda"
        self.graph_error = ""  # why a CUDA graph could not be captured (then the frame runs eagerly)
        self._pinned: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}
        self._graphs: dict[tuple[int, int, int], tuple[Any, torch.Tensor, torch.Tensor]] = {}

    def describe(self) -> str:
        extras = [p for p, on in (("compiled", self.config.compile), ("CUDA graphs", self.cuda_graphs)) if on]
        dtype = str(self.dtype).replace("torch.", "")
        return f"torch on {self.device}, {dtype}, {self.preprocess} preprocessing" + "".join(f", {e}" for e in extras)

    # --- the device path --------------------------------------------------------------------
    def _host_buffer(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A page-locked host buffer, reused while the shape stays (only on CUDA)."""
        key = (name, shape)
        if key not in self._pinned:
            self._pinned[key] = self.torch.empty(shape, dtype=dtype, pin_memory=True)
        return self._pinned[key]

    def _forward(self, pixel_values: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Network, then its output resized to the image: (B, H, W) float32 on the device."""
        out = self.net(pixel_values=pixel_values).predicted_depth  # (B, h', w')
        return self.torch.nn.functional.interpolate(
            out[:, None].float(), size=(height, width), mode="bilinear", align_corners=False
        )[:, 0]

    def _device_frame(self, images_u8: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        assert self.device_preprocess is not None
        pixel_values = self.device_preprocess(images_u8, size, self.dtype)
        return self._forward(pixel_values, images_u8.shape[1], images_u8.shape[2])

    def _graph(self, static_in: torch.Tensor, size: tuple[int, int]) -> tuple[Any, torch.Tensor] | None:
        """Capture the device path for this input shape once (warm-up on a side stream first)."""
        torch = self.torch
        try:
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream), torch.inference_mode():
                for _ in range(3):
                    self._device_frame(static_in, size)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), torch.inference_mode():
                static_out = self._device_frame(static_in, size)
            return graph, static_out
        except Exception as exc:  # an op that cannot be captured (RuntimeError, compiler errors): run eagerly
            self.graph_error = str(exc).splitlines()[0]
            self.cuda_graphs = False
            return None

    def _infer(
        self, images: list[np.ndarray], transform: PixelTransform | None
    ) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        torch = self.torch
        h, w = images[0].shape[:2]
        size = self.network_size(h, w)
        if self.device_preprocess is None:  # transformers' processor on the CPU (the reference path)
            inputs = self.processor(
                images=list(images),
                return_tensors="pt",
                size=dict(zip(("height", "width"), self._target(h, w), strict=True)),
                keep_aspect_ratio=True,
                ensure_multiple_of=14,
            )
            with torch.inference_mode():
                out = self._forward(inputs["pixel_values"].to(self.device, dtype=self.dtype), h, w)
            return [o.cpu().numpy().astype(np.float32) for o in out], None
        if self.device.type != "cuda":  # CPU: Pillow's resize is the same, bit for bit, and faster here
            pixel_values = torch.from_numpy(np.concatenate([pil_preprocess(im, size, self.settings) for im in images]))
            with torch.inference_mode():
                out = self._forward(pixel_values.to(self.device, dtype=self.dtype), h, w)
            return [o.numpy().astype(np.float32, copy=True) for o in out], None

        b = len(images)
        host_in = self._host_buffer("in", (b, h, w, 3), torch.uint8)
        host_np = host_in.numpy()
        for i, im in enumerate(images):
            host_np[i] = im
        with torch.inference_mode():
            result: Tensor | None = None
            if self.cuda_graphs:
                key = (b, h, w)
                if key not in self._graphs:
                    static_in = torch.empty((b, h, w, 3), dtype=torch.uint8, device=self.device)
                    static_in.copy_(host_in)
                    captured = self._graph(static_in, size)
                    if captured is not None:
                        self._graphs[key] = (captured[0], static_in, captured[1])
                if key in self._graphs:
                    graph, static_in, static_out = self._graphs[key]
                    static_in.copy_(host_in, non_blocking=True)
                    graph.replay()
                    result = static_out
            if result is None:
                result = self._device_frame(host_in.to(self.device, non_blocking=True), size)
            host_out = self._host_buffer("out", (b, h, w), torch.float32)
            host_out.copy_(result, non_blocking=True)
            host_depth = None
            if transform is not None:
                host_depth = self._host_buffer("depth", (b, h, w), torch.float32)
                host_depth.copy_(transform.apply_torch(result), non_blocking=True)
            torch.cuda.current_stream(self.device).synchronize()  # the frame's one synchronisation
        outs = [host_out[i].numpy().copy() for i in range(b)]
        depths = [host_depth[i].numpy().copy() for i in range(b)] if host_depth is not None else None
        return outs, depths

    def forward_only(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The network alone on pixel values already on the device (benchmarks)."""
        with self.torch.inference_mode():
            out: torch.Tensor = self.net(pixel_values=pixel_values).predicted_depth
            return out


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
