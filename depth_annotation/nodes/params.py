"""Parameter declaration with descriptors, ranges and choices, failing with one clear line.

`declare` wraps `Node.declare_parameter` so every parameter gets a description
and, where it has one, a range (shown by `ros2 param describe`), and so that an
invalid value (out of range, wrong type, not one of the choices) raises
`StartupError` naming the parameter, the value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter


class StartupError(RuntimeError):
    """A node cannot start as configured; the message is the one line shown to the user."""


def declare(
    node: Node,
    name: str,
    default: Any,
    description: str,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: Sequence[str] | None = None,
    read_only: bool = False,
) -> Any:
    """Declare `name` and return its (validated) value."""
    desc = ParameterDescriptor(description=description, read_only=read_only)
    if choices:
        desc.additional_constraints = "one of: " + ", ".join(choices)
    if low is not None and high is not None:
        if isinstance(default, bool):
            pass
        elif isinstance(default, int):
            desc.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
        elif isinstance(default, float):
            desc.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]
    if isinstance(default, list) and not default:
        # an empty list has no type: declare as an integer array (used for frame-number lists)
        default = Parameter.Type.INTEGER_ARRAY
    try:
        value = node.declare_parameter(name, default, desc).value
    except InvalidParameterValueException:
        given = getattr(node, "_parameter_overrides", {}).get(name)
        shown = repr(given.value) if given is not None else "the given value"
        raise StartupError(f"parameter {name!r}={shown} is outside [{low}, {high}]") from None
    except InvalidParameterTypeException as exc:
        raise StartupError(f"parameter {name!r}: {exc}") from None
    if value is None and isinstance(default, Parameter.Type):
        value = []
    if choices and value not in choices:
        raise StartupError(f"parameter {name!r}: {value!r} is not one of {', '.join(choices)}")
    return value


def declare_renamed(node: Node, name: str, old_name: str, default: Any, description: str, **kwargs: Any) -> Any:
    """`declare` a parameter that was renamed: a value given under `old_name` still works for one release.

    The old key is moved onto the new name before declaring (so ranges and types
    are checked the same way and the old key does not count as undeclared), and a
    deprecation line names both.
    """
    overrides = getattr(node, "_parameter_overrides", {})
    if old_name in overrides:
        old = overrides.pop(old_name)
        if name in overrides:
            node.get_logger().warning(f"parameter {old_name!r} is deprecated and ignored: {name!r} is set too")
        else:
            node.get_logger().warning(f"parameter {old_name!r} is deprecated: use {name!r}")
            overrides[name] = Parameter(name, value=old.value)
    return declare(node, name, default, description, **kwargs)
