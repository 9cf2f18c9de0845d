"""The live exporter, for `ros2 bag play` (or `depth-annotation play`) of a capture.

ros2 launch depth_annotation export.launch.py output_dir:=/data/ds scene_id:=kitchen_table
ros2 bag play /data/session1/bag
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "depth_annotation"


def generate_launch_description() -> LaunchDescription:
    args = [
        DeclareLaunchArgument("output_dir", default_value="dataset", description="dataset directory"),
        DeclareLaunchArgument("scene_id", default_value="live", description="scene id (splits are per scene)"),
    ]
    exporter = Node(
        package=PACKAGE,
        executable="live_exporter_node",
        name="live_exporter_node",
        output="screen",
        parameters=[
            PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "exporter.yaml"]),
            {
                "output_dir": LaunchConfiguration("output_dir"),
                "scene_id": ParameterValue(LaunchConfiguration("scene_id"), value_type=str),
            },
        ],
    )
    return LaunchDescription(args + [exporter])
