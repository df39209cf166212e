"""The package as ROS tools see it: launch file, params file, versions, lint.

``launch`` and ``launch_ros`` do not install from PyPI, so the launch file is checked
statically: the executable it names is installed, its default params file exists, and
every key of the params file is a parameter the node declares.
"""

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from grasp_success_ros import __version__
from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.core.params import PARAMS, CameraTopics, NodeConfig, check_camera_names

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the grasp_success_ros ROS package
REPO = PACKAGE_DIR.parent
PACKAGE = PACKAGE_DIR / "grasp_success_ros"
LAUNCH = PACKAGE_DIR / "launch" / "grasp_success.launch.py"
PARAMS_FILE = PACKAGE_DIR / "config" / "grasp_success.yaml"


def launch_tree():
    return ast.parse(LAUNCH.read_text())


def string_constants(tree):
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)}


def test_launch_file_starts_the_installed_executable(ros_install):
    consts = string_constants(launch_tree())
    assert "grasp_success_node" in consts and "grasp_success_ros" in consts
    installed = ros_install / "grasp_success_ros" / "lib" / "grasp_success_ros"
    assert (installed / "grasp_success_node").is_file()


def test_launch_params_file_defaults_to_the_installed_config(ros_install):
    consts = string_constants(launch_tree())
    assert {"config", "grasp_success.yaml"} <= consts
    share = ros_install / "grasp_success_ros" / "share" / "grasp_success_ros"
    assert (share / "config" / "grasp_success.yaml").is_file()
    assert (share / "launch" / "grasp_success.launch.py").is_file()


def called_names(tree):
    return {n.func.id if isinstance(n.func, ast.Name) else getattr(n.func, "attr", "")
            for n in ast.walk(tree) if isinstance(n, ast.Call)}


def test_launch_applies_the_installed_fast_dds_profile_by_the_tools_rule(ros_install):
    """Same rule as ros/dds_profile.py (left alone under another middleware or a profile
    the user chose): the launch file asks profile_vars_to_set what to set."""
    tree = launch_tree()
    assert "fastdds_large_images.xml" in string_constants(tree)
    assert {"profile_vars_for_scope", "SetEnvironmentVariable"} <= called_names(tree)
    share = ros_install / "grasp_success_ros" / "share" / "grasp_success_ros"
    assert (share / "config" / "fastdds_large_images.xml").is_file()


def test_launch_arguments_all_have_descriptions():
    tree = launch_tree()
    assign = next(n for n in tree.body if isinstance(n, ast.Assign)
                  and getattr(n.targets[0], "id", "") == "ARGUMENTS")
    names = [elt.elts[0].value for elt in assign.value.elts]
    descriptions = [elt.elts[2] for elt in assign.value.elts]
    assert set(names) >= {"model_path", "camera_topic", "trigger_topic", "namespace",
                          "params_file", "use_sim_time", "autostart", "log_level", "respawn",
                          "respawn_delay", "fastdds_profile", "fastdds_profile_scope"}
    assert all(len(ast.literal_eval(d)) > 20 for d in descriptions)


def launch_argument_defaults(tree) -> dict:
    assign = next(n for n in tree.body if isinstance(n, ast.Assign)
                  and getattr(n.targets[0], "id", "") == "ARGUMENTS")
    return {elt.elts[0].value: elt.elts[1] for elt in assign.value.elts}


def test_launch_profile_scope_defaults_to_the_node_alone_and_is_one_the_rule_knows():
    from grasp_success_ros.ros.dds_profile import PROFILE_SCOPES

    default = ast.literal_eval(launch_argument_defaults(launch_tree())["fastdds_profile_scope"])
    assert default == "node" and default in PROFILE_SCOPES


def test_launch_node_takes_log_level_respawn_and_its_own_environment():
    """The Node action receives what the arguments ask for; autostart stays the params
    file's unless given (an empty default)."""
    tree = launch_tree()
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, "id", "") == "Node")
    keywords = {k.arg for k in node.keywords}
    assert {"ros_arguments", "respawn", "respawn_delay", "additional_env"} <= keywords
    assert "--log-level" in string_constants(node)
    assert ast.literal_eval(launch_argument_defaults(tree)["autostart"]) == ""


def test_every_key_in_the_params_file_is_a_declared_parameter_with_its_default():
    values = yaml.safe_load(PARAMS_FILE.read_text())["/**"]["ros__parameters"]
    declared = {p.name: p.default for p in PARAMS}
    assert set(values) == set(declared)
    assert values == declared


