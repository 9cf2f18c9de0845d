"""Pre-annotation from depth: the table plane, objects above it, void and background proposed
geometrically per frame, and written as Label Studio predictions (brush RLE from Label Studio's SDK)
so annotators refine instead of drawing; optionally refined by Segment Anything (transformers).
"""

from typing import TYPE_CHECKING

from depth_annotation.common import lazy_exports

if TYPE_CHECKING:
    from .dataset_preannotation import (
        PreannotationReport,
        episode_intrinsics,
        load_preannotation_config,
        preannotate_dataset,
    )
    from .errors import LabelStudioEncoderError, PreannotationConfigError, PreannotationError
    from .geometric import GeometricConfig, GeometricResult, Region, preannotate_frame
    from .labelstudio_predictions import (
        MODEL_VERSION,
        BrushRleEncoder,
        BrushTarget,
        brush_target,
        frame_prediction,
        labelstudio_python,
    )
    from .sam import DEFAULT_SAM, SamBackend, SamBackendConfig, prompt_of, refine_regions, save_tiny_sam

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
