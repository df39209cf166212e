"""Message classes from type names: the one place the ROS side turns a
``pkg/msg/Name`` string (bags, core/triggers.TRIGGER_MSGTYPES) into an rclpy class."""

from __future__ import annotations

import importlib

from grasp_success_ros.core.triggers import TRIGGER_MSGTYPES


def message_class(msgtype: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class, or None if not installed."""
    try:
        pkg, kind, name = msgtype.split("/")
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (ValueError, ImportError, AttributeError):
        return None


def trigger_class(trigger_type: str):
    """The message class of a trigger_type (std_msgs, a dependency: always installed)."""
    return message_class(TRIGGER_MSGTYPES[trigger_type])