def test_params_file_with_a_model_path_is_a_valid_config():
    values = yaml.safe_load(PARAMS_FILE.read_text())["/**"]["ros__parameters"]
    assert NodeConfig.from_values({**values, "model_path": "m.keras"}).deadline_s == 2.0


def test_version_is_the_same_in_package_xml_setup_py_and_the_module():
    xml_version = ET.parse(PACKAGE_DIR / "package.xml").getroot().findtext("version")
    setup_py = (PACKAGE_DIR / "setup.py").read_text()
    setup_version = re.search(r'VERSION = "([^"]+)"', setup_py).group(1)
    assert xml_version == setup_version == __version__


ROS_NAMES = re.compile(r"rclpy|rcl_\w+|launch|launch_ros|ament_index_python|rosidl_\w+"
                       r"|\w+_(msgs|srvs|interfaces)")


def is_ros_package(name: str) -> bool:
    """A ROS package by its name, or by coming from a ROS wheel (ros-*, ros-jazzy-*)."""
    dists = importlib.metadata.packages_distributions().get(name, [])
    return bool(ROS_NAMES.fullmatch(name)) or any(
        re.sub(r"[-_.]+", "-", d.lower()).startswith("ros-") for d in dists)


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every absolute import in a source file, function-level included."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_package_xml_declares_every_ros_package_the_sources_import():
    sources = [*PACKAGE.rglob("*.py"), *(PACKAGE_DIR / "launch").glob("*.py")]
    imported = set().union(*(imported_packages(path) for path in sources))
    ros = {name for name in imported if is_ros_package(name)}
    manifest = ET.parse(PACKAGE_DIR / "package.xml").getroot()
    deps = {e.text for tag in ("depend", "exec_depend") for e in manifest.iter(tag)}
    assert {"rclpy", "sensor_msgs", "std_msgs", "launch", "launch_ros"} <= ros
    assert ros - deps == set()


