"""Layering: imports point only down, core < models < results < ros < api < eval, even inside functions.

Every module of the package is parsed (ast, so nothing is imported and function-level imports count too) and each
`import`/`from ... import` of the package is checked against the importing module's layer. The layers below ros
must also stay ROS-free (no rospy, rosbag, genpy or generated messages), so the engine runs without ROS.
`scripts/` are entry points and may import anything; they are not checked.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "intradp_ros"
PACKAGE_DIR = Path(__file__).resolve().parents[2] / PACKAGE

# Bottom to top. The generated message/service modules are ROS; the package's own top-level modules
# (__init__, api: the IntraDP facade, whose remote path uses ros/) sit above ros; eval is the tooling floor.
LAYERS = ("core", "models", "results", "ros", "api", "eval")
SUBPACKAGE_LAYER = {"core": "core", "models": "models", "results": "results", "ros": "ros", "msg": "ros",
                    "srv": "ros", "eval": "eval"}  # fmt: skip
ROS_ONLY_MODULES = ("rospy", "rosbag", "rosgraph", "roslib", "rosservice", "genpy", "std_msgs", "sensor_msgs",
                    "diagnostic_updater", "diagnostic_msgs", "geometry_msgs", "rostest")  # fmt: skip
ROS_FREE_LAYERS = ("core", "models", "results")


def layer_of_file(rel: Path) -> str:
    """Layer of a module file given relative to the package directory."""
    return SUBPACKAGE_LAYER.get(rel.parts[0], "api") if len(rel.parts) > 1 else "api"


def layer_of_module(module: str) -> str | None:
    """Layer of an imported module name (None: not this package)."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    if len(parts) == 1:
        return "api"
    return SUBPACKAGE_LAYER.get(parts[1], "api")


def _module_name(rel: Path) -> list[str]:
    parts = [PACKAGE, *rel.with_suffix("").parts]
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported_modules(path: Path, rel: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in a file, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_name(rel)
    is_package = rel.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_package else here[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == PACKAGE:  # `from intradp_ros import core` names subpackages
                for alias in node.names:
                    yield node.lineno, f"{PACKAGE}.{alias.name}"
            else:
                yield node.lineno, module


def layer_violations(package_dir: Path) -> list[str]:
    """Every import that points up a layer, or pulls ROS into a ROS-free layer: 'file:line: ... -> module'."""
    problems = []
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(package_dir)
        own = layer_of_file(rel)
        for line, module in imported_modules(path, rel):
            target = layer_of_module(module)
            if target is not None and LAYERS.index(target) > LAYERS.index(own):
                problems.append(f"{rel}:{line}: {own} imports {target} ({module})")
            elif own in ROS_FREE_LAYERS and (
                module.split(".")[0] in ROS_ONLY_MODULES or layer_of_module(module) == "ros"
            ):
                problems.append(f"{rel}:{line}: {own} must stay ROS-free but imports {module}")
    return problems


def test_imports_point_only_down() -> None:
    assert layer_violations(PACKAGE_DIR) == []


def _tree(tmp_path: Path, files: dict) -> Path:
    root = tmp_path / PACKAGE
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


CLEAN = {
    "__init__.py": "",
    "api.py": "from intradp_ros.ros import node\n",
    "core/__init__.py": "",
    "core/engine.py": "import math\n",
    "models/__init__.py": "",
    "models/net.py": "from intradp_ros.core.engine import x\nfrom ..core import engine\n",
    "ros/__init__.py": "",
    "ros/node.py": "import rospy\nfrom intradp_ros.msg import Stats\nfrom intradp_ros.models import net\n",
    "eval/__init__.py": "",
    "eval/tool.py": "from intradp_ros.ros.node import n\nfrom intradp_ros import IntraDP\n",
}


def test_synthetic_clean_tree_passes(tmp_path: Path) -> None:
    assert layer_violations(_tree(tmp_path, CLEAN)) == []


@pytest.mark.parametrize(
    "rel, text, expected",
    [
        ("core/engine.py", "def f():\n    from intradp_ros.models import build\n", "core imports models"),
        ("core/engine.py", "from ..models import net\n", "core imports models"),
        ("models/net.py", "from intradp_ros.results.records import r\n", "models imports results"),
        ("ros/node.py", "from intradp_ros.eval import tool\n", "ros imports eval"),
        ("ros/node.py", "from intradp_ros import api\n", "ros imports api"),
        ("core/engine.py", "import intradp_ros.ros.node\n", "core imports ros"),
        ("core/engine.py", "def f():\n    import rospy\n", "must stay ROS-free but imports rospy"),
        ("models/net.py", "from intradp_ros.msg import Stats\n", "models imports ros"),
    ],
)
def test_synthetic_upward_import_fails(tmp_path: Path, rel: str, text: str, expected: str) -> None:
    problems = layer_violations(_tree(tmp_path, {**CLEAN, rel: text}))
    assert len(problems) == 1 and expected in problems[0], problems
