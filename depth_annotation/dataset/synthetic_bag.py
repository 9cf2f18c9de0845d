"""Write a rosbag2 recording of the synthetic camera, as the driver + QC node would have recorded it.

Used by the exporter tests, the benchmarks and the demo's offline path: topics,
types, frame ids and stamps are the driver's, and DepthQuality comes from the
same coverage core the QC node runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from depth_annotation.common import DEFAULT_DEPTH_TO_COLOR, SyntheticScene, default_intrinsics, orbit_pose
from depth_annotation.qc import CoverageAnalyzer

from . import bag_io
from .exporter import DEFAULT_TOPICS


def write_synthetic_bag(
    path: str | Path,
    *,
    frames: int = 30,
    fps: float = 30.0,
    width: int = 640,
    height: int = 480,
    seed: int = 0,
    storage: str = "mcap",
    with_quality: bool = True,
    start_ns: int = 1_700_000_000_000_000_000,
    hole_frames: frozenset[int] = frozenset(),
) -> list[tuple[int, Any]]:
    """Record `frames` synthetic frames; returns the rendered frames (ground truth for tests)."""
    scene = SyntheticScene(seed)
    intr = default_intrinsics(width, height)
    analyzer = CoverageAnalyzer()
    rendered = []
    t = bag_io.TYPESTORE.types
    with bag_io.BagWriter(path, storage=storage) as w:
        w.add_topic(DEFAULT_TOPICS["depth"], "sensor_msgs/msg/Image")
        w.add_topic(DEFAULT_TOPICS["color"], "sensor_msgs/msg/Image")
        w.add_topic(DEFAULT_TOPICS["info"], "sensor_msgs/msg/CameraInfo")
        w.add_topic("/tf_static", "tf2_msgs/msg/TFMessage")
        if with_quality:
            w.add_topic(DEFAULT_TOPICS["quality"], "depth_annotation/msg/DepthQuality")
        c2d = DEFAULT_DEPTH_TO_COLOR.inverse()  # colour pose in the depth frame
        q = c2d.quaternion_xyzw()
        tf = t["geometry_msgs/msg/TransformStamped"](
            header=bag_io.header(start_ns, "camera_depth_optical_frame"),
            child_frame_id="camera_color_optical_frame",
            transform=t["geometry_msgs/msg/Transform"](
                translation=t["geometry_msgs/msg/Vector3"](
                    x=c2d.translation[0], y=c2d.translation[1], z=c2d.translation[2]
                ),
                rotation=t["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
            ),
        )
        w.write("/tf_static", start_ns, t["tf2_msgs/msg/TFMessage"](transforms=[tf]))
        for i in range(frames):
            frame = scene.render(intr, orbit_pose(i / fps), frame_seed=i)
            depth = frame.depth_mm
            if i in hole_frames:
                depth = depth.copy()
                depth[height // 5 : 4 * height // 5, width // 5 : 4 * width // 5] = 0
                frame.depth_mm = depth
            stamp = start_ns + int(round(i * 1e9 / fps))
            fid = "camera_color_optical_frame"
            # receive times a few ms after the stamp, in the order the driver publishes
            w.write(DEFAULT_TOPICS["color"], stamp + 2_000_000, bag_io.image(frame.color, "rgb8", stamp, fid))
            w.write(DEFAULT_TOPICS["depth"], stamp + 3_000_000, bag_io.image(depth, "16UC1", stamp, fid))
            w.write(DEFAULT_TOPICS["info"], stamp + 3_100_000, bag_io.camera_info(intr, stamp, fid))
            if with_quality:
                qr = analyzer.analyze_mm(depth, stamp)
                msg = t["depth_annotation/msg/DepthQuality"](
                    header=bag_io.header(stamp, fid),
                    status=qr.status,
                    reasons=list(qr.reasons),
                    width=qr.width,
                    height=qr.height,
                    valid_fraction=qr.valid_fraction,
                    in_range_fraction=qr.in_range_fraction,
                    roi_valid_fraction=qr.roi_valid_fraction,
                    near_fraction=qr.near_fraction,
                    median_depth_m=qr.median_depth_m,
                    temporal_noise_m=qr.temporal_noise_m,
                    frame_gap_s=qr.frame_gap_s,
                    grid_rows=qr.grid_valid_fraction.shape[0],
                    grid_cols=qr.grid_valid_fraction.shape[1],
                    grid_valid_fraction=qr.grid_valid_fraction.ravel().astype("float32"),
                )
                w.write(DEFAULT_TOPICS["quality"], stamp + 5_000_000, msg)
            rendered.append((stamp, frame))
    return rendered
