"""Launch files: statically, as the same node set, and under the real launch API where its sources are here.

The AST pass reads each launch file's Node(...) actions: package, executable,
params file and override keys. The graph test starts that node set as real
processes with the same params files, overrides and environment (stock, or the shipped
profile as `dds_profile:=` gives it), and checks through a separate default rclpy process
that topics and services connect and that every override key is a parameter the node declares.
`launch` / `launch_ros` are not installable from our package index: the last test runs the
launch files with LaunchService from their Humble, Jazzy and rolling sources when a mirror of
them is present (skipped with the reason otherwise).
"""

import ast
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.launch_equivalent import SHIPPED_PROFILE, probe, start_camera, start_node, start_standin
from ros_harness import REPO, VENV_BIN, WATCHED, NodeProcess, stock_environment, wait_until

from depth_annotation.mono import save_tiny_model

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
    """DeclareLaunchArgument names, and `dds_profile` for the shared `dds_profile_argument()`."""
    tree = ast.parse(path.read_text())
    calls = [c for c in ast.walk(tree) if isinstance(c, ast.Call)]
    return {_const(c.args[0]) for c in calls if getattr(c.func, "id", None) == "DeclareLaunchArgument"} | {
        "dds_profile" for c in calls if getattr(c.func, "id", None) == "dds_profile_argument"
    }


def test_launch_files_reference_real_executables_and_params_files():
    files = {p.name: p for p in LAUNCH.glob("*.launch.py")}
    assert set(files) == {
        "capture.launch.py",
        "mono_depth.launch.py",
        "export.launch.py",
        "full.launch.py",
        "realsense2_camera_pipeline.launch.py",
    }
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


def test_full_launch_declares_and_forwards_every_argument_of_the_files_it_includes():
    tree = ast.parse((LAUNCH / "full.launch.py").read_text())
    forwarded = next(
        ast.literal_eval(a.value)
        for a in tree.body
        if isinstance(a, ast.Assign) and getattr(a.targets[0], "id", None) == "FORWARDED"
    )
    full_args = declared_args(LAUNCH / "full.launch.py")
    assert set(forwarded) == {"capture.launch.py", "mono_depth.launch.py", "export.launch.py"}
    for name, args in forwarded.items():
        assert set(args) == declared_args(LAUNCH / name), f"full.launch.py does not forward all of {name}'s arguments"
        assert set(args) <= full_args
    assert {"serial_no", "camera_name", "device", "backend", "metric_mode", "output_dir", "dds_profile"} <= full_args


def test_every_node_starting_launch_file_scopes_dds_profile_to_its_nodes():
    for path in LAUNCH.glob("*.launch.py"):
        if not launch_nodes(path):
            continue
        text = path.read_text()
        assert "dds_profile" in declared_args(path), path.name
        assert "with_dds_profile(" in text, path.name
        assert text.count("Node(") == text.count("sigterm_timeout=SHUTDOWN_TIMEOUT_S"), path.name
    # what each launch file's with_dds_profile(...) is: one shared piece (nodes/launch_support.py)
    support = (REPO / "depth_annotation" / "nodes" / "launch_support.py").read_text()
    assert "GroupAction([OpaqueFunction(function=dds_profile_file)" in support and "scoped=True" in support
    assert 'SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE"' in support


