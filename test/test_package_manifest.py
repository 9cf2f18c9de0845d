"""rosdep installs what the code imports: package.xml, the pinned rosdep keys and requirements/robot.txt agree.

A robot gets its Python packages from `rosdep install` (keys in package.xml) plus
requirements/robot.txt for what no key covers. These tests read every import in
depth_annotation/ and launch/ (top level and inside functions) so a new dependency
cannot land without a way to install it.
"""

from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# ROS packages come from the distribution, not from rosdep's yaml files.
ROS_PACKAGES = {
    "rclpy",
    "rcl_interfaces",
    "builtin_interfaces",
    "ament_index_python",
    "std_msgs",
    "std_srvs",
    "sensor_msgs",
    "diagnostic_msgs",
    "geometry_msgs",
    "tf2_msgs",
    "rosgraph_msgs",
    "launch",
    "launch_ros",
}


def _depends() -> dict[str, set[str]]:
    root = ET.parse(REPO / "package.xml").getroot()
    out: dict[str, set[str]] = {}
    for el in root:
        if el.tag.endswith("depend"):
            out.setdefault(el.tag, set()).add((el.text or "").strip())
    return out


def _keys() -> dict[str, dict]:
    return yaml.safe_load((REPO / "requirements" / "rosdep_keys.yaml").read_text())


def _robot_requirements() -> set[str]:
    lines = (REPO / "requirements" / "robot.txt").read_text().splitlines()
    names = {line.split("#")[0].strip().replace("-", "_") for line in lines if line.split("#")[0].strip()}
    return names | {n.split(".")[0] for n in names}  # backports.zstd is imported as backports


# Modules that run under another interpreter: the Label Studio SDK's own venv (its pins clash
# with ours; README "Annotation round trip"), set up by scripts/setup_env.sh, not by rosdep.
OTHER_INTERPRETER = {"depth_annotation/annotation/labelstudio_worker.py"}
# Standard library from Python 3.14 (imported first, with a backport as the fallback).
NEWER_STDLIB = {"compression"}


def _third_party_imports(*folders: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in (REPO / folder).rglob("*.py"):
            if str(path.relative_to(REPO)) in OTHER_INTERPRETER:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names | NEWER_STDLIB and top != "depth_annotation":
                        found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def test_every_python_key_in_package_xml_is_a_recorded_rosdep_key():
    keys = _keys()
    deps = set().union(*_depends().values())
    python_keys = {d for d in deps if d.startswith("python3-")}
    missing = python_keys - set(keys)
    assert not missing, f"package.xml uses rosdep keys not recorded in requirements/rosdep_keys.yaml: {missing}"
    for key, entry in keys.items():
        assert entry.get("imports") and entry.get("debian") and entry.get("ubuntu"), f"{key}: incomplete entry"


def test_every_import_can_be_installed_on_a_robot():
    keys = _keys()
    deps = _depends()
    runtime = deps.get("exec_depend", set()) | deps.get("depend", set())
    by_import = {imp: key for key, entry in keys.items() for imp in entry["imports"]}
    robot = _robot_requirements()
    problems = []
    for top, files in sorted(_third_party_imports("depth_annotation", "launch").items()):
        example = sorted(files)[0]
        if top in ROS_PACKAGES:
            if top not in runtime:
                problems.append(f"{top} (imported in {example}) is not an exec_depend in package.xml")
        elif top in by_import:
            if by_import[top] not in runtime:
                problems.append(f"{top} (imported in {example}): add <exec_depend>{by_import[top]}</exec_depend>")
        elif top not in robot:
            problems.append(
                f"{top} (imported in {example}) has neither a rosdep key nor a line in requirements/robot.txt"
            )
    assert not problems, "\n".join(problems)


def test_test_imports_are_test_depends():
    keys = _keys()
    tests = _depends().get("test_depend", set())
    by_import = {imp: key for key, entry in keys.items() for imp in entry["imports"]}
    used = _third_party_imports("test")
    for top in ("pytest", "hypothesis", "psutil"):
        if top in used:
            assert by_import[top] in tests, (
                f"{top} is used by the tests: add <test_depend>{by_import[top]}</test_depend>"
            )
