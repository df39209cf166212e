"""Commands speak the project's words only: TensorFlow's native start-up notices are dropped
(unless --debug), everything else written to stderr still arrives."""

import subprocess
import sys

import pytest

from grasp_success_ros.model.native_logs import is_notice

# Lines TensorFlow 2.21 writes to fd 2 on a machine without a GPU, as captured here.
NOTICES = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    b"I0000 00:00:1795298387.126976    4465 port.cc:153] oneDNN custom operations are on. You "
    b"may see slightly different numerical results due to floating-point round-off errors.\n",
    b"I0000 00:00:1795298387.127297    4465 cudart_stub.cc:31] Could not find cuda drivers on "
    b"your machine, GPU will not be used.\n",
    b"E0000 00:00:1795298390.492109    4465 cuda_platform.cc:52] failed call to cuInit: "
    b"INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n",
    b"To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild "
    b"TensorFlow with the appropriate compiler flags.\n",
]
MARKERS = ("absl::InitializeLog", "oneDNN", "cuInit", "cuda drivers")


@pytest.mark.parametrize("line", NOTICES)
def test_tensorflow_start_up_lines_are_notices(line):
    assert is_notice(line)


@pytest.mark.parametrize("line", [
    b"grasp-success predict: model file not found: 'x.keras'\n",
    b"E0000 00:00:1795298390.492109    4465 conv_ops.cc:52] a real kernel error\n",
    b"Traceback (most recent call last):\n",
])
def test_other_lines_are_not_notices(line):
    assert not is_notice(line)


def _predict(model, image, *extra):
    return subprocess.run([sys.executable, "-m", "grasp_success_ros", *extra, "predict",
                           str(image), str(model)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    from grasp_success_ros.data.synth import write_dataset

    folder = tmp_path_factory.mktemp("one")
    write_dataset(folder, 2, seed=5)
    return next(folder.rglob("*.png"))


def test_a_command_prints_no_tensorflow_start_up_notices(trained_model, image):
    result = _predict(trained_model, image)
    assert result.returncode == 0, result.stderr
    assert not [m for m in MARKERS if m in result.stderr], result.stderr
    assert "SUCCESS" in result.stdout or "FAILURE" in result.stdout


def test_debug_shows_the_start_up_notices(trained_model, image):
    result = _predict(trained_model, image, "--debug")
    assert result.returncode == 0, result.stderr
    assert "oneDNN" in result.stderr or "absl::InitializeLog" in result.stderr


def test_errors_still_reach_stderr_through_the_filter(tmp_path, image):
    result = _predict(tmp_path / "missing.keras", image)
    assert result.returncode == 2
    assert "grasp-success predict:" in result.stderr and "missing.keras" in result.stderr


def _node_output(ros_install, trained_model, tmp_path, *ros_args):
    import time

    from rosnode import start, stop

    log = tmp_path / "node.log"
    proc = start(ros_install, trained_model, log, *ros_args)
    deadline = time.monotonic() + 120
    while "ready" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    stop(proc)
    return log.read_text()


@pytest.mark.ros
def test_the_node_logs_no_tensorflow_start_up_notices(ros_install, trained_model, tmp_path):
    output = _node_output(ros_install, trained_model, tmp_path)
    assert "ready" in output
    assert not [m for m in MARKERS if m in output], output


@pytest.mark.ros
def test_the_node_at_debug_level_shows_them(ros_install, trained_model, tmp_path):
    output = _node_output(ros_install, trained_model, tmp_path, "--log-level", "debug")
    assert "ready" in output
    assert "oneDNN" in output or "absl::InitializeLog" in output
