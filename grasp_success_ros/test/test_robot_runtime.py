"""The robot runtime: a venv holding only the ROS 2 wheels and requirements-robot.txt (no
TensorFlow, Keras or matplotlib) runs the installed node over real DDS, ``replay``,
``bag-eval`` and ``predict`` with an exported ONNX model, and never tries to import what it
lacks; commands that need the full install say so in one line."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import venv
from pathlib import Path

import pytest
import rosnode
from test_bag_replay import wait_for_node

from grasp_success_ros.bags.writer import write_session
from grasp_success_ros.core.errors import FULL_INSTALL_ONLY
from grasp_success_ros.ros.stream_player import StreamPlayer

pytestmark = [pytest.mark.ros, pytest.mark.slow]

TEST_DIR = Path(__file__).resolve().parent
REPO = TEST_DIR.parent.parent
RUNNER = TEST_DIR / "robot_runtime.py"
GRASPS = 6


@pytest.fixture(scope="module")
def robot_python(tmp_path_factory) -> Path:
    """A fresh venv with the ROS 2 wheels and the robot runtime only."""
    root = tmp_path_factory.mktemp("robot") / "venv"
    venv.create(root, with_pip=True)
    python = root / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "-r", str(REPO / "requirements-ros.txt"),
                    "-r", str(REPO / "requirements-robot.txt")], check=True, timeout=900)
    return python


@pytest.fixture(scope="module")
def robot_env(ros_install, robot_python) -> dict[str, str]:
    """The environment a robot's shell has after sourcing the workspace: the colcon install
    and the robot venv, nothing of the full venv that runs the tests."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{robot_python.parent}:{env['PATH']}"
    sourced = subprocess.run(
        ["bash", "-c", f"source {shlex.quote(str(ros_install / 'setup.bash'))} && env -0"],
        env=env, check=True, capture_output=True, text=True)
    return dict(line.split("=", 1) for line in sourced.stdout.split("\0") if "=" in line)


@pytest.fixture(scope="module")
def onnx_model(trained_exports) -> Path:
    """The trained model in ONNX (conftest.py, exported once for the run)."""
    return Path(trained_exports["onnx"].path)


def robot(env, python, module: str, *args: str, **kwargs):
    """``python -m module args`` in the robot venv, import attempts reported."""
    return subprocess.run([str(python), str(RUNNER), module, *args], env=env,
                          capture_output=True, text=True, timeout=300, **kwargs)


def test_the_robot_venv_lacks_everything_the_full_install_adds(robot_env, robot_python):
    code = "import importlib.util as u, sys; sys.exit(sum(u.find_spec(m) is not None for m " \
           f"in {list(FULL_INSTALL_ONLY)!r}))"
    assert subprocess.run([str(robot_python), "-c", code], env=robot_env).returncode == 0


def test_the_node_answers_a_replayed_bag_as_bag_eval_does_without_tensorflow(
        ros, robot_env, robot_python, onnx_model, tmp_path):
    bag = tmp_path / "session"
    write_session(bag, n_grasps=GRASPS, seed=5, height=120, width=160, trigger_type="header",
                  approach_s=0.4, hold_s=1.2)
    ns = "/robot_runtime"
    log = tmp_path / "node.log"
    node = subprocess.Popen(
        [str(robot_python), str(RUNNER), "grasp_success_ros.ros.node", "--ros-args",
         "-r", f"__ns:={ns}", "-p", f"model_path:={onnx_model}", "-p", "use_sim_time:=true",
         "-p", "trigger_type:=header"],
        env=robot_env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    player = StreamPlayer(name="robot_results", namespace=ns)
    try:
        assert wait_for_node(player, ns, node), log.read_text()
        remaps = [a for t in ("/camera/image_raw", "/grasp_completed")
                  for a in ("--remap", f"{t}:={ns}{t}")]
        replayed = robot(robot_env, robot_python, "grasp_success_ros", "replay", str(bag),
                         "--clock", *remaps, "--wait-for", f"{ns}/grasp_completed",
                         "--delay", "2", "--quiet")
        live = player.wait_for_results(GRASPS, timeout=30.0)
    finally:
        player.close()
        assert rosnode.stop(node) == 0, log.read_text()[-2000:]
    offline = robot(robot_env, robot_python, "grasp_success_ros", "bag-eval", str(bag),
                    "--model", str(onnx_model), "--trigger-type", "header", "--json")
    node_log = log.read_text()
    assert replayed.returncode == 0 and offline.returncode == 0, replayed.stderr + offline.stderr
    for output in (node_log, replayed.stderr, offline.stderr):
        assert "IMPORT ATTEMPT" not in output, output[-2000:]
    records = json.loads(offline.stdout)["events"]
    assert [r["verdict"] for r in live] == [r["verdict"] for r in records]
    assert len(live) == GRASPS and all(r["verdict"] is not None for r in live), node_log


def test_predict_serves_an_onnx_model_without_tensorflow(robot_env, robot_python, onnx_model):
    seed_samples = REPO.parent / "shared" / "data" / "seed_samples"
    if not seed_samples.is_dir():
        pytest.skip(f"seed samples not found at {seed_samples}")
    done = robot(robot_env, robot_python, "grasp_success_ros", "predict", str(seed_samples),
                 str(onnx_model), "--json")
    assert done.returncode == 0, done.stderr
    assert "IMPORT ATTEMPT" not in done.stderr
    assert len(json.loads(done.stdout)) == sum(1 for p in seed_samples.rglob("*") if p.is_file())


@pytest.mark.parametrize("argv", [("train", "in", "valid", "out.keras"),
                                  ("predict", "in", "m.keras")])
def test_what_needs_the_full_install_says_so_in_one_line(robot_env, robot_python,
                                                         trained_model, tmp_path, argv):
    command, *paths = argv
    argv = [command, *(str(trained_model) if a == "m.keras" else str(tmp_path / a)
                       for a in paths)]
    (tmp_path / "in").mkdir()
    done = robot(robot_env, robot_python, "grasp_success_ros", *argv)
    errors = [line for line in done.stderr.splitlines() if "grasp-success" in line]
    assert done.returncode == 2 and len(errors) == 1, done.stderr
    assert "not installed here" in errors[0] and "requirements.txt" in errors[0]
    assert "Traceback" not in done.stderr


def test_only_a_package_the_robot_runtime_leaves_out_becomes_a_one_line_error():
    from grasp_success_ros.core.errors import MissingDependencyError, missing_dependency

    error = missing_dependency(ModuleNotFoundError("no", name="tensorflow.python"), "export")
    assert isinstance(error, MissingDependencyError)
    assert str(error).startswith("export needs tensorflow, which is not installed here")
    assert missing_dependency(ModuleNotFoundError("no", name="onnxruntime"), "predict") is None
    assert missing_dependency(ModuleNotFoundError("no", name="numpy"), "predict") is None