@pytest.mark.parametrize("profile", [None, SHIPPED_PROFILE], ids=["stock", "large_data_shm"])
def test_full_node_set_runs_with_the_launch_params(procs, tmp_path, profile):
    """full.launch.py enable_mono:=true enable_export:=true, as processes; every one of them (and the
    observer) in a stock environment, or all given the shipped profile as `dds_profile:=` does."""
    out = tmp_path / "dataset"
    tiny = save_tiny_model(tmp_path / "tiny")
    start_camera(procs, "camera", "camera", out, profile)
    start_node(
        procs,
        "mono_depth_node",
        "camera",
        {"model": tiny, "device": "cpu", "backend": "torch", "metric_mode": "sensor_fit"},
        profile,
    )
    for p in procs.started:  # the profile reached every node (and only as dds_profile:= gives it)
        env = dict(kv.split("=", 1) for kv in Path(f"/proc/{p.proc.pid}/environ").read_text().split("\0") if "=" in kv)
        assert env.get("FASTDDS_DEFAULT_PROFILES_FILE") == (str(profile) if profile else None), p.name
    nodes = {
        "realsense_node": "capture.launch.py",
        "coverage_qc_node": "capture.launch.py",
        "calibration_node": "capture.launch.py",
        "mono_depth_node": "mono_depth.launch.py",
        "live_exporter_node": "export.launch.py",
    }
    spec = {
        "nodes": [f"/camera/{n}" for n in nodes],
        "discovery_timeout_s": 120.0,
        "call_timeout_s": 15.0,  # the mono node answers between inferences on two busy cores
        "call_attempts": 3,
        "services": [["/camera/write_report", "Trigger"]] + [[f"/camera/{n}/list_parameters", "List"] for n in nodes],
        "topics": [["/camera/depth_quality", "DepthQuality"], ["/camera/mono/fit_quality", "MonoFitQuality"]],
        "fields": {"/camera/mono/fit_quality": "fitted"},
        "count_subscribers": ["/camera/aligned_depth_to_color/image_raw"],
        "listen_s": 20.0,
    }
    result = probe(spec, tmp_path / "logs", profile, timeout=300)
    assert set(spec["nodes"]) <= set(result["nodes"]), sorted(result["nodes"])
    assert all(result["services"].values()), result["service_errors"]
    # QC keeps reporting (not one message): torch inference shares the two cores, so no rate is asked for
    assert len(result["topics"]["/camera/depth_quality"]) >= 10
    # Under load a frame's depth can be lost (best effort), so look for fits, not for every frame fitted.
    assert any(result["fields"]["/camera/mono/fit_quality"]), "no fit against the driver's aligned depth"
    # QC, calibration (depth check), mono (sensor fit) and the exporter all listen to the driver's aligned depth
    assert result["subscribers"]["/camera/aligned_depth_to_color/image_raw"] >= 4
    for executable, launch_file in nodes.items():
        names = set(result["parameters"][f"/camera/{executable}/list_parameters"])
        missing = set(_overrides(launch_file, executable)) - names
        assert not missing, f"{launch_file} overrides undeclared parameters of {executable}: {missing}"
    WATCHED.clear()
    for p in procs.started:
        assert p.stop(timeout=60) == 0, p.output()[-2000:]
    assert (out / "qc" / "qc_report.json").exists()
    assert (out / "export" / "dataset.h5").exists()
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


# ---- our launch files under the real `launch` / `launch_ros` (from their sources) ----------------------

MIRRORS = Path(os.environ.get("LAUNCH_SOURCE_MIRRORS", "/work/.mirror"))
RUN_LAUNCH = REPO / "test" / "helpers" / "run_launch.py"
# Kilted has no branch in ros2/launch: rolling is the line Kilted branched from (README "Launch API").
DISTRO_REFS = ("humble", "jazzy", "rolling")


def _launch_sources(ref: str, dest: Path) -> Path:
    """launch and launch_ros Python packages at `ref`, from the mirrors; skips when a mirror is absent."""
    repos = {"launch": MIRRORS / "ros2+launch" / "repo", "launch_ros": MIRRORS / "ros2+launch_ros" / "repo"}
    for name, repo in repos.items():
        if not (repo / "HEAD").exists() and not (repo / ".git").exists():
            pytest.skip(f"no {name} source mirror at {repo} (set LAUNCH_SOURCE_MIRRORS)")
    try:
        import osrf_pycommon  # noqa: F401  (launch's process handling needs it)

        extra = []
    except ImportError:
        extra = [p for p in os.environ.get("OSRF_PYCOMMON_PATH", "").split(os.pathsep) if p]
        if not extra:
            pytest.skip("launch needs osrf_pycommon: not installed (set OSRF_PYCOMMON_PATH to a copy)")
    dest.mkdir(parents=True)
    for name, repo in repos.items():
        archive = subprocess.run(["git", "-C", str(repo), "archive", ref, f"{name}/{name}"], capture_output=True)
        assert archive.returncode == 0, archive.stderr.decode()
        subprocess.run(["tar", "-x", "-C", str(dest), "--strip-components=1"], input=archive.stdout, check=True)
    return Path(os.pathsep.join([str(dest), *extra]))


