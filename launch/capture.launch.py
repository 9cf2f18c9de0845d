"""Driver + live coverage QC + calibration service on one camera.

ros2 launch depth_annotation capture.launch.py source:=device serial_no:=123456789 output_dir:=/data/session1
ros2 launch depth_annotation capture.launch.py camera_namespace:=cam1 camera_name:=cam1 dds_profile:=large_data_shm
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from depth_annotation.nodes.launch_support import SHUTDOWN_TIMEOUT_S, dds_profile_argument, with_dds_profile

PACKAGE = "depth_annotation"


def config(name: str) -> PathJoinSubstitution:
    return PathJoinSubstitution([FindPackageShare(PACKAGE), "config", name])


def generate_launch_description() -> LaunchDescription:
    cfg = LaunchConfiguration
    ns = cfg("camera_namespace")
    out = cfg("output_dir")
    args = [
        DeclareLaunchArgument(
            "source",
            default_value="synthetic",
            choices=["device", "recording", "synthetic", "bag"],
            description=(
                "device: a RealSense; recording: a RealSense SDK recording (bag_path); synthetic: the built-in scene; "
                "bag: deprecated name of recording"
            ),
        ),
        DeclareLaunchArgument("serial_no", default_value="", description="device serial number (empty: first found)"),
        DeclareLaunchArgument(
            "bag_path", default_value="", description="RealSense SDK recording (.bag / .db3) for source:=recording"
        ),
        DeclareLaunchArgument(
            "camera_namespace", default_value="camera", description="namespace of the camera's nodes and topics"
        ),
        DeclareLaunchArgument(
            "camera_name",
            default_value="camera",
            description="TF frame id prefix, as realsense-ros: <camera_name>_link, <camera_name>_color_optical_frame",
        ),
        DeclareLaunchArgument("color_profile", default_value="640x480x30", description="colour WIDTHxHEIGHTxFPS"),
        DeclareLaunchArgument("depth_profile", default_value="640x480x30", description="depth WIDTHxHEIGHTxFPS"),
        DeclareLaunchArgument(
            "output_dir", default_value="dataset", description="dataset directory for metadata, QC report, calibration"
        ),
        dds_profile_argument(),
    ]
    driver = Node(
        package=PACKAGE,
        executable="realsense_node",
        name="realsense_node",
        namespace=ns,
        output="screen",
        sigterm_timeout=SHUTDOWN_TIMEOUT_S,
        parameters=[
            config("realsense.yaml"),
            {
                "source": cfg("source"),
                "serial_no": ParameterValue(cfg("serial_no"), value_type=str),
                "bag_path": ParameterValue(cfg("bag_path"), value_type=str),
                "camera_name": ParameterValue(cfg("camera_name"), value_type=str),
                "color_profile": ParameterValue(cfg("color_profile"), value_type=str),
                "depth_profile": ParameterValue(cfg("depth_profile"), value_type=str),
                "output_dir": PathJoinSubstitution([out, "captures"]),
            },
        ],
    )
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
        parameters=[config("calibration.yaml"), {"output_dir": out}],
    )
    nodes = with_dds_profile(driver, qc, calibration)
    return LaunchDescription(args + [nodes])
