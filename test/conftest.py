"""pytest fixtures shared by the suite.

* Each pytest session runs on its own ROS_DOMAIN_ID (and discovery limited to
  localhost), so parallel runs and stray nodes never see each other.
* `ros` gives an rclpy context + executor for in-process nodes.
* `procs` starts nodes as real subprocesses and stops them after the test,
  printing their logs when the test failed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# Set before rclpy is imported anywhere: the domain is read at context init.
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
os.environ.setdefault("RCUTILS_COLORIZED_OUTPUT", "0")
# Keep all DDS traffic on this machine AND carry 30 fps images without loss:
# rmw's LOCALHOST discovery range would force UDP-only transport (measured: 71 % of
# 640x480 frames delivered), so tests use an XML profile instead: UDP on loopback
# only, unicast discovery to 127.0.0.1, shared memory with a 32 MB segment (98 %).
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "SYSTEM_DEFAULT"
os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(
    Path(__file__).resolve().parents[1] / "config" / "dds" / "loopback_large_data.xml"
)
os.environ.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
os.environ.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)

from ros_harness import WATCHED, NodeProcess, start_node, start_process


class RosFixture:
    """An rclpy context with a single-threaded executor; nodes added here are destroyed after the test."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes = []

    def node(self, name: str, **kwargs):
        node = self.rclpy.create_node(name, context=self.context, **kwargs)
        self.add(node)
        return node

    def add(self, node):
        self.executor.add_node(node)
        self.nodes.append(node)
        return node

    def spin_until(self, predicate, timeout: float) -> bool:
        from ros_harness import spin_until

        return spin_until(self.executor, predicate, timeout)

    def close(self) -> None:
        for node in self.nodes:
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown()
        self.rclpy.shutdown(context=self.context)


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """`../shared/data` beside the checkout (CI has it; a user's clone does not: then the test skips)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (it lives beside the checkout on CI)")
    return SHARED_DATA


@pytest.fixture
def ros():
    fixture = RosFixture()
    try:
        yield fixture
    finally:
        fixture.close()


class Processes:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[NodeProcess] = []

    def node(self, exe: str, *, watch: bool = True, **kwargs) -> NodeProcess:
        """Start a node; with `watch`, waits in this test fail fast if it dies."""
        return self._track(start_node(exe, self.log_dir, **kwargs), watch)

    def command(self, cmd: list[str], name: str, *, watch: bool = True, stock: bool = False) -> NodeProcess:
        return self._track(start_process(cmd, name, self.log_dir, stock=stock), watch)

    def _track(self, p: NodeProcess, watch: bool) -> NodeProcess:
        self.started.append(p)
        if watch:
            WATCHED.append(p)
        return p

    def stop_all(self) -> None:
        WATCHED.clear()
        for p in self.started:
            p.stop()


@pytest.fixture
def procs(request, tmp_path):
    pr = Processes(tmp_path / "logs")
    yield pr
    pr.stop_all()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for p in pr.started:
            print(f"\n----- {p.name} (exit {p.proc.returncode}) -----\n{p.output()[-4000:]}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


# --- process exit ---------------------------------------------------------------------------
# After the whole suite has passed, the interpreter's own shutdown segfaulted (exit 139) in CI
# on this machine, with no test running: native libraries the suite loads together (librealsense,
# Open3D, torch, Fast DDS) crash in their static destructors. Subsets of the suite exit cleanly,
# so the culprit is not pinned down yet. Leave with pytest's own exit status once everything is
# reported, without running those destructors.
_EXIT_STATUS: dict[str, int] = {}


def pytest_sessionfinish(session, exitstatus):
    _EXIT_STATUS["status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    # The mutation runner (mutation/run.py) runs pytest inside its own process many times.
    if "status" in _EXIT_STATUS and not os.environ.get("DEPTH_ANNOTATION_PYTEST_IN_PROCESS"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS["status"])


# Files whose tests leave native thread pools in this process that a later fork crashes on:
# after test_mono_onnx.py (OpenVINO / ONNX Runtime sessions) the next fork-heavy test
# (test_training.py's DataLoader workers) killed pytest with SIGSEGV, every time, in one process
# (`pytest test/test_mono_onnx.py test/test_training.py`); Ray's driver is kept with them.
RUN_LAST = ("test/test_batch.py", "test/test_mono_onnx.py")


def pytest_collection_modifyitems(session, config, items):
    """Tests of RUN_LAST run after every other test, in that order (nothing forks after them)."""

    def rank(item):
        file = item.nodeid.split("::")[0]
        return RUN_LAST.index(file) + 1 if file in RUN_LAST else 0

    items.sort(key=rank)
