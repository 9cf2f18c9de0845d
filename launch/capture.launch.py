"""Driver + live coverage QC + calibration service on one camera.

ros2 launch depth_annotation capture.launch.py source:=device serial_no:=123456789 output_dir:=/data/session1
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "depth_annotation"


def config(name: str) -> PathJoinSubstitution:
    return PathJoinSubstitution([FindPackageShare(PACKAGE), "config", name])


def generate_launch_description() -> LaunchDescription:
    ns = LaunchConfiguration("camera_namespace")
    out = LaunchConfiguration("output_dir")
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
            "output_dir", default_value="dataset", description="dataset directory for metadata, QC report, calibration"
        ),
    ]
    driver = Node(
        package=PACKAGE,
        executable="realsense_node",
        name="realsense_node",
        namespace=ns,
        output="screen",
        parameters=[
            config("realsense.yaml"),
            {
                "source": LaunchConfiguration("source"),
                "serial_no": ParameterValue(LaunchConfiguration("serial_no"), value_type=str),
                "bag_path": ParameterValue(LaunchConfiguration("bag_path"), value_type=str),
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
        parameters=[config("coverage_qc.yaml"), {"output_dir": PathJoinSubstitution([out, "qc"])}],
    )
    calibration = Node(
        package=PACKAGE,
        executable="calibration_node",
        name="calibration_node",
        namespace=ns,
        output="screen",
        parameters=[config("calibration.yaml"), {"output_dir": out}],
    )
    return LaunchDescription(args + [driver, qc, calibration])
