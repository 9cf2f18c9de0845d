"""Lazy public APIs for the subpackages (PEP 562).

Each subpackage's `__init__.py` lists its public names once, as imports under
`if TYPE_CHECKING:` (what type checkers and readers see), and calls
`lazy_exports`, which reads that block and imports a name's module on first use.
So `from depth_annotation.capture import DeviceSource` does not load Open3D for
the synthetic camera, and `depth_annotation.mono` does not load torch until a
model is asked for: a robot node pays only for what its mode needs.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _public_names(init_file: str) -> dict[str, str]:
    """name -> relative module, from the `from .mod import a, b` lines under `if TYPE_CHECKING:`."""
    tree = ast.parse(Path(init_file).read_text(encoding="utf-8"))
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.level == 1 and stmt.module:
                    for alias in stmt.names:
                        names[alias.asname or alias.name] = "." + stmt.module
    return names


def lazy_exports(package: str, init_file: str) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """`__getattr__`, `__dir__` and `__all__` for a package whose public names live under TYPE_CHECKING."""
    names = _public_names(init_file)

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module, package), name)

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__, sorted(names)
