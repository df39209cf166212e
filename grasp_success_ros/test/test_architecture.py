"""The architecture is checked, not promised: rooms, layers and the ROS boundary.

The contracts live in pyproject.toml ([tool.importlinter]); README "Architecture" explains them.
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "grasp_success_ros" / "grasp_success_ros"
ROOMS = {"core", "data", "model", "evaluation", "training", "bags", "ros", "bench", "cli"}


def test_the_import_contracts_hold():
    """Layers, the ROS boundary, a NumPy-only core and no cycles (function-level imports too).
    The checked package is this checkout's, whatever else is on the path."""
    path = os.pathsep.join(p for p in (str(PACKAGE.parent), os.environ.get("PYTHONPATH")) if p)
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
         "sys.exit(lint_imports(no_cache=True, no_logo=True))"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path})
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_top_level_holds_only_rooms():
    entries = {p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    assert entries == ROOMS | {"__init__.py", "__main__.py"}
    assert all((PACKAGE / room / "__init__.py").is_file() for room in ROOMS)


def test_every_room_says_what_it_holds():
    for room in ROOMS:
        doc = (PACKAGE / room / "__init__.py").read_text()
        assert doc.startswith('"""') and len(doc) > 40, room


def _architecture_block() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Architecture"):readme.index("## Layout")]
    return section[section.index("```") + 3:section.index("```", section.index("```") + 3)]


def test_the_readme_architecture_names_every_room_and_module():
    block = _architecture_block()
    for room in ROOMS:
        start = block.index(f"{room}/")
        rest = [block.index(f"{r}/") for r in ROOMS if block.index(f"{r}/") > start]
        text = block[start:min(rest, default=len(block))]
        modules = {p.stem for p in (PACKAGE / room).glob("*.py") if p.stem != "__init__"}
        missing = sorted(m for m in modules if m not in text)
        assert not missing, f"README Architecture, {room}/: {missing}"


# --- the code's own shape: checked on the syntax tree, so a rule broken anywhere fails -----

MAX_FUNCTION_LINES = 60  # house style: about 50, none over 60
MAX_NODE_CLASS_LINES = 250  # the node is thin over the grasp service (core/grasp_service.py)
MAX_NODE_METHOD_LINES = 40
NODE_MODULE = PACKAGE / "ros" / "node.py"


def _package_modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a room's ``__init__`` as the room)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _lines(node: ast.AST) -> int:
    return node.end_lineno - node.lineno + 1


def _functions(tree: ast.AST):
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def _imported_from(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module an ``ImportFrom`` in ``module`` names (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[:len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _private_uses(module: str, path: Path, modules: dict[str, Path]) -> list[str]:
    """Where ``module`` imports a private name of another package module, or reads
    ``other_module._name``."""
    tree = ast.parse(path.read_text(), str(path))
    aliases: dict[str, str] = {}  # local name -> the package module it is bound to
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    local = alias.asname or alias.name.split(".")[0]
                    aliases[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom):
            source = _imported_from(node, module, path.name == "__init__.py")
            for alias in node.names:
                if f"{source}.{alias.name}" in modules:
                    aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
                elif source in modules and source != module and _is_private(alias.name):
                    found.append(f"{path.name}:{node.lineno} from {source} import {alias.name}")
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
            continue
        base = _dotted(node.value)
        if base is None:
            continue
        head, _, rest = base.partition(".")
        target = ".".join(p for p in (aliases.get(head, head), rest) if p)
        if target in modules and target != module:
            found.append(f"{path.name}:{node.lineno} {base}.{node.attr}")
    return found


def test_no_module_uses_a_private_name_of_another_module_of_the_package():
    """A leading underscore means "this module's own": a name another module needs is
    public, so renaming or removing a private one never breaks a neighbour."""
    modules = _package_modules()
    found = [use for module, path in sorted(modules.items())
             for use in _private_uses(module, path, modules)]
    assert not found, "\n".join(found)


def test_no_function_or_method_of_the_package_is_over_60_lines():
    long = sorted((_lines(f), f"{path.relative_to(PACKAGE)}:{f.lineno} {f.name}")
                  for path in PACKAGE.rglob("*.py")
                  for f in _functions(ast.parse(path.read_text(), str(path)))
                  if _lines(f) > MAX_FUNCTION_LINES)
    assert not long, "\n".join(f"{where}: {lines} lines" for lines, where in long)


def _node_class() -> ast.ClassDef:
    tree = ast.parse(NODE_MODULE.read_text(), str(NODE_MODULE))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "GraspSuccessNode"]
    return cls


def test_the_node_class_is_under_250_lines():
    assert _lines(_node_class()) < MAX_NODE_CLASS_LINES


def test_no_method_of_the_node_class_is_over_40_lines():
    long = {m.name: _lines(m) for m in _functions(_node_class())
            if _lines(m) > MAX_NODE_METHOD_LINES}
    assert not long, long


def test_the_node_module_reads_no_private_attribute_outside_the_node_class():
    """``main`` and its helpers drive the node through its public face (start,
    executor_threads, config, destroy_node): what they need is part of the node's API
    (``_spin`` once sized the executor from ``node._cameras``)."""
    tree = ast.parse(NODE_MODULE.read_text(), str(NODE_MODULE))
    outside = [n for n in tree.body if not isinstance(n, ast.ClassDef)]
    reads = sorted(f"{NODE_MODULE.name}:{a.lineno} {_dotted(a.value)}.{a.attr}"
                   for part in outside for a in ast.walk(part)
                   if isinstance(a, ast.Attribute) and _is_private(a.attr))
    assert not reads, reads
