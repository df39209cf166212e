"""The Fast DDS profile that lets camera-sized images through shared memory.

Fast DDS (ROS 2 Jazzy's default middleware) sends a message larger than its 512 KB
shared-memory segment as UDP fragments; a best-effort subscriber then loses most camera
frames (see ``resources/fastdds_large_images.xml``). The profile has to be in the
environment of the process that *publishes* the images before it calls ``rclpy.init()``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from importlib import resources
from pathlib import Path

# Either names a profile file the user chose (Fast DDS 2.x reads the first, 3.x the second).
PROFILE_VARS = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")
FAST_DDS_RMWS = ("", "rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp")
# Where the launch file applies the profile: every process started after it in the launch
# (a camera driver included beside it), the node's process alone, or nowhere.
PROFILE_SCOPES = ("launch", "node", "none")


def profile_path() -> Path:
    """The packaged profile (also installed to share/grasp_success_ros/config)."""
    return Path(str(resources.files("grasp_success_ros.ros") / "resources"
                    / "fastdds_large_images.xml"))


def profile_vars_to_set(env: Mapping[str, str], path: Path | str) -> dict[str, str]:
    """The variable that points this distribution's Fast DDS at ``path`` (rclpy_compat
    decides which): none under another middleware or when the user chose a profile already
    (either name set, even empty). The launch file uses it too."""
    if env.get("RMW_IMPLEMENTATION", "") not in FAST_DDS_RMWS:
        return {}
    if any(var in env for var in PROFILE_VARS):
        return {}
    # rclpy_compat imports rclpy: only here, where a process is about to use DDS (the CLI
    # imports this module for every command, ROS or not)
    from grasp_success_ros.ros.rclpy_compat import fast_dds_profile_vars

    return {var: str(path) for var in fast_dds_profile_vars()}


def use_large_image_profile(env: MutableMapping[str, str] | None = None) -> Path | None:
    """Point Fast DDS at the packaged profile unless the user configured DDS already.

    Returns the profile set, or None when the environment was left alone (another RMW, or a
    profile file already chosen). Call it before ``rclpy.init()``.
    """
    env = os.environ if env is None else env
    path = profile_path()
    changes = profile_vars_to_set(env, path)
    env.update(changes)
    return path if changes else None


def profile_vars_for_scope(scope: str, env: Mapping[str, str],
                           path: Path | str) -> tuple[dict[str, str], dict[str, str]]:
    """The launch file's rule: (variables for the rest of the launch, variables for the
    node's process alone) for ``scope``; nothing without a profile ``path``. The segment
    belongs to the publisher, so ``launch`` is for a camera driver started after the node in
    the same launch; ``node`` covers only the node's own debug images."""
    if scope not in PROFILE_SCOPES:
        raise ValueError(f"fastdds_profile_scope must be one of {', '.join(PROFILE_SCOPES)}, "
                         f"not {scope!r}")
    changes = profile_vars_to_set(env, path) if path and scope != "none" else {}
    return (changes, {}) if scope == "launch" else ({}, changes)
