"""QC, calibration, monocular depth and the live exporter on realsense-ros's `realsense2_camera` driver.

ros2 launch realsense2_camera rs_launch.py align_depth.enable:=true
ros2 launch depth_annotation realsense2_camera_pipeline.launch.py enable_mono:=true enable_export:=true

realsense2_camera publishes `/<camera_namespace>/<camera_name>/color/image_raw`,
`.../aligned_depth_to_color/image_raw` and their camera_info (both default to `camera`:
`/camera/camera/...`), with frame ids `<camera_name>_color_optical_frame` etc. Our nodes run in
that same namespace, so their relative topic names are realsense-ros's names. realsense2_camera
offers no `set_camera_info`, so the calibration node's `push_to_driver` is off (logged at start).
"""

from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    IncludeLaunchDescription,
    LogInfo,
)
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from depth_annotation.nodes.launch_support import SHUTDOWN_TIMEOUT_S, dds_profile_argument, with_dds_profile

PACKAGE = "depth_annotation"
PUSH_TO_DRIVER_OFF = (
    "push_to_driver disabled: realsense2_camera offers no set_camera_info; "
    "calibration results go to output_dir/calibration and the latched camera_info topic"
)


def config(name: str) -> PathJoinSubstitution:
    return PathJoinSubstitution([FindPackageShare(PACKAGE), "config", name])


def include(name: str, arguments: dict, condition=None) -> IncludeLaunchDescription:
    return IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare(PACKAGE), "launch", name])),
        launch_arguments=arguments.items(),
        condition=condition,
    )


def generate_launch_description() -> LaunchDescription:
    cfg = LaunchConfiguration
    # realsense2_camera's node is /<camera_namespace>/<camera_name>; its topics are relative to it
    ns = PathJoinSubstitution([cfg("camera_namespace"), cfg("camera_name")])
    out = cfg("output_dir")
    args = [
        DeclareLaunchArgument(
            "camera_namespace", default_value="camera", description="realsense2_camera's camera_namespace"
        ),
        DeclareLaunchArgument("camera_name", default_value="camera", description="realsense2_camera's camera_name"),
        DeclareLaunchArgument("output_dir", default_value="dataset", description="dataset directory"),
        DeclareLaunchArgument("enable_mono", default_value="false", description="run mono_depth_node"),
        DeclareLaunchArgument(
            "model", default_value="depth-anything/Depth-Anything-V2-Small-hf", description="mono model"
        ),
        DeclareLaunchArgument("device", default_value="cpu", description="mono: cpu, cuda or cuda:N"),
        DeclareLaunchArgument(
            "backend", default_value="torch", choices=["torch", "onnxruntime", "openvino"], description="mono runtime"
        ),
        DeclareLaunchArgument(
            "metric_mode",
            default_value="sensor_fit",
            choices=["scale_file", "sensor_fit", "metric_model"],
            description="mono: how relative depth becomes metric",
        ),
        DeclareLaunchArgument("scale_file", default_value="", description="mono: calibration JSON with mono_scale"),
        DeclareLaunchArgument("enable_export", default_value="false", description="run live_exporter_node"),
        DeclareLaunchArgument("scene_id", default_value="live", description="exporter: scene id"),
        dds_profile_argument(),
    ]
    qc = Node(
        package=PACKAGE,
        executable="coverage_qc_node",
        name="coverage_qc_node",
        namespace=ns,
        output="screen",
        sigterm_timeout=SHUTDOWN_TIMEOUT_S,
        parameters=[config("coverage_qc.yaml"), {"output_dir": PathJoinSubstitution([out, "qc"])}],
    )
    calibration = Node(
        package=PACKAGE,
        executable="calibration_node",
        name="calibration_node",
        namespace=ns,
        output="screen",
        sigterm_timeout=SHUTDOWN_TIMEOUT_S,
        parameters=[config("calibration.yaml"), {"output_dir": out, "push_to_driver": False}],
    )
    nodes = with_dds_profile(qc, calibration)
    mono_args = {k: cfg(k) for k in ("model", "device", "backend", "metric_mode", "scale_file", "dds_profile")}
    export_args = {k: cfg(k) for k in ("output_dir", "scene_id", "dds_profile")}
    return LaunchDescription(
        args
        + [
            LogInfo(msg=PUSH_TO_DRIVER_OFF),
            nodes,
            include("mono_depth.launch.py", {"camera_namespace": ns, **mono_args}, IfCondition(cfg("enable_mono"))),
            include("export.launch.py", {"camera_namespace": ns, **export_args}, IfCondition(cfg("enable_export"))),
        ]
    )
