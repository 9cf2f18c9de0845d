"""Training-ready outputs of an annotated dataset: labelled point clouds (farthest-point sampled to a
fixed size) and voxel grids in `export/training.h5`, and a PyTorch dataset/loader with the guide's
depth normalisation, augmentations and camera->base transform, plus the one-batch smoke check.
"""

from typing import TYPE_CHECKING

from depth_annotation.common import lazy_exports

if TYPE_CHECKING:
    from .augment import AugmentConfig, dropout_mask
    from .batch_preview import SmokeResult, smoke
    from .dataloader import DepthFrameDataset, training_loader
    from .dataset_reader import DatasetPaths, dataset_paths, keypoints_by_frame
    from .errors import StaleTrainingFileError, TrainingDataError
    from .pointcloud import (
        LabelledCloud,
        SampledCloud,
        backproject,
        camera_rays,
        farthest_point_indices,
        sample_cloud,
        transform_points,
    )
    from .synthetic_annotations import annotate_with_ground_truth
    from .training_file import PointCloudConfig, PointCloudReport, write_pointclouds
    from .voxels import VoxelSpec, dense_grid, voxelize

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
