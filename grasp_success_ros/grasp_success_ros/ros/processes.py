"""Starting and stopping the installed node as its own process, as ``ros2 run`` would (the
demo, the benchmark and the soak script all drive it this way)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ament_index_python.packages import (
    PackageNotFoundError,
    get_package_prefix,
    get_package_share_directory,
)

PACKAGE = "grasp_success_ros"
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the checkout, when run from source


def installed_node_command() -> list[str]:
    """The installed executable (after ``source install/setup.bash``), else the module."""
    try:
        exe = Path(get_package_prefix(PACKAGE)) / "lib" / PACKAGE / "grasp_success_node"
        if exe.is_file():
            return [str(exe)]
    except (PackageNotFoundError, OSError):  # not in an ament prefix, or none is sourced
        pass
    return [sys.executable, "-m", f"{PACKAGE}.ros.node"]


def installed_params_file() -> Path:
    """The installed default parameters, else the checkout's ``config/grasp_success.yaml``."""
    try:
        path = Path(get_package_share_directory(PACKAGE)) / "config" / "grasp_success.yaml"
        if path.is_file():
            return path
    except (PackageNotFoundError, OSError):
        pass
    return SOURCE_ROOT / "config" / "grasp_success.yaml"


def start_node(model: Path, params_file: Path, extra: Sequence[str] = (),
               **popen) -> subprocess.Popen:
    """The node judging with ``model``, its parameters from ``params_file`` plus ``extra``
    ROS arguments; ``popen`` goes to :class:`subprocess.Popen` (e.g. ``stdout``)."""
    cmd = [*installed_node_command(), "--ros-args", "--params-file", str(params_file),
           "-p", f"model_path:={model}", *extra]
    return subprocess.Popen(cmd, **popen)


def stop_node(proc: subprocess.Popen, timeout: float = 20.0) -> int:
    """Ctrl-C, as a user would; kill only if it does not exit."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@contextmanager
def ros_context() -> Iterator[None]:
    """rclpy initialised for a program's own participants (players, listeners) of another
    process's node, and shut down after."""
    import rclpy

    rclpy.init()
    try:
        yield
    finally:
        rclpy.try_shutdown()
