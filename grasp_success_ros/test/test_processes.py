"""Starting the node as its own process: which executable and which parameters file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from grasp_success_ros.ros.processes import installed_node_command, installed_params_file

PACKAGE_DIR = Path(__file__).resolve().parent.parent
PKG = "grasp_success_ros"


def test_without_an_install_space_the_node_runs_from_its_module(monkeypatch):
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    cmd = installed_node_command()
    assert cmd[1] == "-m" and importlib.util.find_spec(cmd[2]) is not None


def test_without_an_install_space_the_parameters_are_the_checkouts(monkeypatch):
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    assert installed_params_file() == PACKAGE_DIR / "config" / "grasp_success.yaml"


def test_in_an_install_space_the_installed_executable_and_parameters_are_used(ros_install,
                                                                               monkeypatch):
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(ros_install / PKG))
    assert installed_node_command() == [str(ros_install / PKG / "lib" / PKG /
                                            "grasp_success_node")]
    assert installed_params_file() == (ros_install / PKG / "share" / PKG / "config" /
                                       "grasp_success.yaml")
