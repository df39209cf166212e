"""The node's executor under its old import path: ``rclpy_compat`` holds it now, beside the
other rclpy workarounds. Kept for ``ros/node.py``'s import; delete once nothing imports it."""

from __future__ import annotations

from grasp_success_ros.ros.rclpy_compat import InlineCallbackGroup, NodeExecutor

__all__ = ["InlineCallbackGroup", "NodeExecutor"]
