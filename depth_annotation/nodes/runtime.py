"""Running a node process: start-up errors as one line, clean shutdown on SIGINT/SIGTERM."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from .params import StartupError, declare


def undeclared_overrides(node: Node) -> list[str]:
    """Parameters given to the node (params file, -p) that it never declared.

    rclpy and rclcpp ignore them silently (a shared `/**:` params file holds other
    nodes' keys); we name them in a warning, or refuse them with
    `strict_parameters:=true`, so a misspelt key is never a silent no-op.
    """
    given = set(getattr(node, "_parameter_overrides", {}))
    return sorted(given - set(node._parameters))


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_node(factory: Callable[[], Node], args: list[str] | None = None, *, name: str, threads: int = 2) -> int:
    """Create the node with `factory` and spin it until shutdown.

    Returns the process exit code: 0 on a clean shutdown, 2 when the node could
    not start (the reason is printed as one line on stderr, prefixed with `name`).
    A node may define `shutdown()` to finalise files before it is destroyed.
    """
    # rclpy's own SIGINT handler shuts the context down at once, invalidating
    # publishers that worker threads may still use; instead SIGINT and SIGTERM
    # raise KeyboardInterrupt in the spinning thread, so the node's shutdown()
    # runs (threads stopped, files finalised) before the context goes away.
    rclpy.init(args=args if args is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    node = None
    try:
        try:
            node = factory()
            strict = declare(node, "strict_parameters", False, "refuse parameters this node does not declare")
            unknown = undeclared_overrides(node)
            if unknown:
                text = (
                    f"unknown parameter(s) {', '.join(unknown)}: not declared by this node (a typo in the params file?)"
                )
                if strict:
                    raise StartupError(text)
                node.get_logger().warning(text + "; ignored (strict_parameters:=true refuses them)")
            node.get_logger().info("ready")  # one line a launch log or a test can wait for
        except StartupError as exc:
            print(f"[{name}] error: {exc}", file=sys.stderr, flush=True)
            return 2
        executor = MultiThreadedExecutor(num_threads=threads)
        executor.add_node(node)
        try:
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        return 0
    finally:
        if node is not None:
            shutdown = getattr(node, "shutdown", None)
            if shutdown is not None:
                shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
