"""The shared base every other subpackage may use: image <-> array conversion, camera models
(REP-103/104), the label taxonomy, colorized depth, crash-safe writes, one clean-stop rule for
SIGINT/SIGTERM, and the synthetic tabletop scene the tests, benchmarks and demo render. Imports
no other subpackage of depth_annotation.
"""

from typing import TYPE_CHECKING

from .lazy_api import lazy_exports

if TYPE_CHECKING:
    from .camera import (
        Extrinsics,
        Intrinsics,
        from_camera_info_yaml,
        look_at,
        rotation_from_euler_xyz,
        rotation_from_quaternion,
        to_camera_info_yaml,
    )
    from .colorize import colorize_depth
    from .errors import CameraModelError, DepthAnnotationError, ImageConversionError, TaxonomyError
    from .images import (
        ENCODINGS,
        ImageFields,
        array_to_fields,
        depth_to_metres,
        depth_to_millimetres,
        image_to_array,
        image_to_rgb,
    )
    from .lazy_api import lazy_exports
    from .qc_status import NO_QC, NO_QC_NAME, QcStatus, status_name
    from .robust_stats import MAD_TO_SIGMA, mad_sigma, upper_median
    from .stamp_matching import StampBuffer, nearest_index
    from .stop_signals import SIGINT_EXIT, SIGTERM_EXIT, Stopped, StopSignals
    from .synthetic_scene import (
        DEFAULT_DEPTH_TO_COLOR,
        MIN_RANGE_M,
        DepthNoiseModel,
        SyntheticScene,
        default_intrinsics,
        orbit_pose,
    )
    from .taxonomy import DEFAULT_TAXONOMY, LABEL_IDS, Taxonomy, default_taxonomy_path, load_taxonomy

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
