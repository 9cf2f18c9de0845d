"""The annotation round trip (the guide's steps 4-5): Label Studio exports in, quality out.

Imports a Label Studio JSON export of the dataset's tasks (brush RLE, polygons and
keypoints, decoded by the Label Studio SDK in its own environment) into the
dataset as label images and 3D keypoints; marks the guide's two-annotator overlap
on exported tasks; validates annotations (IoU, Cohen's kappa, keypoint agreement
and surface distance, mask-vs-depth MAD check) against thresholds from
`config/annotation_validation.yaml`; writes the dataset report (JSON + HTML) and
the re-annotation task file; and turns the synthetic scene's ground truth into an
annotators' export with controlled mistakes, for tests, benchmarks and the demo.
"""

from typing import TYPE_CHECKING

from depth_annotation.common import lazy_exports

if TYPE_CHECKING:
    from .config import ValidationConfig as ValidationConfig
    from .config import config_from_dict as config_from_dict
    from .config import load_validation_config as load_validation_config
    from .errors import AnnotationDatasetError as AnnotationDatasetError
    from .errors import AnnotationDatasetLockedError as AnnotationDatasetLockedError
    from .errors import AnnotationImportError as AnnotationImportError
    from .errors import LabelStudioFormatError as LabelStudioFormatError
    from .errors import LabelStudioServerError as LabelStudioServerError
    from .errors import LabelStudioUnavailable as LabelStudioUnavailable
    from .errors import ValidationConfigError as ValidationConfigError
    from .keypoints3d import KEYPOINT_DTYPE as KEYPOINT_DTYPE
    from .keypoints3d import Keypoint3D as Keypoint3D
    from .keypoints3d import backproject_click as backproject_click
    from .keypoints3d import match_keypoints as match_keypoints
    from .labelstudio_codec import LabelStudioCodec as LabelStudioCodec
    from .labelstudio_codec import PolygonRegion as PolygonRegion
    from .labelstudio_codec import RleRegion as RleRegion
    from .labelstudio_codec import labelstudio_python as labelstudio_python
    from .labelstudio_server import Credentials as Credentials
    from .labelstudio_server import LabelStudioClient as LabelStudioClient
    from .labelstudio_server import LabelStudioServer as LabelStudioServer
    from .labelstudio_server import ProjectInfo as ProjectInfo
    from .labelstudio_server import data_dir_of as data_dir_of
    from .labelstudio_server import free_port as free_port
    from .labelstudio_server import load_credentials as load_credentials
    from .labelstudio_server import print_login as print_login
    from .labelstudio_server import pull_export as pull_export
    from .labelstudio_server import session_cookie as session_cookie
    from .labelstudio_server import setup_project as setup_project
    from .labelstudio_server import write_state as write_state
    from .ls_import import ImportResult as ImportResult
    from .ls_import import import_export as import_export
    from .metrics import class_iou as class_iou
    from .metrics import cohen_kappa as cohen_kappa
    from .metrics import mask_depth_outliers as mask_depth_outliers
    from .metrics import surface_distance_mm as surface_distance_mm
    from .overlap import choose_overlap as choose_overlap
    from .overlap import mark_overlap as mark_overlap
    from .report import ValidationSummary as ValidationSummary
    from .report import validate_dataset as validate_dataset
    from .store import UNLABELLED as UNLABELLED
    from .store import dataset_files as dataset_files
    from .store import dataset_lock as dataset_lock
    from .synthetic_export import AnnotatorProfile as AnnotatorProfile
    from .synthetic_export import annotators_export as annotators_export
    from .synthetic_export import draw as draw
    from .synthetic_export import load_tasks as load_tasks
    from .synthetic_export import synthetic_dataset as synthetic_dataset

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
