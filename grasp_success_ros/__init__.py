"""Grasp success verification for ROS 2.

Everything in this package except :mod:`grasp_success_ros.node` (and the demo
driver) imports and runs without ROS.
"""

__version__ = "0.1.0"
