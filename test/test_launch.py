"""Launch files, checked without `launch` (not installable here): statically, then as the same node set.

The AST pass reads each launch file's Node(...) actions: package, executable,
params file and override keys. The graph test starts that node set as real
processes with the same params files and overrides, and checks that topics and
services connect and that every override key is a parameter the node declares.
"""

import ast
import json
from pathlib import Path

from rcl_interfaces.srv import ListParameters
from ros_harness import REPO, VENV_BIN, WATCHED, wait_until

from depth_annotation.mono import save_tiny_model
from depth_annotation.msg import DepthQuality, MonoFitQuality
from depth_annotation.srv import Calibrate

LAUNCH = REPO / "launch"


def entry_points() -> set[str]:
    lines = (REPO / "scripts" / "entry_points.txt").read_text().splitlines()
    return {line.split("=")[0].strip() for line in lines if line.strip() and not line.startswith("#")}


def _const(node, names: dict | None = None):
    """A literal, or a module-level string constant referred to by name (PACKAGE = "...")."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and names:
        return names.get(node.id)
    return None


def launch_nodes(path: Path) -> list[dict]:
    """Node(...) calls: package, executable, name, params files (by file name) and override keys."""
    out = []
    tree = ast.parse(path.read_text())
    names = {
        t.id: a.value.value
        for a in tree.body
        if isinstance(a, ast.Assign) and isinstance(a.value, ast.Constant)
        for t in a.targets
        if isinstance(t, ast.Name)
    }
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Node":
            kw = {k.arg: k.value for k in call.keywords}
            files, keys = [], []
            for item in getattr(kw.get("parameters"), "elts", []):
                if isinstance(item, ast.Dict):
                    keys += [_const(k) for k in item.keys]
                else:
                    files += [
                        n.value
                        for n in ast.walk(item)
                        if isinstance(n, ast.Constant) and str(n.value).endswith(".yaml")
                    ]
            out.append(
                {
                    "package": _const(kw.get("package"), names),
                    "executable": _const(kw.get("executable"), names),
                    "name": _const(kw.get("name"), names),
                    "params_files": files,
                    "overrides": keys,
                }
            )
    return out


def declared_args(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        _const(c.args[0])
        for c in ast.walk(tree)
        if isinstance(c, ast.Call) and getattr(c.func, "id", None) == "DeclareLaunchArgument"
    }


def test_launch_files_reference_real_executables_and_params_files():
    files = {p.name: p for p in LAUNCH.glob("*.launch.py")}
    assert set(files) == {"capture.launch.py", "mono_depth.launch.py", "export.launch.py", "full.launch.py"}
    eps = entry_points()
    seen = set()
    for path in files.values():
        for node in launch_nodes(path):
            assert node["package"] == "depth_annotation", path
            assert node["executable"] in eps, node
            assert (VENV_BIN / node["executable"]).exists() and (
                REPO / ".venv" / "lib" / "depth_annotation" / node["executable"]
            ).exists()
            assert node["params_files"], f"{node['executable']} in {path.name} has no params file"
            for f in node["params_files"]:
                assert (REPO / "config" / f).exists(), f
            seen.add(node["executable"])
        text = path.read_text()
        for included in ("capture.launch.py", "mono_depth.launch.py", "export.launch.py"):
            if f'"{included}"' in text:
                assert included in files
    assert seen == {"realsense_node", "coverage_qc_node", "calibration_node", "mono_depth_node", "live_exporter_node"}
    assert {"source", "serial_no", "camera_namespace", "enable_mono", "output_dir"} <= declared_args(
        files["full.launch.py"]
    )
    assert (
        "install(DIRECTORY launch config msg srv DESTINATION share/${PROJECT_NAME})"
        in (REPO / "CMakeLists.txt").read_text()
    )


def _overrides(path: str, executable: str) -> list[str]:
    return next(n["overrides"] for n in launch_nodes(LAUNCH / path) if n["executable"] == executable)


def test_full_node_set_runs_with_the_launch_params(ros, procs, tmp_path):
    out = tmp_path / "dataset"
    tiny = save_tiny_model(tmp_path / "tiny")
    cfg = REPO / "config"
    # the same nodes, params files and overrides full.launch.py starts (enable_mono, enable_export)
    procs.node(
        "live_exporter_node",
        params_file=cfg / "exporter.yaml",
        params={"output_dir": str(out / "live_export"), "scene_id": "launch_test"},
    )
    procs.node(
        "realsense_node",
        namespace="camera",
        params_file=cfg / "realsense.yaml",
        params={"source": "synthetic", "serial_no": "''", "bag_path": "''", "output_dir": str(out / "captures")},
    )
    procs.node(
        "coverage_qc_node",
        namespace="camera",
        params_file=cfg / "coverage_qc.yaml",
        params={"output_dir": str(out / "qc")},
    )
    procs.node(
        "calibration_node", namespace="camera", params_file=cfg / "calibration.yaml", params={"output_dir": str(out)}
    )
    procs.node(
        "mono_depth_node",
        namespace="camera",
        params_file=cfg / "mono_depth.yaml",
        params={"model": str(tiny), "device": "cpu", "metric_mode": "sensor_fit", "scale_file": "''"},
    )

    node = ros.node("launch_observer")
    quality, fits = [], []
    node.create_subscription(DepthQuality, "/camera/depth_quality", quality.append, 50)
    node.create_subscription(MonoFitQuality, "/camera/mono/fit_quality", fits.append, 50)
    calibrate = node.create_client(Calibrate, "/camera/calibrate")
    # Under load a frame's depth can be lost (best effort), so wait for fits, not for the last one to be fitted.
    assert ros.spin_until(
        lambda: len(quality) > 30 and any(f.fitted for f in fits) and calibrate.service_is_ready(), timeout=90
    ), [(f.fitted, f.fit_pixels) for f in fits]  # fitted against the driver's aligned depth
    # the exporter is subscribed to what the driver publishes
    # QC, calibration (depth check), mono (sensor fit) and the exporter all listen to the driver's aligned depth
    assert node.count_subscribers("/camera/aligned_depth_to_color/image_raw") >= 4
    for executable, ns, launch_file in (
        ("realsense_node", "/camera", "capture.launch.py"),
        ("coverage_qc_node", "/camera", "capture.launch.py"),
        ("calibration_node", "/camera", "capture.launch.py"),
        ("mono_depth_node", "/camera", "mono_depth.launch.py"),
        ("live_exporter_node", "", "export.launch.py"),
    ):
        client = node.create_client(ListParameters, f"{ns}/{executable}/list_parameters")
        assert ros.spin_until(client.service_is_ready, timeout=20), executable
        fut = client.call_async(ListParameters.Request())
        assert ros.spin_until(fut.done, timeout=10)
        names = set(fut.result().result.names)
        missing = set(_overrides(launch_file, executable)) - names
        assert not missing, f"{launch_file} overrides undeclared parameters of {executable}: {missing}"
    WATCHED.clear()
    for p in procs.started:
        assert p.stop(timeout=60) == 0, p.output()[-2000:]
    assert (out / "qc" / "qc_report.json").exists()
    assert (out / "live_export" / "export" / "dataset.h5").exists()
    meta = next((out / "captures").glob("*/capture_metadata.json"))
    assert json.loads(meta.read_text())["final"] is True


def test_a_misspelt_params_file_key_is_named_and_refused_when_strict(procs, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "config" / "coverage_qc.yaml").read_text().replace("good_fraction", "good_fracton"))
    p = procs.node("coverage_qc_node", params_file=bad, params={"strict_parameters": True}, watch=False)
    assert p.wait_exit(60) == 2
    assert "[coverage_qc_node] error: unknown parameter(s) good_fracton" in p.output()


def test_a_shared_params_file_with_foreign_keys_starts_with_a_warning(procs, tmp_path):
    shared = tmp_path / "robot.yaml"
    shared.write_text((REPO / "config" / "coverage_qc.yaml").read_text().rstrip("\n") + "\n    other_nodes_gain: 2.5\n")
    p = procs.node("coverage_qc_node", params_file=shared, name="coverage_qc_shared")
    assert wait_until(lambda: "other_nodes_gain" in p.output(), 30), p.output()[-2000:]
    assert p.alive(), p.output()[-2000:]
    assert "unknown parameter(s) other_nodes_gain" in p.output() and "ignored" in p.output()
