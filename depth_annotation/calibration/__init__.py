"""Calibration: ChArUco / checkerboard boards (definition, detection, rendering), view selection,
intrinsics, stereo extrinsics, depth verification against the board plane, and the robust
scale/shift fit behind the monocular scale.
"""

from typing import TYPE_CHECKING

from depth_annotation.common import lazy_exports

if TYPE_CHECKING:
    from .board import BoardDetector, BoardSpec
    from .board_render import place_board, render_board, varied_board_poses
    from .errors import BoardError, CalibrationError, ScaleFitError
    from .scale_fit import ScaleShift, evaluate, fit_scale_shift
    from .solver import (
        ViewSelector,
        board_mask,
        calibrate_intrinsics,
        calibrate_stereo,
        calibration_document,
        estimate_board_pose,
        expected_plane_depth,
        verify_depth,
    )

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
