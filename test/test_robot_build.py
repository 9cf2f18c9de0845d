"""The same repository builds as a ROS 2 package the way `colcon build` builds it on a robot.

colcon runs CMake on package.xml's `ament_cmake` build type with the default
options: the Python code is copied into site-packages (no .pth to a checkout),
launchers go to lib/depth_annotation/ for `ros2 run`, and share/ gets launch,
config and the interface definitions. Built from a copy of the tracked files
outside the checkout, into a temporary prefix, against the venv's ROS 2 wheels.
"""

import os
import subprocess

from ros_harness import REPO, VENV_BIN


def test_colcon_style_build_and_install(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    tracked = [f for f in files.decode().split("\0") if f]
    archive = subprocess.run(["tar", "-c", "-C", str(REPO), *tracked], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)

    build, prefix = tmp_path / "build", tmp_path / "install"
    build.mkdir()
    env = dict(os.environ, AMENT_PREFIX_PATH=str(REPO / ".venv"), CMAKE_PREFIX_PATH=str(REPO / ".venv"))
    steps = [
        [
            "cmake",
            str(src),
            f"-DCMAKE_INSTALL_PREFIX={prefix}",
            f"-DPython3_EXECUTABLE={VENV_BIN / 'python'}",
            "-DBUILD_TESTING=OFF",
        ],
        ["make", f"-j{os.cpu_count() or 2}"],
        ["make", "install"],
    ]
    for cmd in steps:
        res = subprocess.run(cmd, cwd=build, env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, f"{cmd[0]} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"

    site = prefix / "lib" / "python3.11" / "site-packages" / "depth_annotation"
    assert (site / "common" / "images.py").exists() and (site / "nodes" / "messages.py").exists()
    assert (site / "msg" / "_depth_quality.py").exists() and (site / "srv" / "_calibrate.py").exists()
    assert not (prefix / "bin").exists()  # robots get launchers in lib/<pkg> only
    launcher = prefix / "lib" / "depth_annotation" / "depth-annotation"
    assert os.access(launcher, os.X_OK)
    for share in ("package.xml", "msg/DepthQuality.msg", "srv/Calibrate.srv", "launch", "config"):
        assert (prefix / "share" / "depth_annotation" / share).exists(), share
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "depth_annotation").exists()

    # The installed tree alone imports: code and interfaces from the prefix, not the checkout.
    code = (
        f"import sys; sys.path[:] = [p for p in sys.path if p not in ('', {str(REPO)!r})]; "
        "import depth_annotation.common.images as m; from depth_annotation.msg import DepthQuality; "
        "print(m.__file__)"
    )
    res = subprocess.run(
        [str(VENV_BIN / "python"), "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=str(site.parent)),
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().startswith(str(site))
