"""Monocular depth on the camera's colour stream, fitted per frame against its aligned depth.

ros2 launch depth_annotation mono_depth.launch.py model:=/models/Depth-Anything-V2-Small-hf device:=cuda
ros2 launch depth_annotation mono_depth.launch.py model:=/models/small_266.onnx backend:=openvino
"""

from pathlib import Path

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "depth_annotation"
# Nodes write their reports and datasets at shutdown; launch's default (5 s after SIGINT, then SIGTERM)
# cut the exporter's final write short under load (dataset.h5.partial), so they get this long.
SHUTDOWN_TIMEOUT_S = "30"


def dds_profile_file(context: LaunchContext) -> list[SetEnvironmentVariable]:
    """`dds_profile:=` for the nodes this file starts: a path, or a name in config/dds/ (empty: stock, unchanged).

    Runs inside the scoped GroupAction below, so the variable reaches only those nodes.
    """
    value = LaunchConfiguration("dds_profile").perform(context).strip()
    if not value:
        return []
    path = Path(value).expanduser()
    if not path.is_file():
        share = Path(FindPackageShare(PACKAGE).perform(context)) / "config" / "dds"
        path = share / (value if value.endswith(".xml") else f"{value}.xml")
    if not path.is_file():
        raise RuntimeError(f"dds_profile:={value}: no such file (nor config/dds/{path.name} in {PACKAGE})")
    return [SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", str(path.resolve()))]


DDS_PROFILE_ARG = DeclareLaunchArgument(
    "dds_profile",
    default_value="",
    description=(
        "Fast DDS XML profile for the nodes started here: a path or a name in config/dds/ "
        "(large_data_shm, loopback_large_data); empty: the environment's middleware settings, unchanged"
    ),
)


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
        DDS_PROFILE_ARG,
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
    return LaunchDescription(args + [GroupAction([OpaqueFunction(function=dds_profile_file), mono], scoped=True)])
