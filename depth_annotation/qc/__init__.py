"""Live depth quality: per-frame coverage, holes, range, noise and gap checks with reasons, and the
JSON + HTML session report.
"""

from typing import TYPE_CHECKING

from depth_annotation.common import lazy_exports

if TYPE_CHECKING:
    from .coverage import (
        BAD_ENCODING,
        FRAME_GAP,
        HIGH_NOISE,
        LOW_COVERAGE,
        OUT_OF_RANGE,
        RESOLUTION_CHANGE,
        ROI_HOLE,
        TOO_CLOSE,
        CoverageAnalyzer,
        CoverageConfig,
        FrameQuality,
        error_quality,
        grid_fractions,
        median_mm,
    )
    from .errors import CoverageConfigError
    from .report import QCSession

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
