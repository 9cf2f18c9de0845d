"""The environment the README's commands build: executables, installed interfaces, package files."""

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from ros_harness import REPO, VENV_BIN


def entry_points() -> list[tuple[str, str]]:
    out = []
    for line in (REPO / "scripts" / "entry_points.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, target = (s.strip() for s in line.split("=", 1))
            out.append((name, target))
    return out


def test_every_entry_point_is_installed_for_venv_and_ros2_run():
    assert entry_points(), "scripts/entry_points.txt lists no executables"
    for name, target in entry_points():
        for path in (VENV_BIN / name, REPO / ".venv" / "lib" / "depth_annotation" / name):
            assert path.exists(), f"{path} missing"
            text = path.read_text()
            assert text.startswith(f"#!{REPO / '.venv'}"), f"{path} does not run the venv's python"
            module, func = target.split(":")
            assert f"from {module} import {func}" in text


def test_cli_help_runs_from_venv_bin():
    res = subprocess.run([str(VENV_BIN / "depth-annotation"), "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "synth" in res.stdout and "demo" in res.stdout


def test_interfaces_import_outside_the_checkout(tmp_path):
    code = (
        "from depth_annotation.msg import DepthQuality; from depth_annotation.srv import Calibrate; "
        "import depth_annotation.common.images as m; print(m.__file__)"
    )
    res = subprocess.run(
        [str(VENV_BIN / "python"), "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert res.returncode == 0, res.stderr
    # the Python code comes from this checkout (no stale copy in site-packages)
    assert Path(res.stdout.strip()).resolve() == REPO / "depth_annotation" / "common" / "images.py"


def test_package_xml_is_format_3_interface_package():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "depth_annotation"
    assert root.findtext("member_of_group") == "rosidl_interface_packages"
    assert root.find("export/build_type").text == "ament_cmake"
    buildtools = {e.text for e in root.findall("buildtool_depend")}
    assert {"ament_cmake", "rosidl_default_generators"} <= buildtools


def test_every_interface_file_is_built():
    site = REPO / ".venv" / "lib" / "python3.11" / "site-packages" / "depth_annotation"
    for kind in ("msg", "srv"):
        for f in (REPO / kind).glob(f"*.{kind}"):
            snake = "".join("_" + c.lower() if c.isupper() else c for c in f.stem).lstrip("_")
            assert (site / kind / f"_{snake}.py").exists(), f"{f.name} was not generated"
