"""Point the ROS 2 wheels' CMake exports at this Python's include directories.

The Jazzy wheels on PyPI ship ``*__rosidl_generator_pyExport.cmake`` files that name the
wheel builder's Python (``/opt/python/cp3XX-cp3XX/...``); CMake refuses an imported target
whose include directory does not exist, so no interface package could be built against them.
Rewriting the two paths to this interpreter's Python and NumPy include directories is all
that is needed. Idempotent: a patched file no longer matches.
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy as np

BUILDER_PYTHON = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")
BUILDER_NUMPY = re.compile(
    r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/(?:_core|core)/include")


def patch(prefix: Path) -> list[Path]:
    """Rewrite every export file under ``prefix/share``; return the files changed."""
    changed = []
    for path in sorted(prefix.glob("share/*/cmake/*__rosidl_generator_pyExport.cmake")):
        text = path.read_text()
        new = BUILDER_PYTHON.sub(sysconfig.get_paths()["include"], text)
        new = BUILDER_NUMPY.sub(np.get_include(), new)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


if __name__ == "__main__":
    prefix = Path(sys.argv[1] if len(sys.argv) > 1 else sys.prefix)
    done = patch(prefix)
    print(f"pointed {len(done)} rosidl CMake export(s) under {prefix}/share at this Python")
