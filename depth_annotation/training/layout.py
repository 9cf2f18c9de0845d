"""Names of what the training outputs read and write, in one place.

Read from `export/dataset.h5` (the exporter's layout, `dataset/hdf5_writer.py`, and
the annotation import's, issue 16's `annotation/store.py`):

    /episode_N/depth                 uint16 (T, H, W) mm, 0 = no depth; attr depth_scale (m per unit)
    /episode_N/color                 uint8 (T, H, W, 3) RGB
    /episode_N/camera_intrinsics     float32 (4,) fx, fy, cx, cy; K, D; attrs width, height, distortion_model
    /episode_N/segmentation          uint8 (A, H, W) taxonomy ids, 0 = void, 255 = nobody labelled the pixel
    /episode_N/segmentation_index    int64 (A,) the episode frame of each segmentation row
    /episode_N/segmentation_source   str (A,) whose annotation the row is
    /episode_N/keypoints_3d          compound (K,): frame_index, annotator, name, u, v, xyz (camera, m), reason
    /episode_N/camera_to_base        float64 (4, 4) or (T, 4, 4), optional: camera optical frame -> robot base

Written to `export/training.h5` (by `depth-annotation pointclouds`), per episode,
rows in the order of `frame_index`:

    /episode_N/frame_index                      int64 (A,)  annotated frames (= segmentation_index when written)
    /episode_N/camera_to_base                   float64 (A, 4, 4), when known
    /episode_N/pointcloud_<N>/points_camera     float32 (A, N, 3) metres, camera optical frame
    /episode_N/pointcloud_<N>/points_base       float32 (A, N, 3) metres, robot base frame (when known)
    /episode_N/pointcloud_<N>/labels            uint8 (A, N) segmentation id of each point's source pixel
    /episode_N/pointcloud_<N>/colors            uint8 (A, N, 3) RGB of the source pixel
    /episode_N/pointcloud_<N>/pixels            int32 (A, N, 2) source pixel (u, v)
    /episode_N/pointcloud_<N>/num_valid         int32 (A,) distinct points; rows past it repeat earlier ones
    /episode_N/pointcloud_<N>/presample_voxel_m float32 (A,) voxel size of the pre-sampling before FPS
    /episode_N/voxels/coords                    int16 (M, 3) occupied voxel (i, j, k) of every frame, concatenated
    /episode_N/voxels/labels                    uint8 (M,) majority label of the voxel's points (ties: lower id)
    /episode_N/voxels/offsets                   int64 (A + 1,) frame a's voxels are rows offsets[a]:offsets[a+1]
    /episode_N/voxels/dense                     uint8 (A, X, Y, Z) the same as a dense grid, 0 = empty (optional)

`voxels` attrs: voxel_size_m, origin_m (the workspace box's minimum corner),
shape (X, Y, Z), frame ("base" when camera_to_base is known, else "camera");
voxel (i, j, k) spans origin + [i, i+1) * voxel_size along x, and so on.
"""

from __future__ import annotations

SCHEMA_VERSION = 1
TRAINING_FILE = "export/training.h5"
DATASET_FILE = "export/dataset.h5"  # unless dataset_info.json's files.hdf5 says otherwise

# The exporter's datasets.
DEPTH = "depth"
COLOR = "color"
STAMPS = "timestamps_ns"
INTRINSICS = "camera_intrinsics"

# The annotation import's datasets (issue 16). Change them here if that layout changes.
SEGMENTATION = "segmentation"
SEGMENTATION_INDEX = "segmentation_index"
SEGMENTATION_SOURCE = "segmentation_source"
KEYPOINTS = "keypoints_3d"
UNLABELLED = 255  # segmentation value of a pixel with depth that nobody labelled
PREDICTION_PREFIX = "prediction:"  # keypoint annotators that are models, not people

# Optional extrinsics: the camera optical frame -> robot base (4x4), static or per frame.
CAMERA_TO_BASE = "camera_to_base"

# training.h5
FRAME_INDEX = "frame_index"
VOXELS = "voxels"


def pointcloud_group(num_points: int) -> str:
    return f"pointcloud_{num_points}"
