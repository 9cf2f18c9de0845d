"""Depth Anything on the CPU without torch: an ONNX export of the transformers model, run by
ONNX Runtime or OpenVINO.

`export_onnx` traces our loaded model at one fixed network input (the image processor's
size for a given camera image size and input size: 518, 392 or 266 px for the shorter
side), so the runtimes can fold the position-embedding interpolation into constants. The
processor settings, the camera image size, the input size and the model type travel inside
the .onnx file as metadata; the runtime side reads them back and needs only numpy, Pillow
(the processor's own resize), OpenCV and the runtime package: no torch, no transformers.
An image whose network input differs from the exported one is refused with one line that
says how to export for it.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import MonoModelError
from .model import DepthAnything, DepthModel, MonoModelConfig
from .preprocess import ProcessorSettings, network_input_size, pil_preprocess

if TYPE_CHECKING:
    from .metric import PixelTransform

META_KEY = "depth_annotation.mono"
INSTALL = {
    "onnxruntime": "onnxruntime==1.31.1",
    "openvino": "openvino==2026.4.1",
}


@dataclass(frozen=True)
class OnnxModelInfo:
    """What an exported model was made from and for (stored in the .onnx metadata)."""

    source: str
    input_size: int
    image_height: int
    image_width: int
    network_height: int
    network_width: int
    is_metric: bool
    max_depth: float
    parameters: int
    untrained: bool
    settings: ProcessorSettings

    def to_json(self) -> str:
        d = {k: v for k, v in self.__dict__.items() if k != "settings"}
        d["settings"] = json.loads(self.settings.to_json())
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> OnnxModelInfo:
        d = json.loads(text)
        d["settings"] = ProcessorSettings.from_json(json.dumps(d["settings"]))
        return cls(**d)


def export_onnx(
    model_dir: str | Path,
    out: str | Path,
    *,
    input_size: int = 518,
    image_size: tuple[int, int] = (640, 480),
    opset: int = 17,
    offline: bool = True,
) -> OnnxModelInfo:
    """Export a transformers Depth Anything (local directory or cached hub id) to `out` (.onnx),
    fixed to the network input for `image_size` (width, height) images at `input_size`."""
    if input_size < 14:
        raise MonoModelError(f"input size must be at least 14 (the patch size), got {input_size}")
    width, height = image_size
    if width < 1 or height < 1:
        raise MonoModelError(f"image size must be positive, got {width}x{height}")
    try:
        import onnx
        import torch
    except ImportError as exc:
        raise MonoModelError(f"export-onnx needs torch and onnx ({INSTALL['onnxruntime']}, onnx): {exc}") from None

    model = DepthAnything(
        MonoModelConfig(model=str(model_dir), device="cpu", fp16=False, input_size=input_size, offline=offline)
    )
    net_h, net_w = model.network_size(height, width)
    info = OnnxModelInfo(
        source=str(model_dir),
        input_size=input_size,
        image_height=height,
        image_width=width,
        network_height=net_h,
        network_width=net_w,
        is_metric=model.is_metric,
        max_depth=model.max_depth,
        parameters=model.parameters,
        untrained=(Path(model_dir).expanduser() / "UNTRAINED.txt").exists(),
        settings=model.settings,
    )

    class Network(torch.nn.Module):
        """pixel_values (1, 3, h, w) -> predicted_depth (1, h, w): the traced part."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.inner(pixel_values=pixel_values).predicted_depth
            return out

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    example = torch.zeros((1, 3, net_h, net_w), dtype=torch.float32)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes it fixes: fixing them is the point
        torch.onnx.export(
            Network(model.model).eval(),
            (example,),
            str(tmp),
            dynamo=False,
            input_names=["pixel_values"],
            output_names=["predicted_depth"],
            opset_version=opset,
        )
    proto = onnx.load(str(tmp))
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, info.to_json()
    onnx.save(proto, str(tmp))
    tmp.replace(out)  # a reader never sees a half-written model
    return info


def _runtime_missing(backend: str, exc: ImportError) -> MonoModelError:
    return MonoModelError(
        f"backend {backend} needs the {backend} package, which is not installed here ({exc}); "
        f"install it with `pip install {INSTALL[backend]}` or use backend:=torch"
    )


