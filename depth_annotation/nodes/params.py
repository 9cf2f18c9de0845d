"""Parameter declaration with descriptors, ranges and choices, failing with one clear line.

`declare` wraps `Node.declare_parameter` so every parameter gets a description
and, where it has one, a range (shown by `ros2 param describe`), and so that an
invalid value (out of range, wrong type, not one of the choices) raises
`StartupError` naming the parameter, the value and what is allowed.

A parameter is either tunable at run time (`on_change=`: `ros2 param set` validates
the new value with the same range and choices, then the callback applies it, or the
set is refused with the reason) or read-only (`ros2 param set` refuses it instead of
answering success and changing nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
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
    on_change: Callable[[Any], None] | None = None,
) -> Any:
    """Declare `name` and return its (validated) value.

    With `on_change`, the parameter is tunable: a later `ros2 param set` is checked against
    `choices` (the range is checked by rclpy from the descriptor) and passed to `on_change`,
    which may raise ValueError to refuse it. Without, the parameter is read-only.
    """
    desc = ParameterDescriptor(description=description, read_only=on_change is None)
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
    if on_change is not None:
        _tunables(node)[name] = (on_change, tuple(choices) if choices else None)
    return value


_TUNABLES = "_depth_annotation_tunables"


def _tunables(node: Node) -> dict[str, tuple[Callable[[Any], None], tuple[str, ...] | None]]:
    """The node's tunable parameters, with one on-set callback registered the first time."""
    table = getattr(node, _TUNABLES, None)
    if table is None:
        table = {}
        setattr(node, _TUNABLES, table)

        def on_set(params: list[Parameter]) -> SetParametersResult:
            for param in params:
                entry = table.get(param.name)
                if entry is None:
                    continue
                apply, choices = entry
                if choices and param.value not in choices:
                    return SetParametersResult(
                        successful=False, reason=f"{param.name}: {param.value!r} is not one of {', '.join(choices)}"
                    )
                try:
                    apply(param.value)
                except ValueError as exc:
                    return SetParametersResult(successful=False, reason=f"{param.name}: {exc}")
            return SetParametersResult(successful=True)

        node.add_on_set_parameters_callback(on_set)
    return table


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
