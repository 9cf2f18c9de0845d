"""The live exporter, for a camera's topics or `ros2 bag play` (or `depth-annotation play`) of a capture.

ros2 launch depth_annotation export.launch.py output_dir:=/data/ds scene_id:=kitchen_table
ros2 bag play /data/session1/bag

Its topics (config/exporter.yaml) are relative: it listens in `camera_namespace`, like the other nodes.
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
        DeclareLaunchArgument("output_dir", default_value="dataset", description="dataset directory"),
        DeclareLaunchArgument("scene_id", default_value="live", description="scene id (splits are per scene)"),
        DeclareLaunchArgument(
            "codec",
            default_value="gzip",
            choices=["gzip", "gzip-fast", "blosc-lz4", "blosc-zstd", "lzf", "none"],
            description="chunk compression",
        ),
        DDS_PROFILE_ARG,
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
    return LaunchDescription(args + [GroupAction([OpaqueFunction(function=dds_profile_file), exporter], scoped=True)])
