"""The live exporter, for a camera's topics or `ros2 bag play` (or `depth-annotation play`) of a capture.

ros2 launch depth_annotation export.launch.py output_dir:=/data/ds scene_id:=kitchen_table
ros2 bag play /data/session1/bag

Its topics (config/exporter.yaml) are relative: it listens in `camera_namespace`, like the other nodes.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from depth_annotation.nodes.launch_support import SHUTDOWN_TIMEOUT_S, dds_profile_argument, with_dds_profile

PACKAGE = "depth_annotation"


def generate_launch_description() -> LaunchDescription:
    cfg = LaunchConfiguration
    args = [
        DeclareLaunchArgument("camera_namespace", default_value="camera", description="namespace of the camera topics"),
        DeclareLaunchArgument("output_dir", default_value="dataset", description="dataset directory"),
        DeclareLaunchArgument("scene_id", default_value="live", description="scene id (splits are per scene)"),
        DeclareLaunchArgument(
            "codec",
            default_value="gzip",
            choices=["gzip", "gzip-fast", "blosc-lz4", "blosc-zstd", "lzf", "none"],
            description="chunk compression",
        ),
        dds_profile_argument(),
    ]
    exporter = Node(
        package=PACKAGE,
        executable="live_exporter_node",
        name="live_exporter_node",
        namespace=cfg("camera_namespace"),
        output="screen",
        sigterm_timeout=SHUTDOWN_TIMEOUT_S,
        parameters=[
            PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "exporter.yaml"]),
            {
                "output_dir": cfg("output_dir"),
                "scene_id": ParameterValue(cfg("scene_id"), value_type=str),
                "codec": cfg("codec"),
            },
        ],
    )
    return LaunchDescription(args + [with_dds_profile(exporter)])
