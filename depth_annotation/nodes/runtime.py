"""Running a node process: start-up errors as one line, clean shutdown on SIGINT/SIGTERM.

Exit codes. SIGINT is how `ros2 launch` stops every node (launch/actions/execute_local.py,
`_shutdown_process` sends SIGINT first), and launch logs every non-zero exit as
"[ERROR] process has died [pid N, exit code C, ...]" (`__execute_process`: `returncode == 0`
is the only "process has finished cleanly"); so a node stopped by SIGINT exits 0. SIGTERM gets
the very same clean shutdown (files finalised, one line on stderr) but exits 143 (128 + 15), as a
shell reports a terminated program: under launch it comes only after `sigterm_timeout` when the
SIGINT shutdown did not finish, and from anywhere else (`kill`, systemd, docker stop) a stop
that was not asked for the normal way should not pass for a normal end.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from depth_annotation.common import StopSignals

from .params import StartupError, declare


def undeclared_overrides(node: Node) -> list[str]:
    """Parameters given to the node (params file, -p) that it never declared.

    rclpy and rclcpp ignore them silently (a shared `/**:` params file holds other
    nodes' keys); we name them in a warning, or refuse them with
    `strict_parameters:=true`, so a misspelt key is never a silent no-op.
    """
    given = set(getattr(node, "_parameter_overrides", {}))
    return sorted(given - set(node._parameters))


_CHECKED = "_depth_annotation_parameters_checked"


def check_parameters(node: Node) -> None:
    """Declare `strict_parameters` and warn about (or refuse) undeclared overrides, once per node.

    `run_node` calls it after the node is built; a node that starts hardware or writes files
    calls it itself before doing so, so a misspelt key is refused before anything happens.
    """
    if getattr(node, _CHECKED, False):
        return
    setattr(node, _CHECKED, True)
    strict = declare(node, "strict_parameters", False, "refuse parameters this node does not declare")
    unknown = undeclared_overrides(node)
    if unknown:
        text = f"unknown parameter(s) {', '.join(unknown)}: not declared by this node (a typo in the params file?)"
        if strict:
            raise StartupError(text)
        node.get_logger().warning(text + "; ignored (strict_parameters:=true refuses them)")


def run_node(factory: Callable[[], Node], args: list[str] | None = None, *, name: str, threads: int = 2) -> int:
    """Create the node with `factory` and spin it until shutdown.

    Returns the process exit code: 0 on a clean shutdown (SIGINT, or the context shut down),
    143 on the same clean shutdown after SIGTERM, 130/143 when a signal came during start-up,
    2 when the node could not start (the reason is printed as one line on stderr, prefixed
    with `name`).
    A node may define `shutdown()` to finalise files before it is destroyed.
    """
    # rclpy's own SIGINT handler shuts the context down at once, invalidating
    # publishers that worker threads may still use; instead SIGINT and SIGTERM
    # raise KeyboardInterrupt in the spinning thread, so the node's shutdown()
    # runs (threads stopped, files finalised) before the context goes away.
    rclpy.init(args=args if args is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO)
    signals = StopSignals(interrupt=True).install()
    node = None
    try:
        try:
            node = factory()
            check_parameters(node)
        except StartupError as exc:
            print(f"[{name}] error: {exc}", file=sys.stderr, flush=True)
            return 2
        except KeyboardInterrupt:
            print(f"[{name}] {signals.name} during start-up: stopped", file=sys.stderr, flush=True)
            return signals.interrupted_exit_code()
        try:
            node.get_logger().info("ready")  # one line a launch log or a test can wait for
            executor = MultiThreadedExecutor(num_threads=threads)
            executor.add_node(node)
            # Wait in short slices: a Python signal handler runs only between them, and a wait with
            # nothing timed (use_sim_time with no /clock yet) would otherwise never return on SIGINT.
            while executor.context.ok():
                executor.spin_once(timeout_sec=0.25)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        if signals.requested:
            node.get_logger().info(f"{signals.name} received: shutting down")
    finally:
        if node is not None:
            shutdown = getattr(node, "shutdown", None)
            if shutdown is not None:
                shutdown()
            node.destroy_node()
            if signals.requested:
                code = signals.exit_code()
                print(f"[{name}] stopped cleanly after {signals.name} (exit {code})", file=sys.stderr, flush=True)
        rclpy.try_shutdown()
    return signals.exit_code()  # after shutdown(): a SIGTERM that came while finalising counts too