class OnnxDepthModel(DepthModel):
    """An exported model run by ONNX Runtime or OpenVINO on the CPU, one image at a time."""

    def __init__(self, config: MonoModelConfig) -> None:
        self.config = config
        path = Path(config.model).expanduser()
        if path.suffix != ".onnx" or not path.is_file():
            raise MonoModelError(
                f"backend {config.backend} needs an exported .onnx file, got {config.model!r} "
                f"(export one with `depth-annotation mono export-onnx MODEL_DIR OUT.onnx --size 518`)"
            )
        if config.device != "cpu":
            raise MonoModelError(f"backend {config.backend} runs on the CPU; use device:=cpu or backend:=torch")
        self.path = path
        self._run = self._openvino(path) if config.backend == "openvino" else self._onnxruntime(path)
        self.settings = self.info.settings
        self.is_metric = self.info.is_metric
        self.max_depth = self.info.max_depth
        self.parameters = self.info.parameters
        self.untrained = self.info.untrained

    def _read_info(self, text: str | None) -> OnnxModelInfo:
        if not text:
            raise MonoModelError(f"{self.path} was not exported by depth-annotation mono export-onnx (no {META_KEY})")
        return OnnxModelInfo.from_json(text)

    def _onnxruntime(self, path: Path) -> Any:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise _runtime_missing("onnxruntime", exc) from None
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        # no busy-waiting between runs: on a robot's few cores the node's other work needs them
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self.config.threads > 0:
            options.intra_op_num_threads = self.config.threads
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for an unreadable model
            raise MonoModelError(f"{path}: ONNX Runtime cannot load it: {str(exc).splitlines()[0]}") from None
        self.info = self._read_info(session.get_modelmeta().custom_metadata_map.get(META_KEY))
        self.runtime = f"ONNX Runtime {ort.__version__}"

        def run(pixel_values: np.ndarray) -> np.ndarray:
            out: np.ndarray = session.run(None, {"pixel_values": pixel_values})[0]
            return out

        return run

    def _openvino(self, path: Path) -> Any:
        try:
            import openvino as ov
        except ImportError as exc:
            raise _runtime_missing("openvino", exc) from None
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            raise MonoModelError(f"{path}: OpenVINO cannot load it: {str(exc).splitlines()[0]}") from None
        key = ["framework", META_KEY]
        self.info = self._read_info(model.get_rt_info(key).astype(str) if model.has_rt_info(key) else None)
        properties: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if self.config.threads > 0:
            properties["INFERENCE_NUM_THREADS"] = self.config.threads
        if not self.config.fp16:
            properties["INFERENCE_PRECISION_HINT"] = "f32"  # else OpenVINO's choice: bf16 where the CPU has it
        compiled = core.compile_model(model, "CPU", properties)
        self.precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # what it runs at
        self.runtime = f"OpenVINO {ov.get_version().split('-')[0]}"
        request = compiled.create_infer_request()

        def run(pixel_values: np.ndarray) -> np.ndarray:
            result = request.infer({0: pixel_values})
            return np.asarray(result[compiled.output(0)])

        return run

    def describe(self) -> str:
        i = self.info
        precision = f", {self.precision}" if self.config.backend == "openvino" else ", fp32"
        return (
            f"{self.runtime} on the CPU{precision}, network input {i.network_height}x{i.network_width} "
            f"(exported for {i.image_width}x{i.image_height} images at {i.input_size})"
        )

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        i = self.info
        size = network_input_size(height, width, (i.input_size, i.input_size), keep_aspect_ratio=True, multiple=14)
        if size != (i.network_height, i.network_width):
            raise MonoModelError(
                f"{self.path.name} takes a {i.network_height}x{i.network_width} network input (exported for "
                f"{i.image_width}x{i.image_height} images); a {width}x{height} image needs {size[0]}x{size[1]}: "
                f"export again with --image-size {width}x{height} --size {i.input_size}"
            )
        return size

    def _infer(
        self, images: list[np.ndarray], transform: PixelTransform | None
    ) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        import cv2

        h, w = images[0].shape[:2]
        size = self.network_size(h, w)
        outs = []
        for image in images:
            pred = self._run(pil_preprocess(image, size, self.settings))[0].astype(np.float32, copy=False)
            # bilinear, half-pixel centres: what torch's interpolate(align_corners=False) does
            outs.append(cv2.resize(pred, (w, h), interpolation=cv2.INTER_LINEAR))
        return outs, None
