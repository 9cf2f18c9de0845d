"""What our launch files start, started without `launch`: node processes with the same params files,
overrides, namespace and environment (`dds_profile:=` sets FASTDDS_DEFAULT_PROFILES_FILE for them).

Every process gets the stock environment (no project DDS variable), plus the profile when given;
a graph_probe process (a default rclpy participant, as `ros2` or rviz2) observes them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ros_harness import REPO, WATCHED, NodeProcess, executable, start_process, wait_until

CONFIG = REPO / "config"
PROBE = REPO / "test" / "helpers" / "graph_probe.py"
STANDIN = REPO / "test" / "helpers" / "realsense2_standin.py"
SHIPPED_PROFILE = CONFIG / "dds" / "large_data_shm.xml"
PARAMS_FILE = {
    "realsense_node": "realsense.yaml",
    "coverage_qc_node": "coverage_qc.yaml",
    "calibration_node": "calibration.yaml",
    "mono_depth_node": "mono_depth.yaml",
    "live_exporter_node": "exporter.yaml",
}


def _env(profile: Path | None) -> dict[str, str] | None:
    return {"FASTDDS_DEFAULT_PROFILES_FILE": str(profile)} if profile else None


def _track(procs, p: NodeProcess) -> NodeProcess:
    procs.started.append(p)
    WATCHED.append(p)
    return p


def start_node(procs, exe: str, namespace: str, params: dict[str, object], profile: Path | None = None) -> NodeProcess:
    """`Node(executable=exe, namespace=namespace, parameters=[config/<file>, params])` as launch runs it."""
    cmd = [str(executable(exe)), "--ros-args", "--params-file", str(CONFIG / PARAMS_FILE[exe])]
    for key, value in params.items():
        cmd += ["-p", f"{key}:={str(value).lower() if isinstance(value, bool) else value}"]
    cmd += ["-r", f"__ns:=/{namespace.strip('/')}"]
    name = f"{namespace.strip('/').replace('/', '_')}_{exe}"
    return _track(procs, start_process(cmd, name, procs.log_dir, _env(profile), stock=True))


def start_camera(
    procs, namespace: str, camera_name: str, out: Path, profile: Path | None = None, **driver: object
) -> None:
    """capture.launch.py + export.launch.py (full.launch.py enable_export:=true) for one camera;
    `driver`: more realsense_node overrides (as launch arguments or a params file would give)."""
    start_node(
        procs,
        "realsense_node",
        namespace,
        {"source": "synthetic", "camera_name": camera_name, "output_dir": out / "captures", **driver},
        profile,
    )
    start_node(procs, "coverage_qc_node", namespace, {"output_dir": out / "qc"}, profile)
    start_node(procs, "calibration_node", namespace, {"output_dir": out}, profile)
    start_node(procs, "live_exporter_node", namespace, {"output_dir": out, "scene_id": namespace}, profile)


def start_standin(procs, namespace: str = "camera", camera_name: str = "camera") -> NodeProcess:
    cmd = [sys.executable, str(STANDIN), namespace, camera_name]
    return _track(procs, start_process(cmd, f"standin_{namespace}", procs.log_dir, stock=True))


def probe(spec: dict, log_dir: Path, profile: Path | None = None, timeout: float = 180.0) -> dict:
    """Run graph_probe with `spec` (see its docstring) and return its JSON result."""
    p = start_process([sys.executable, str(PROBE), json.dumps(spec)], "probe", log_dir, _env(profile), stock=True)
    try:
        assert wait_until(lambda: p.proc.poll() is not None, timeout), "the probe did not finish"
    finally:
        p.stop()
    assert p.proc.returncode == 0, p.output()[-3000:]
    return json.loads(p.output().strip().splitlines()[-1])
