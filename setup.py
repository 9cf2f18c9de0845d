"""pip install for machines without a ROS install (the offline CLI and the ROS-free core).

On a robot, `colcon build` uses CMakeLists.txt (ament_cmake: the msg/ and srv/
interfaces need rosidl) and ignores this file. The repository's own .venv is set
up by scripts/setup_env.sh, which builds the interfaces and installs the same
executables listed in scripts/entry_points.txt. Do not `pip install .` into that
.venv: pip would remove the rosidl-generated modules installed there.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def entry_points() -> list[str]:
    lines = (HERE / "scripts" / "entry_points.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="depth_annotation",
    version="0.1.0",
    packages=find_packages(include=["depth_annotation", "depth_annotation.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/depth_annotation"]),
        ("share/depth_annotation", ["package.xml"]),
    ],
    entry_points={"console_scripts": entry_points()},
)