def _ament_prefix(dest: Path) -> Path:
    """What colcon installs for this package: share/depth_annotation/{launch,config} and lib/depth_annotation/."""
    (dest / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (dest / "share" / "ament_index" / "resource_index" / "packages" / "depth_annotation").touch()
    share = dest / "share" / "depth_annotation"
    share.mkdir()
    for item in ("launch", "config", "package.xml"):
        (share / item).symlink_to(REPO / item)
    lib = dest / "lib" / "depth_annotation"
    lib.mkdir(parents=True)
    for exe in (REPO / ".venv" / "lib" / "depth_annotation").iterdir():
        (lib / exe.name).symlink_to(exe.resolve())
    return dest


def _children_env(prefix: Path) -> dict[str, dict[str, str]]:
    """Environment of each running node process started from `prefix`, by executable name."""
    out = {}
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            if len(cmd) > 1 and str(prefix / "lib") in cmd[1].decode():
                env = (proc / "environ").read_bytes().decode(errors="replace").split("\0")
                out[Path(cmd[1].decode()).name] = dict(kv.split("=", 1) for kv in env if "=" in kv)
        except (OSError, ValueError):
            continue
    return out


def _launch(procs, tmp_path, sources: Path, prefix: Path, launch_file: str, args: list[str]) -> NodeProcess:
    """`ros2 launch` from a terminal: its own process group, so Ctrl-C (`_ctrl_c`) reaches launch and every
    node at once. (launch does not forward a SIGINT it got itself: it assumes the terminal sent it to all.)"""
    cmd = [sys.executable, str(RUN_LAUNCH), str(prefix), str(LAUNCH / launch_file), *args]
    env = stock_environment() | {"PYTHONPATH": os.pathsep.join([str(sources), str(REPO)]), "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "logs" / f"launch_{launch_file}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True)
    p = NodeProcess(f"launch_{launch_file}", proc, log)
    procs.started.append(p)
    return p


def _ctrl_c(p: NodeProcess) -> None:
    os.killpg(p.proc.pid, signal.SIGINT)


def _annotation_frames_staged(out: Path) -> int:
    """Annotation PNGs the live exporter has written so far into its staging folder `.OUT.staging-PID`
    (config/exporter.yaml: every 10th frame of an episode, the first one included): frames reached it."""
    return len(list(out.parent.glob(f".{out.name}.staging-*/annotation/rgb/*.png")))


def _wait_for_quality(tmp_path: Path, topic: str) -> None:
    """The QC node has frames (it writes its report at shutdown only then): a default rclpy process
    receives its DepthQuality. The exporter's frames alone do not say it: its reader may match later."""
    spec = {"nodes": [], "discovery_timeout_s": 60.0, "topics": [[topic, "DepthQuality"]], "wait_timeout_s": 90.0}
    result = probe(spec, tmp_path / "logs", timeout=180)
    assert result["topics"][topic], result


@pytest.mark.parametrize("ref", DISTRO_REFS)
def test_launch_files_run_under_the_real_launch_api(procs, tmp_path, ref):
    """full.launch.py (two namespaced cameras' worth of arguments, dds_profile) and the realsense2_camera
    pipeline (against the stand-in), each run by LaunchService from `ref`'s launch / launch_ros sources."""
    sources = _launch_sources(ref, tmp_path / "src")
    prefix = _ament_prefix(tmp_path / "prefix")
    out = tmp_path / "full"
    full = _launch(
        procs,
        tmp_path,
        sources,
        prefix,
        "full.launch.py",
        ["camera_namespace:=cam1", "camera_name:=cam1", "enable_export:=true", f"output_dir:={out}"]
        + ["dds_profile:=large_data_shm", "scene_id:=launched"],
    )
    expected = {"realsense_node", "coverage_qc_node", "calibration_node", "live_exporter_node"}
    assert wait_until(lambda: all(f"[cam1.{n}]: ready" in full.output() for n in expected), 120), full.output()[-3000:]
    assert "exporting /cam1/aligned_depth_to_color/image_raw" in full.output()
    envs = _children_env(prefix)
    assert set(envs) == expected, envs.keys()
    for exe, env in envs.items():
        assert env.get("FASTDDS_DEFAULT_PROFILES_FILE") == str(REPO / "config" / "dds" / "large_data_shm.xml"), exe
    # frames reach the exporter: at least 11 written (frame 0's and frame 10's annotation PNGs)
    assert wait_until(lambda: _annotation_frames_staged(out) >= 2, 120), full.output()[-3000:]
    _wait_for_quality(tmp_path, "/cam1/depth_quality")
    _ctrl_c(full)
    assert full.wait_exit(90) == 0, full.output()[-3000:]
    assert "Caught exception" not in full.output() and "escalating to 'SIGTERM'" not in full.output()
    assert (out / "export" / "dataset.h5").exists(), full.output()[-3000:]
    assert json.loads((out / "qc" / "qc_report.json").read_text())["source"] == "/cam1/aligned_depth_to_color/image_raw"

    start_standin(procs)
    out = tmp_path / "rs2"
    rs2 = _launch(
        procs,
        tmp_path,
        sources,
        prefix,
        "realsense2_camera_pipeline.launch.py",
        ["enable_export:=true", f"output_dir:={out}"],
    )
    assert wait_until(lambda: "[camera.camera.live_exporter_node]: ready" in rs2.output(), 120), rs2.output()[-3000:]
    assert "push_to_driver disabled: realsense2_camera offers no set_camera_info" in rs2.output()
    assert all("FASTDDS_DEFAULT_PROFILES_FILE" not in env for env in _children_env(prefix).values())  # stock
    assert wait_until(lambda: _annotation_frames_staged(out) >= 2, 120), rs2.output()[-3000:]
    _wait_for_quality(tmp_path, "/camera/camera/depth_quality")
    _ctrl_c(rs2)
    assert rs2.wait_exit(90) == 0, rs2.output()[-3000:]
    assert "dataset written" in rs2.output() and (out / "export" / "dataset.h5").exists(), rs2.output()[-3000:]
    report = json.loads((out / "qc" / "qc_report.json").read_text())
    assert report["source"] == "/camera/camera/aligned_depth_to_color/image_raw" and report["frames"] > 0
