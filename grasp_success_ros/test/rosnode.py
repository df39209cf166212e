"""Starting the colcon-installed node as its own process, as ``ros2 run`` would, and talking
to it from a player (test/test_node.py, test/test_lifecycle.py)."""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from std_msgs.msg import Empty

from grasp_success_ros.data.synth import render_scene

PKG = "grasp_success_ros"


def node_command(install: Path, model: Path | str, *ros_args: str) -> str:
    params = install / PKG / "share" / PKG / "config" / "grasp_success.yaml"
    exe = install / PKG / "lib" / PKG / "grasp_success_node"
    args = ["--ros-args", "--params-file", str(params), "-p", f"model_path:={model}", *ros_args]
    return f"source {shlex.quote(str(install / 'setup.bash'))} && exec {exe} " + shlex.join(args)


def start(install: Path, model: Path | str, log: Path, *ros_args: str) -> subprocess.Popen:
    return subprocess.Popen(["bash", "-c", node_command(install, model, *ros_args)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> int:
    from grasp_success_ros.ros.processes import stop_node

    return stop_node(proc)


@contextmanager
def node_and_player(install: Path, model: Path | str, log: Path, namespace: str,
                    *ros_args: str, camera: str = "") -> Iterator[tuple]:
    """The installed node in ``namespace`` and a warmed-up player beside it (on one
    ``camera`` of several where given); on exit the player closes and the node must stop
    cleanly."""
    from grasp_success_ros.ros.stream_player import StreamPlayer

    proc = start(install, model, log, "-r", f"__ns:={namespace}", *ros_args)
    try:
        player = StreamPlayer(namespace=namespace, camera=camera)
    except BaseException:
        stop(proc)
        raise
    try:
        assert player.wait_for_node(120.0, alive=lambda: proc.poll() is None), log.read_text()
        warm_up(player)
        yield player, proc
    finally:  # a failing set-up or test must not leave the node running
        player.close()
        code = stop(proc)
    assert code == 0, log.read_text()[-2000:]


def warm_up(player, tries: int = 6):
    """One full event round trip, so both DDS endpoints have matched before a test counts
    frames (best-effort readers drop what arrives before they match the writer). Discovery
    is not symmetric: the player can see the node's readers before the node's readers have
    matched the player's writers, so the first events may get no answer at all (seen on a
    loaded 2-core CI machine); each try waits for one answer and sends again if none came."""
    for _ in range(tries):
        event_then_frames(player, [frame(0, True)] * 3)
        results = player.wait_for_results(1, timeout=5.0)
        player.clear()
        if results and results[0]["verdict"] is not None:
            return
    raise AssertionError(f"no verdict for any of {tries} warm-up events")


def frame(seed: int, success: bool, size=(240, 320)):
    return render_scene(np.random.default_rng(seed), success, *size)


def event_then_frames(player, images, gap=1 / 30):
    player.event_pub.publish(Empty())
    time.sleep(0.02)
    stamps = []
    for img in images:
        stamps.append(player.publish_frame(img) if isinstance(img, np.ndarray)
                      else player.publish_image(img))
        time.sleep(gap)
    return stamps


def set_parameter(player, node_name, name, value):
    """Set one parameter through the node's set_parameters service, as ``ros2 param set``."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    client = player.create_client(SetParameters, f"{node_name}/set_parameters")
    assert client.wait_for_service(10.0)
    param = Parameter(name, value=value).to_parameter_msg()
    response = client.call(SetParameters.Request(parameters=[param]), timeout_sec=10.0)
    return response.results[0]


def get_parameter(player, node_name, name):
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    client = player.create_client(GetParameters, f"{node_name}/get_parameters")
    assert client.wait_for_service(10.0)
    response = client.call(GetParameters.Request(names=[name]), timeout_sec=10.0)
    return parameter_value_to_python(response.values[0])


@dataclass
class GoalOutcome:
    """What an action client saw of one VerifyGrasp goal."""

    accepted: bool
    verdict: object = None  # the result's GraspVerdict
    feedback: list = field(default_factory=list)  # (frames_collected, frames_needed)


def send_verify_goal(player, action: str, timeout: float = 15.0, during=None,
                     **goal_fields) -> GoalOutcome:
    """Send one VerifyGrasp goal as a grasp manager's action client would; ``during()`` runs
    once the goal is accepted (e.g. publishes frames)."""
    from grasp_success_msgs.action import VerifyGrasp

    from grasp_success_ros.ros.rclpy_compat import ActionClient

    client = ActionClient(player, VerifyGrasp, action)
    try:
        assert client.wait_for_server(10.0), f"no action server {action}"
        outcome = GoalOutcome(accepted=False)
        sent = client.send_goal_async(
            VerifyGrasp.Goal(**goal_fields), feedback_callback=lambda m: outcome.feedback.append(
                (m.feedback.frames_collected, m.feedback.frames_needed)))
        handle = wait_future(sent, timeout)
        outcome.accepted = handle.accepted
        if not handle.accepted:
            return outcome
        if during is not None:
            during()
        outcome.verdict = wait_future(handle.get_result_async(), timeout).result.verdict
        return outcome
    finally:
        client.destroy()


def wait_future(future, timeout: float):
    end = time.monotonic() + timeout
    while not future.done():
        assert time.monotonic() < end, "no answer from the action server"
        time.sleep(0.01)
    return future.result()
