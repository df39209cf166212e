"""Shared fixtures: a tiny trained model, a colcon-built install, an isolated DDS domain."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Keep this test run's DDS traffic to itself and to this machine.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
# The tests publish camera frames as a camera driver would: with the packaged Fast DDS
# profile, as the README tells users to (else most best-effort 640x480 frames are lost).
from grasp_success_ros.ros.dds_profile import use_large_image_profile  # noqa: E402

use_large_image_profile()

TINY_SIZE = 96
# The demo recipe (Makefile): a from-scratch MobileNetV3 needs this many scenes to reach
# >= 97% on held-out scenes in 4 epochs (about 1 min to draw, 2-3 min to train on 2 cores).
TRAIN_IMAGES = 10000


@pytest.fixture(scope="module")
def ros():
    """rclpy initialised for the test module's own participants (players, listeners)."""
    import rclpy

    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> dict[str, Path]:
    """Synthetic train / valid folders (different seeds)."""
    from grasp_success_ros.data.synth import write_dataset

    root = tmp_path_factory.mktemp("synth")
    write_dataset(root / "train", TRAIN_IMAGES, seed=1)
    write_dataset(root / "valid", 200, seed=2)
    return {"train": root / "train", "valid": root / "valid"}


@pytest.fixture(scope="session")
def trained_model(request, tmp_path_factory) -> Path:
    """A small MobileNetV3 classifier trained from scratch on synthetic scenes.

    ``GRASP_SUCCESS_TEST_MODEL=/path/model.keras`` (trained with the Makefile's demo recipe)
    skips the training when iterating on the ROS tests."""
    from grasp_success_ros.training.train import TrainConfig, train

    if os.environ.get("GRASP_SUCCESS_TEST_MODEL"):
        return Path(os.environ["GRASP_SUCCESS_TEST_MODEL"])
    synth_data = request.getfixturevalue("synth_data")

    out = tmp_path_factory.mktemp("model") / "tiny.keras"
    cfg = TrainConfig(backbone="mobilenet_v3_small", input_size=TINY_SIZE, weights=None,
                      epochs=4, batch_size=32, learning_rate=1e-3, optimizer="adam",
                      lr_schedule="cosine", augment=False, early_stopping=False, seed=0,
                      tensorboard=False, plots=False, progress=False)
    train(synth_data["train"], synth_data["valid"], out, cfg)
    return out


@pytest.fixture(scope="session")
def ros_install(tmp_path_factory) -> Path:
    """``colcon build`` of this package into a fresh install space, as a user would.

    ``GRASP_SUCCESS_TEST_INSTALL=/path/install`` reuses an install space instead."""
    if os.environ.get("GRASP_SUCCESS_TEST_INSTALL"):
        return Path(os.environ["GRASP_SUCCESS_TEST_INSTALL"])
    base = tmp_path_factory.mktemp("colcon")
    subprocess.run(
        [sys.executable, "-m", "colcon", "build", "--paths", str(REPO),
         "--build-base", str(base / "build"), "--install-base", str(base / "install")],
        cwd=base, check=True, capture_output=True, text=True)
    return base / "install"


@pytest.fixture
def svg_backend() -> str:
    """matplotlib switched to another backend than the Agg that writes PNGs (as a program
    embedding our plots may have it), and back afterwards."""
    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    yield matplotlib.get_backend()
    matplotlib.use(before)
