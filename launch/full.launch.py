"""Everything on one camera: driver, QC, calibration, optionally monocular depth and the live exporter.

ros2 launch depth_annotation full.launch.py source:=synthetic enable_mono:=true
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

PACKAGE = "depth_annotation"


def include(name: str, arguments: dict, condition=None) -> IncludeLaunchDescription:
    return IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare(PACKAGE), "launch", name])),
        launch_arguments=arguments.items(),
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
        DeclareLaunchArgument("output_dir", default_value="dataset", description="dataset directory"),
        DeclareLaunchArgument("enable_mono", default_value="false", description="run mono_depth_node"),
        DeclareLaunchArgument(
            "model", default_value="depth-anything/Depth-Anything-V2-Small-hf", description="mono model"
        ),
        DeclareLaunchArgument("enable_export", default_value="false", description="run live_exporter_node"),
    ]
    return LaunchDescription(
        args
        + [
            include(
                "capture.launch.py",
                {
                    "source": cfg("source"),
                    "serial_no": cfg("serial_no"),
                    "bag_path": cfg("bag_path"),
                    "camera_namespace": cfg("camera_namespace"),
                    "output_dir": cfg("output_dir"),
                },
            ),
            include(
                "mono_depth.launch.py",
                {"camera_namespace": cfg("camera_namespace"), "model": cfg("model")},
                IfCondition(cfg("enable_mono")),
            ),
            include("export.launch.py", {"output_dir": cfg("output_dir")}, IfCondition(cfg("enable_export"))),
        ]
    )
