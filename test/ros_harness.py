"""Helpers for ROS graph tests: nodes in-process on an executor, nodes as real processes.

Every wait is bounded; every process started here is stopped (SIGINT, then SIGKILL)
when its test ends, and its output is kept in a log file that failures print.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"


def executable(name: str) -> Path:
    """Path of an installed executable (what `ros2 run depth_annotation <name>` runs)."""
    path = VENV_BIN / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run ./dev.sh test (it builds the environment)")
    return path


@dataclass
class NodeProcess:
    """A node (or any command) running as a subprocess."""

    name: str
    proc: subprocess.Popen
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT (clean shutdown), then SIGKILL after `timeout`; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout)


# What a stock ROS 2 shell has none of: our tests' DDS profile and discovery settings.
PROJECT_DDS_VARIABLES = (
    "FASTDDS_DEFAULT_PROFILES_FILE",
    "FASTRTPS_DEFAULT_PROFILES_FILE",
    "FASTDDS_BUILTIN_TRANSPORTS",
    "ROS_AUTOMATIC_DISCOVERY_RANGE",
    "ROS_STATIC_PEERS",
    "ROS_LOCALHOST_ONLY",
    "RMW_IMPLEMENTATION",
)


def stock_environment() -> dict[str, str]:
    """This process's environment less every DDS/RMW setting: only ROS_DOMAIN_ID stays (private per session)."""
    return {k: v for k, v in os.environ.items() if k not in PROJECT_DDS_VARIABLES}


def start_process(
    cmd: list[str], name: str, log_dir: Path, env: dict[str, str] | None = None, *, stock: bool = False
) -> NodeProcess:
    """Start `cmd`; `stock` gives it the stock environment (no project DDS variables)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    fh = open(log_path, "wb")
    full_env = stock_environment() if stock else dict(os.environ)
    full_env["PYTHONUNBUFFERED"] = "1"
    if env:
        full_env.update(env)
    proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=full_env, cwd=REPO)
    fh.close()
    return NodeProcess(name, proc, log_path)


def start_node(
    exe: str,
    log_dir: Path,
    *,
    params_file: Path | None = None,
    params: dict[str, object] | None = None,
    remap: dict[str, str] | None = None,
    namespace: str | None = None,
    name: str | None = None,
    extra_args: list[str] | None = None,
    stock: bool = False,
) -> NodeProcess:
    """Start `.venv/bin/<exe> --ros-args ...` as `ros2 run` would."""
    cmd = [str(executable(exe))]
    cmd += list(extra_args or [])
    cmd.append("--ros-args")
    if params_file is not None:
        cmd += ["--params-file", str(params_file)]
    for key, value in (params or {}).items():
        if isinstance(value, bool):
            value = str(value).lower()
        cmd += ["-p", f"{key}:={value}"]
    for src, dst in (remap or {}).items():
        cmd += ["-r", f"{src}:={dst}"]
    if namespace:
        cmd += ["-r", f"__ns:={namespace if namespace.startswith('/') else '/' + namespace}"]
    return start_process(cmd, name or exe, log_dir, stock=stock)


def start_python(script: Path, args: list[str], log_dir: Path, name: str) -> NodeProcess:
    return start_process([sys.executable, str(script), *args], name, log_dir)


# Processes started for the current test; a wait gives up early when one of them died.
WATCHED: list[NodeProcess] = []


class ProcessDied(AssertionError):
    pass


def _check_watched() -> None:
    for p in WATCHED:
        code = p.proc.poll()
        if code is not None:
            raise ProcessDied(f"{p.name} exited with {code} while waiting:\n{p.output()[-3000:]}")


def spin_until(executor, predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Spin `executor` until `predicate()` is true or `timeout` seconds pass; returns the predicate.

    Raises ProcessDied at once if a watched process exits meanwhile.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        _check_watched()
        executor.spin_once(timeout_sec=step)
    return predicate()


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
