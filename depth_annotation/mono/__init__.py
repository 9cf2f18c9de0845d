"""Monocular depth: Depth Anything V2 loading and inference (torch on CPU/GPU with the device
path; ONNX Runtime or OpenVINO on an exported model for CPUs), and the metric alignment of its
relative output (scale file, sensor fit, metric model).
"""

from typing import TYPE_CHECKING

from depth_annotation.common import lazy_exports

if TYPE_CHECKING:
    from .depth_folder import write_depth_folder
    from .errors import MetricConfigError, MonoModelError
    from .metric import MODES, MetricAligner, PixelTransform, load_scale_file
    from .model import (
        BACKENDS,
        DEFAULT_MODEL,
        PREPROCESS,
        DepthAnything,
        DepthModel,
        MonoModelConfig,
        Prediction,
        load_model,
        save_tiny_model,
        small_sized_model,
    )
    from .onnx_backend import OnnxDepthModel, OnnxModelInfo, export_onnx
    from .preprocess import ProcessorSettings, TensorPreprocessor, network_input_size, pil_preprocess, resample_taps

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
