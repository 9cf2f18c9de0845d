"""Everything on one camera: driver, QC, calibration, optionally monocular depth and the live exporter.

ros2 launch depth_annotation full.launch.py source:=synthetic enable_mono:=true
ros2 launch depth_annotation full.launch.py camera_namespace:=cam1 camera_name:=cam1 serial_no:=123 enable_export:=true

Every argument of the included files is forwarded (README "Launch" lists them).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

PACKAGE = "depth_annotation"

# argument -> the included files that take it
FORWARDED = {
    "capture.launch.py": (
        "source",
        "serial_no",
        "bag_path",
        "camera_namespace",
        "camera_name",
        "color_profile",
        "depth_profile",
        "output_dir",
        "dds_profile",
    ),
    "mono_depth.launch.py": (
        "camera_namespace",
        "model",
        "device",
        "backend",
        "metric_mode",
        "scale_file",
        "dds_profile",
    ),
    "export.launch.py": ("camera_namespace", "output_dir", "scene_id", "codec", "dds_profile"),
}


def include(name: str, condition=None) -> IncludeLaunchDescription:
    return IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare(PACKAGE), "launch", name])),
        launch_arguments=[(arg, LaunchConfiguration(arg)) for arg in FORWARDED[name]],
        condition=condition,
    )


def generate_launch_description() -> LaunchDescription:
    cfg = LaunchConfiguration
    args = [
        DeclareLaunchArgument(
            "source",
            default_value="synthetic",
            choices=["device", "recording", "synthetic", "bag"],  # bag: deprecated name of recording
            description="frame source",
        ),
        DeclareLaunchArgument("serial_no", default_value="", description="device serial number"),
        DeclareLaunchArgument("bag_path", default_value="", description="RealSense recording for source:=recording"),
        DeclareLaunchArgument("camera_namespace", default_value="camera", description="namespace of the camera"),
        DeclareLaunchArgument("camera_name", default_value="camera", description="TF frame prefix (<name>_link, ...)"),
        DeclareLaunchArgument("color_profile", default_value="640x480x30", description="colour WIDTHxHEIGHTxFPS"),
        DeclareLaunchArgument("depth_profile", default_value="640x480x30", description="depth WIDTHxHEIGHTxFPS"),
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
        DeclareLaunchArgument(
            "codec",
            default_value="gzip",
            choices=["gzip", "gzip-fast", "blosc-lz4", "blosc-zstd", "lzf", "none"],
            description="exporter: chunk compression",
        ),
        DeclareLaunchArgument(
            "dds_profile", default_value="", description="Fast DDS profile for every node started (empty: stock)"
        ),
    ]
    return LaunchDescription(
        args
        + [
            include("capture.launch.py"),
            include("mono_depth.launch.py", IfCondition(cfg("enable_mono"))),
            include("export.launch.py", IfCondition(cfg("enable_export"))),
        ]
    )
