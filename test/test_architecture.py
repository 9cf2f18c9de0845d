"""The folders are the architecture: dependencies point one way, ROS stays in the shells.

Reads every import statement (top level and inside functions) with `ast`, so a
wrong import fails here before it becomes a habit.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "depth_annotation"

# Which subpackages each one may import (besides itself). `common` is the shared base.
ALLOWED = {
    "common": set(),
    "capture": {"common"},
    "qc": {"common"},
    "calibration": {"common"},
    "mono": {"common", "calibration"},  # metric alignment reuses the scale/shift fit
    "dataset": {"common", "qc"},  # QC results travel with every exported frame
    "annotation": {"common", "qc", "dataset"},  # Label Studio results go back into the exported dataset
    "training": {"common", "dataset"},  # point clouds, voxels, dataloader over the exported dataset
    "preannotation": {"common", "dataset"},  # geometric pre-annotation of the exported tasks
    # batch: the single-machine cores as Ray tasks over many bags
    "batch": {"common", "dataset", "mono", "annotation"},
    "nodes": {"common", "capture", "qc", "calibration", "mono", "dataset", "annotation", "training", "preannotation"},
    "cli": {
        "common",
        "capture",
        "qc",
        "calibration",
        "mono",
        "dataset",
        "annotation",
        "training",
        "preannotation",
        "nodes",
        "batch",
    },
}
CONCEPTS = [
    "common",
    "capture",
    "qc",
    "calibration",
    "mono",
    "dataset",
    "annotation",
    "training",
    "preannotation",
    "batch",
]
# ROS client code lives in nodes/ and in the CLI modules that talk to a live graph.
ROS_CLIENTS = {"cli/bag_replay.py", "cli/demo.py"}
ROS_MODULES = (
    "rclpy",
    "rcl_interfaces",
    "builtin_interfaces",
    "sensor_msgs",
    "std_msgs",
    "std_srvs",
    "diagnostic_msgs",
    "geometry_msgs",
    "tf2_msgs",
)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(absolute module, imported names, line) for every import in `path`."""
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    package = parts[:-1]  # for __init__.py too: relative imports start at its own package
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((module, [a.name for a in node.names], node.lineno))
    return found


def _subpackage(module: str, names: list[str]) -> list[str]:
    """The depth_annotation subpackages an import reaches (a `from pkg import mod` counts mod's)."""
    parts = module.split(".")
    if parts[0] != "depth_annotation":
        return []
    if len(parts) >= 2:
        return [parts[1]]
    return list(names)


def _sources() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "msg" not in p.relative_to(PKG).parts[:1])


def _owner(path: Path) -> str:
    rel = path.relative_to(PKG).parts
    return rel[0] if len(rel) > 1 else "<top>"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PKG)))
def test_dependencies_point_one_way(path):
    owner = _owner(path)
    if owner == "<top>":
        return  # depth_annotation/__init__.py: the version and the namespace path only
    assert owner in ALLOWED, f"{path.relative_to(PKG)}: a new subpackage needs a line in ALLOWED"
    for module, names, line in _imports(path):
        for target in _subpackage(module, names):
            if target in ("msg", "srv", owner) or target not in ALLOWED:
                continue
            assert target in ALLOWED[owner], (
                f"{path.relative_to(PKG)}:{line} imports depth_annotation.{target}; "
                f"{owner}/ may import only {sorted(ALLOWED[owner]) or 'nothing of ours'}"
            )


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PKG)))
def test_ros_only_in_the_shells(path):
    rel = str(path.relative_to(PKG))
    if _owner(path) == "nodes" or rel in ROS_CLIENTS:
        return
    for module, _names, line in _imports(path):
        top = module.split(".")[0]
        assert top not in ROS_MODULES, f"{rel}:{line} imports {module}: ROS client code belongs in nodes/"
        if module in ("depth_annotation.msg", "depth_annotation.srv"):
            pytest.fail(f"{rel}:{line} imports our generated interfaces: that is a node's job")


def _public_api_users() -> list[Path]:
    here = Path(__file__).resolve().parent
    return sorted(_sources()) + sorted(here.rglob("*.py")) + sorted((PKG.parent / "bench").glob("*.py"))


@pytest.mark.parametrize("path", _public_api_users(), ids=lambda p: str(p.relative_to(PKG.parent)))
def test_other_subpackages_are_used_through_their_public_api(path):
    owner = _owner(path) if path.is_relative_to(PKG) else "<outside>"
    for module, names, line in _imports(path):
        parts = module.split(".")
        if len(parts) < 3 or parts[0] != "depth_annotation" or parts[1] not in CONCEPTS or parts[1] == owner:
            continue
        if all(n.startswith("_") for n in names):
            continue  # a test of a private helper says so by its name
        pytest.fail(
            f"{path.name}:{line} imports {module}; use `from depth_annotation.{parts[1]} import ...` "
            f"(add the name to depth_annotation/{parts[1]}/__init__.py if it is public)"
        )


@pytest.mark.parametrize("subpackage", CONCEPTS)
def test_every_public_name_resolves(subpackage):
    pkg = importlib.import_module(f"depth_annotation.{subpackage}")
    assert pkg.__all__, f"depth_annotation.{subpackage} exports nothing"
    for name in pkg.__all__:
        assert getattr(pkg, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        pkg.not_a_name  # noqa: B018 - the attribute access is the test
