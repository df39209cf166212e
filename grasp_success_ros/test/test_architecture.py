"""The architecture is checked, not promised: rooms, layers and the ROS boundary.

The contracts live in pyproject.toml ([tool.importlinter]); README "Architecture" explains them.
"""

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
