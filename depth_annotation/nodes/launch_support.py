"""What every launch file that starts our nodes shares: the `dds_profile:=` argument scoped to the
nodes it starts, and the shutdown grace period.

The launch files import it from the installed package (colcon installs this module where
`ros2 launch` runs them; a checkout's venv has it on its path), so the four of them cannot drift apart.
"""

from pathlib import Path

from launch import LaunchContext
from launch.actions import DeclareLaunchArgument, GroupAction, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.substitutions import FindPackageShare

PACKAGE = "depth_annotation"
# Nodes write their reports and datasets at shutdown; launch's default (5 s after SIGINT, then SIGTERM)
# cut the exporter's final write short under load (dataset.h5.partial), so they get this long.
SHUTDOWN_TIMEOUT_S = "30"


def dds_profile_file(context: LaunchContext) -> list[SetEnvironmentVariable]:
    """`dds_profile:=` for the nodes a launch file starts: a path, or a name in config/dds/ (empty: stock, unchanged).

    Runs inside the scoped GroupAction of `with_dds_profile`, so the variable reaches only those nodes.
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


def dds_profile_argument() -> DeclareLaunchArgument:
    """The `dds_profile` launch argument (a new action per launch file)."""
    return DeclareLaunchArgument(
        "dds_profile",
        default_value="",
        description=(
            "Fast DDS XML profile for the nodes started here: a path or a name in config/dds/ "
            "(large_data_shm, loopback_large_data); empty: the environment's middleware settings, unchanged"
        ),
    )


def with_dds_profile(*actions: object) -> GroupAction:
    """`actions` in a scoped group that first sets the `dds_profile:=` environment for them alone."""
    return GroupAction([OpaqueFunction(function=dds_profile_file), *actions], scoped=True)