def test_every_module_outside_ros_and_cli_imports_without_rclpy():
    """The import-linter contract checks the source; this checks what really gets loaded."""
    code = ("import importlib, pkgutil, sys\n"
            "import grasp_success_ros as pkg\n"
            "for m in pkgutil.walk_packages(pkg.__path__, 'grasp_success_ros.'):\n"
            "    if m.name.split('.')[1] not in ('ros', 'cli'):\n"
            "        importlib.import_module(m.name)\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'rclpy')\n"
            "assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], cwd=PACKAGE_DIR, check=True)


def test_ruff_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", str(REPO)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


PACKAGE_SOURCES = ("setup.py", "setup.cfg", "package.xml", "resource", "launch", "config",
                   "grasp_success_ros")


def test_grasp_success_and_grasp_success_node_are_installed_as_commands(tmp_path):
    """What `make venv` does (pip installs the package into the venv), into a scratch target:
    both console scripts are written, `grasp-success --help` runs from the installed copy,
    and the node's entry point resolves to its main function."""
    src, target = tmp_path / "src", tmp_path / "target"
    src.mkdir()
    for name in PACKAGE_SOURCES:  # a copy: pip builds in the source tree (build/, egg-info)
        if (PACKAGE_DIR / name).is_dir():
            shutil.copytree(PACKAGE_DIR / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(PACKAGE_DIR / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(target), str(src)], check=True)
    scripts = {p.name for p in (target / "bin").iterdir()}
    assert {"grasp-success", "grasp_success_node"} <= scripts
    # the target first; the sourced install after it, for grasp_success_msgs
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(target), os.environ.get("PYTHONPATH")) if p)}
    shown = subprocess.run([str(target / "bin" / "grasp-success"), "--help"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "bag-eval" in shown.stdout and "replay" in shown.stdout
    code = ("import importlib.metadata as m, sys\n"
            "dist = next(m.distributions(name='grasp_success_ros', path=[sys.argv[1]]))\n"
            "ep = next(e for e in dist.entry_points if e.name == 'grasp_success_node')\n"
            "main = ep.load()\n"
            "assert callable(main) and sys.modules[main.__module__].__file__.startswith("
            "sys.argv[1]), main\n")
    subprocess.run([sys.executable, "-c", code, str(target)], env=env, cwd=tmp_path,
                   check=True, timeout=120)


def test_make_venv_installs_ros_wheels_other_dependencies_and_the_package_itself():
    dry = subprocess.run(["make", "-n", "-B", "venv", "VENV=/tmp/no_venv"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    assert re.search(r"^/tmp/no_venv/bin/pip install .*-r requirements-ros.txt "
                     r"-r requirements-dev.txt$", dry, re.M), dry
    assert re.search(r"^/tmp/no_venv/bin/pip install .*--no-deps -e grasp_success_ros$", dry,
                     re.M), dry


def requirement_names(path: Path) -> set[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return {re.split(r"[\[<>=! ]", line)[0].lower() for line in lines
            if line and not line.startswith("-")}


def test_ros_2_wheels_are_only_in_requirements_ros_txt():
    """A machine with ROS 2 from apt installs requirements.txt without pip's ROS 2 over it."""
    ros = requirement_names(REPO / "requirements-ros.txt")
    assert ros and all(name.startswith("ros-jazzy-") for name in ros)
    for other in ("requirements.txt", "requirements-dev.txt"):
        assert not {n for n in requirement_names(REPO / other) if n.startswith("ros-")}


def test_the_kilted_wheels_are_the_jazzy_set_for_kilted():
    """``make test-kilted`` installs requirements-ros-kilted.txt: the same ROS 2 packages,
    plus ament_cmake_ros_core (split out of ament_cmake_ros in Kilted), less
    python_cmake_module (Kilted's rosidl finds Python without it)."""
    jazzy = requirement_names(REPO / "requirements-ros.txt")
    kilted = requirement_names(REPO / "requirements-ros-kilted.txt")
    assert all(name.startswith("ros-kilted-") for name in kilted)
    as_kilted = {name.replace("ros-jazzy-", "ros-kilted-") for name in jazzy}
    assert kilted == (as_kilted - {"ros-kilted-python-cmake-module"}) | {
        "ros-kilted-ament-cmake-ros-core"}


def test_a_clone_in_a_workspace_builds_both_packages_interfaces_first(workspace):
    """The repository in ``ws/src/`` and a plain ``colcon build``: both packages are found
    (colcon stops descending at a package, so they are siblings) and built in order."""
    if not workspace.build_output:
        pytest.skip("GRASP_SUCCESS_TEST_INSTALL reuses an install space: nothing was built")
    out = workspace.build_output
    assert out.index("Finished <<< grasp_success_msgs") < out.index(
        "Starting >>> grasp_success_ros"), out
    assert "Summary: 2 packages finished" in out
    for package in ("grasp_success_msgs", "grasp_success_ros"):
        assert (workspace.install / package / "share" / package / "package.xml").is_file()


def test_a_listed_camera_defaults_to_topics_and_answers_under_its_own_name():
    left = CameraTopics.named("left", {"trigger_topic": "/hand_l/done"})
    assert (left.image_topic, left.trigger_topic) == ("left/camera/image_raw", "/hand_l/done")
    assert left.output("grasp_success/result") == "left/grasp_success/result"
    assert CameraTopics("").output("grasp_success") == "grasp_success"


@pytest.mark.parametrize("names", [["left", "left"], ["left", "1st"], ["a/b"]])
def test_repeated_or_invalid_camera_names_are_refused(names):
    with pytest.raises(ConfigError):
        [CameraTopics.named(n, {}) for n in check_camera_names(names)]


@pytest.mark.parametrize("package", ["grasp_success_ros", "grasp_success_msgs"])
def test_each_package_carries_the_license_its_package_xml_names(package):
    root = ET.parse(REPO / package / "package.xml").getroot()
    license_tag = root.find("license")
    assert license_tag.text == "Apache-2.0"
    text = (REPO / package / license_tag.get("file")).read_text()
    assert "Apache License" in text and "Version 2.0" in text
    assert text == (REPO / "LICENSE").read_text()


@pytest.mark.parametrize("package", ["grasp_success_ros", "grasp_success_msgs"])
def test_each_package_has_a_changelog_in_the_ros_format_listing_its_version(package):
    """What catkin_generate_changelog writes and bloom reads: a title naming the package,
    then one section per release, ``VERSION (YYYY-MM-DD)`` underlined with dashes."""
    lines = (REPO / package / "CHANGELOG.rst").read_text().splitlines()
    version = ET.parse(REPO / package / "package.xml").getroot().findtext("version")
    assert lines[1] == f"Changelog for package {package}"
    assert set(lines[0]) == set(lines[2]) == {"^"} and len(lines[0]) == len(lines[1])
    releases = [(line, below) for line, below in zip(lines, lines[1:], strict=False)
                if re.fullmatch(r"\d+\.\d+\.\d+ \(\d{4}-\d\d-\d\d\)", line)]
    assert any(line.startswith(f"{version} ") for line, _ in releases)
    assert all(set(below) == {"-"} and len(below) == len(line) for line, below in releases)
