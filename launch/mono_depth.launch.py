"""Monocular depth on the camera's colour stream, fitted per frame against its aligned depth.

ros2 launch depth_annotation mono_depth.launch.py model:=/models/Depth-Anything-V2-Small-hf device:=cuda
ros2 launch depth_annotation mono_depth.launch.py model:=/models/small_266.onnx backend:=openvino
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
        DeclareLaunchArgument(
            "model",
            default_value="depth-anything/Depth-Anything-V2-Small-hf",
            description="hub id (pre-filled cache) or local directory of a Depth Anything checkpoint",
        ),
        DeclareLaunchArgument("device", default_value="cpu", description="cpu, cuda or cuda:N"),
        DeclareLaunchArgument(
            "backend",
            default_value="torch",
            choices=["torch", "onnxruntime", "openvino"],
            description="torch, or a CPU runtime with model:=FILE.onnx (depth-annotation mono export-onnx)",
        ),
        DeclareLaunchArgument(
            "metric_mode",
            default_value="sensor_fit",
            choices=["scale_file", "sensor_fit", "metric_model"],
            description="how relative depth becomes metric",
        ),
        DeclareLaunchArgument("scale_file", default_value="", description="calibration JSON with mono_scale"),
        dds_profile_argument(),
    ]
    mono = Node(
        package=PACKAGE,
        executable="mono_depth_node",
        name="mono_depth_node",
        namespace=cfg("camera_namespace"),
        output="screen",
        sigterm_timeout=SHUTDOWN_TIMEOUT_S,
        parameters=[
            PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "mono_depth.yaml"]),
            {
                "model": ParameterValue(cfg("model"), value_type=str),
                "device": cfg("device"),
                "backend": cfg("backend"),
                "metric_mode": cfg("metric_mode"),
                "scale_file": ParameterValue(cfg("scale_file"), value_type=str),
            },
        ],
    )
    return LaunchDescription(args + [with_dds_profile(mono)])
