"""Starting the colcon-installed node as its own process, as ``ros2 run`` would."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

PKG = "grasp_success_ros"


def node_command(install: Path, model: Path | str, *ros_args: str) -> str:
    params = install / PKG / "share" / PKG / "config" / "grasp_success.yaml"
    exe = install / PKG / "lib" / PKG / "grasp_success_node"
    args = ["--ros-args", "--params-file", str(params), "-p", f"model_path:={model}", *ros_args]
    return f"source {shlex.quote(str(install / 'setup.bash'))} && exec {exe} " + shlex.join(args)


def start(install: Path, model: Path | str, log: Path, *ros_args: str) -> subprocess.Popen:
    return subprocess.Popen(["bash", "-c", node_command(install, model, *ros_args)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> int:
    from grasp_success_ros.ros.processes import stop_node

    return stop_node(proc)
