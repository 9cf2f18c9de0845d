"""Monocular depth: Depth Anything V2 loading and inference, and the metric alignment of its
relative output (scale file, sensor fit, metric model).
"""

from typing import TYPE_CHECKING

from depth_annotation.common import lazy_exports

if TYPE_CHECKING:
    from .errors import MetricConfigError, MonoModelError
    from .metric import MODES, MetricAligner, load_scale_file
    from .model import DEFAULT_MODEL, DepthAnything, MonoModelConfig, save_tiny_model, small_sized_model

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
