"""Grasp success verification for ROS 2.

The package is a ROS-free core with thin adapters (see README, "Architecture"): only
``grasp_success_ros.ros`` and ``grasp_success_ros.cli`` import rclpy; the import-linter
contracts in pyproject.toml enforce it.
"""

__version__ = "0.1.0"
