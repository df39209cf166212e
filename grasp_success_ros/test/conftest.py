"""Shared fixtures: a tiny trained model, a colcon-built workspace, an isolated DDS domain."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the grasp_success_ros ROS package
REPO = PACKAGE_DIR.parent  # the repository: both ROS packages, README, Makefile
sys.path.insert(0, str(PACKAGE_DIR))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# A node or CLI process of a test that dies of a signal leaves its threads' Python stacks in
# its log (an exit code of -11 alone says nothing of where).
os.environ.setdefault("PYTHONFAULTHANDLER", "1")
# Keep this test run's DDS traffic to itself and to this machine; under pytest-xdist each
# worker (gw0, gw1, ...) takes the next domain, so parallel modules never meet each other's
# nodes of the same names.
_DOMAIN = int(os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100))))
if os.environ.get("PYTEST_XDIST_WORKER", "").startswith("gw"):
    _WORKER = int(os.environ["PYTEST_XDIST_WORKER"][2:])
    os.environ["ROS_DOMAIN_ID"] = str((_DOMAIN + _WORKER) % 233)  # Fast DDS: domains 0-232
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
# The tests publish camera frames as a camera driver would: with the packaged Fast DDS
# profile, as the README tells users to (else most best-effort 640x480 frames are lost).
from grasp_success_ros.ros.dds_profile import use_large_image_profile  # noqa: E402

use_large_image_profile()

TINY_SIZE = 96
# The demo recipe (Makefile): a from-scratch MobileNetV3 needs this many scenes to reach
# >= 97% on held-out scenes in 4 epochs (about 1 min to draw, 2-3 min to train on 2 cores).
TRAIN_IMAGES = 10000
# What one whole run writes under the temporary directory (models, exports, bags, scenes):
# 4.2 GB measured at its end on 2026-11-22, with a margin.
SUITE_TMP_GB = 5.0


def pytest_sessionstart(session) -> None:
    """Stop at once, in one line, on a disk too full for the suite: a CI run that ran out
    of space half-way once failed 200 tests at setup with no word about why."""
    tmp = tempfile.gettempdir()
    free_gb = shutil.disk_usage(tmp).free / 1e9
    if free_gb < SUITE_TMP_GB and not session.config.option.collectonly:
        pytest.exit(f"only {free_gb:.1f} GB free under {tmp}; the whole suite writes about "
                    f"{SUITE_TMP_GB:.0f} GB there (set TMPDIR to a roomier disk)", returncode=1)


@pytest.fixture(scope="module")
def ros():
    """rclpy initialised for the test module's own participants (players, listeners)."""
    import rclpy

    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> dict[str, Path]:
    """Synthetic validation scenes (seed 2), as the demo recipe draws them."""
    from grasp_success_ros.data.synth import write_dataset

    root = tmp_path_factory.mktemp("synth")
    write_dataset(root / "valid", 200, seed=2)
    return {"valid": root / "valid"}


@pytest.fixture(scope="session")
def trained_model(request, tmp_path_factory) -> Path:
    """A small MobileNetV3 classifier trained from scratch on synthetic scenes: the demo
    recipe (Makefile).

    ``GRASP_SUCCESS_TEST_MODEL=/path/model.keras`` (a model of that recipe) skips the
    training: ``make test`` trains the demo model once and passes it so."""
    from grasp_success_ros.data.synth import write_dataset
    from grasp_success_ros.training.train import TrainConfig, train

    if os.environ.get("GRASP_SUCCESS_TEST_MODEL"):
        return Path(os.environ["GRASP_SUCCESS_TEST_MODEL"])
    synth_data = request.getfixturevalue("synth_data")
    train_dir = tmp_path_factory.mktemp("synth_train") / "train"
    write_dataset(train_dir, TRAIN_IMAGES, seed=1)
    out = tmp_path_factory.mktemp("model") / "tiny.keras"
    cfg = TrainConfig(backbone="mobilenet_v3_small", input_size=TINY_SIZE, weights=None,
                      epochs=4, batch_size=32, learning_rate=1e-3, optimizer="adam",
                      lr_schedule="cosine", augment=False, early_stopping=False, seed=0,
                      tensorboard=False, plots=False, progress=False)
    train(train_dir, synth_data["valid"], out, cfg)
    return out


@pytest.fixture(scope="session")
def trained_exports(trained_model, tmp_path_factory) -> dict:
    """The trained model exported once for the run (test_tools, test_openvino,
    test_robot_runtime each exported it themselves: 15-25 s apiece): TFLite, then ONNX, in
    one folder sharing ``tiny.card.json``, each checked against Keras on 40 synthetic scenes
    it has not seen (``samples/`` beside them). Where openvino is installed and this CPU has
    bf16, the ONNX export also records OpenVINO's bf16 parity (written last: a later export
    rewrites the card). Tests read these files and write nothing beside them."""
    from grasp_success_ros.data.synth import write_dataset
    from grasp_success_ros.model.export import export_model

    out = tmp_path_factory.mktemp("trained_exports")
    write_dataset(out / "samples", 40, seed=21)
    results = {fmt: export_model(trained_model, fmt, out=out / f"tiny.{fmt}",
                                 samples_dir=out / "samples", log=lambda s: None,
                                 check_openvino=openvino_bf16_check() if fmt == "onnx" else None)
               for fmt in ("tflite", "onnx")}
    return results


def openvino_bf16_check() -> str | None:
    """``"bf16"`` where openvino is installed and this CPU runs bf16, else None."""
    try:
        import openvino
    except ImportError:
        return None
    from grasp_success_ros.model.runtimes import bf16_capable

    return "bf16" if bf16_capable(openvino.Core(), "CPU") else None


@dataclass(frozen=True)
class Workspace:
    install: Path
    build_output: str  # colcon's console output ("" for a reused install space)


def source_tree_files() -> list[str]:
    """What a clone of this checkout holds: tracked files and new ones git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                             "-z"], cwd=REPO, check=True, capture_output=True, text=True)
    return [name for name in listed.stdout.split("\0") if name and (REPO / name).is_file()]


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Workspace:
    """This repository inside a fresh workspace's ``src/``, built by a plain ``colcon build``
    as a user would (colcon finds both packages and orders them).

    ``GRASP_SUCCESS_TEST_INSTALL=/path/install`` reuses an install space instead."""
    if os.environ.get("GRASP_SUCCESS_TEST_INSTALL"):
        return Workspace(Path(os.environ["GRASP_SUCCESS_TEST_INSTALL"]), "")
    ws = tmp_path_factory.mktemp("ws")
    for name in source_tree_files():
        (ws / "src" / "grasp_success_ros" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, ws / "src" / "grasp_success_ros" / name)
    env = {**os.environ, "AMENT_PREFIX_PATH": os.pathsep.join(
        p for p in (sys.prefix, os.environ.get("AMENT_PREFIX_PATH")) if p)}
    built = subprocess.run([sys.executable, "-m", "colcon", "build",
                            "--event-handlers", "console_cohesion-"],
                           cwd=ws, env=env, capture_output=True, text=True)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return Workspace(ws / "install", built.stdout)


@pytest.fixture(scope="session")
def ros_install(workspace) -> Path:
    """The colcon install space holding grasp_success_msgs and grasp_success_ros."""
    return workspace.install


@pytest.fixture
def svg_backend() -> str:
    """matplotlib switched to another backend than the Agg that writes PNGs (as a program
    embedding our plots may have it), and back afterwards."""
    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    yield matplotlib.get_backend()
    matplotlib.use(before)
