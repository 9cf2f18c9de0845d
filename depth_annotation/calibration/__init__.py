"""Calibration: ChArUco / checkerboard boards (definition, detection, rendering), view selection,
intrinsics, stereo extrinsics, depth verification against the board plane, the robust
scale/shift fit behind the monocular scale, the calibration session a node or the offline
command drives, and the calibration JSON on disk.
"""

from typing import TYPE_CHECKING

from depth_annotation.common import lazy_exports

if TYPE_CHECKING:
    from .board import ARUCO_DICTIONARIES, BoardDetector, BoardSpec, CharucoApi, charuco_api
    from .board_render import place_board, render_board, varied_board_poses
    from .calibration_file import CALIBRATION_FILE, save_camera_info_yaml, save_section
    from .errors import BoardError, CalibrationError, ScaleFitError
    from .offline import OfflineCalibration, OfflineOutcome
    from .report import write_report_png
    from .scale_fit import ScaleShift, evaluate, fit_scale_shift, fit_scale_shift_to_distances, holdout_split
    from .session import (
        MONO_REFERENCES,
        CalibrationSession,
        CaptureResult,
        DepthCheckSummary,
        KeptPair,
        KeptView,
        MonoSample,
        MonoScaleResult,
        SessionConfig,
        gray_image,
        image_digest,
        median_check,
        pixel_rays,
        sample_bilinear,
    )
    from .solver import (
        OPEN,
        CalibrationGates,
        DepthCheck,
        IntrinsicsResult,
        StereoResult,
        ViewParams,
        ViewSelector,
        board_mask,
        calibrate_intrinsics,
        calibrate_stereo,
        calibration_document,
        corner_coverage,
        coverage_of,
        estimate_board_pose,
        expected_plane_depth,
        verify_depth,
    )

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
