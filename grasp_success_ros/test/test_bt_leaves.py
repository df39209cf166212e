"""The VerifyGrasp action as behaviour trees use it, over real DDS: the examples' leaves
(BehaviorTree.CPP through behaviortreepy, py_trees) against the installed node, halts that
cancel, cancellation beside other goals, grasp ids and the goal's camera. One node for the
module: two cameras (left, right), Header triggers."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import rosnode
from rosnode import frame, send_verify_goal

pytestmark = pytest.mark.ros
bt = pytest.importorskip("behaviortreepy", reason="pip install -r requirements-dev.txt")
py_trees = pytest.importorskip("py_trees", reason="pip install -r requirements-dev.txt")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
import bt_cpp_leaf  # noqa: E402
import py_trees_leaf  # noqa: E402

NS = "/bt"
ACTION = f"{NS}/grasp_success_node/verify"
DEADLINE_S = 2.0  # the params file's deadline_s: a waiting goal would be answered by then
HALT_LIMIT_S = 0.2


@dataclass
class Hands:
    left: object  # StreamPlayer of camera left (also the leaves' rclpy node)
    right: object
    log: Path


def warm_up(player, tries: int = 6) -> None:
    """One Header event judged, so both DDS endpoints have matched (rosnode.warm_up's
    reason, for a Header trigger)."""
    for _ in range(tries):
        player.publish_event()
        time.sleep(0.02)
        for _ in range(3):
            player.publish_frame(frame(0, True))
            time.sleep(1 / 30)
        results = player.wait_for_results(1, timeout=5.0)
        player.clear()
        if results and results[0]["verdict"] is not None:
            return
    raise AssertionError(f"no verdict for any of {tries} warm-up events")


@pytest.fixture(scope="module")
def hands(ros, ros_install, trained_model, tmp_path_factory) -> Iterator[Hands]:
    from grasp_success_ros.ros.stream_player import StreamPlayer

    log = tmp_path_factory.mktemp("node") / "node.log"
    proc = rosnode.start(ros_install, trained_model, log, "-r", f"__ns:={NS}",
                         "-p", "cameras:=[left, right]", "-p", "trigger_type:=header")
    players = []
    try:
        for camera in ("left", "right"):
            players.append(StreamPlayer(f"{camera}_player", namespace=NS, camera=camera,
                                        trigger_type="header"))
            assert players[-1].wait_for_node(120.0, alive=lambda: proc.poll() is None), \
                log.read_text()
            warm_up(players[-1])
        yield Hands(*players, log)
    finally:
        for player in players:
            player.close()
        code = rosnode.stop(proc)
    assert code == 0, log.read_text()[-2000:]


@contextmanager
def camera(player, held: bool) -> Iterator[None]:
    """The camera streaming 30 Hz frames of a held (or dropped) object meanwhile."""
    stop = threading.Event()

    def run():
        while not stop.is_set():
            player.publish_frame(frame(3, held))
            time.sleep(1 / 30)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5.0)


def records_of(player, grasp_id: str, wait_s: float) -> list[dict]:
    """Every record on the player's camera for ``grasp_id``, after ``wait_s``."""
    time.sleep(wait_s)
    with player._cond:
        return [r for r in player.results if r["grasp_id"] == grasp_id]


def first_record_of(player, grasp_id: str, timeout: float = 5.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = records_of(player, grasp_id, 0.01)
        if found:
            return found[0]
    raise AssertionError(f"no record for grasp {grasp_id}")


def bt_cpp_tree(hands: Hands, grasp_id: str):
    leaf = bt_cpp_leaf.VerifyGraspLeaf(hands.left, ACTION)
    assert leaf.wait_for_server(10.0)
    factory = bt.BehaviorTreeFactory()
    leaf.register(factory)
    blackboard = bt.Blackboard.create()
    blackboard.set_string("grasp_id", grasp_id)
    return leaf, blackboard, factory.create_tree_from_file(str(bt_cpp_leaf.TREE_XML), blackboard)


def py_trees_tree(hands: Hands, grasp_id: str):
    leaf = py_trees_leaf.VerifyGrasp(action=ACTION, grasp_id=grasp_id)
    tree = py_trees.trees.BehaviourTree(
        py_trees.decorators.Timeout(name="Timeout", child=leaf, duration=5.0))
    tree.setup(node=hands.left, timeout=10.0)
    return leaf, tree


def assert_cancelled_alone(player, grasp_id: str) -> None:
    """The goal's event got one record, ``canceled``, and nothing after it (a verdict or a
    no_fresh_frame would have come by the deadline)."""
    first = first_record_of(player, grasp_id, timeout=2.0)
    assert first["error_code"] == "canceled" and first["verdict"] is None, first
    assert first["trigger"] == "action"
    assert records_of(player, grasp_id, DEADLINE_S + 0.5) == [first]


# --- BehaviorTree.CPP (behaviortreepy) ---------------------------------------------------


@pytest.mark.parametrize("held", [True, False])
def test_the_bt_cpp_leaf_succeeds_on_a_held_object_and_fails_on_a_dropped_one(hands, held):
    grasp_id = f"bt-cpp-{held}"
    leaf, blackboard, tree = bt_cpp_tree(hands, grasp_id)
    with camera(hands.left, held):
        status = bt_cpp_leaf.tick_until_done(tree, 10.0)
    assert status == (bt.NodeStatus.SUCCESS if held else bt.NodeStatus.FAILURE)
    assert blackboard.get_string("grasp_verdict") == ("SUCCESS" if held else "FAILURE")
    assert blackboard.get_string("grasp_goal_status") == "SUCCEEDED"
    assert blackboard.get_string("grasp_error_code") == ""
    assert leaf.last.verdict.grasp_id == grasp_id
    record = first_record_of(hands.left, grasp_id)
    assert record["event_id"] == leaf.last.verdict.event_id and record["verdict"] is held


def test_halting_the_bt_cpp_leaf_mid_goal_cancels_its_goal_within_200_ms(hands):
    _, _, tree = bt_cpp_tree(hands, "bt-cpp-halt")
    assert tree.tick_once() == bt.NodeStatus.RUNNING  # goal sent; no frames: the node waits
    time.sleep(0.3)
    assert tree.tick_once() == bt.NodeStatus.RUNNING
    started = time.monotonic()
    tree.halt_tree()
    took = time.monotonic() - started
    assert took < HALT_LIMIT_S, f"halt took {took * 1e3:.0f} ms"
    assert_cancelled_alone(hands.left, "bt-cpp-halt")


# --- py_trees ------------------------------------------------------------------------------


@pytest.mark.parametrize("held", [True, False])
def test_the_py_trees_behaviour_succeeds_on_a_held_object_and_fails_on_a_dropped_one(
        hands, held):
    from py_trees.common import Status

    grasp_id = f"py-trees-{held}"
    leaf, tree = py_trees_tree(hands, grasp_id)
    with camera(hands.left, held):
        status = py_trees_leaf.tick_until_done(tree, 10.0)
    assert status == (Status.SUCCESS if held else Status.FAILURE)
    outcome = leaf.blackboard.grasp_outcome
    assert outcome.verdict.grasp_id == grasp_id and outcome.grasp_held is held
    assert leaf.feedback_message.startswith("goal SUCCEEDED: ")
    assert first_record_of(hands.left, grasp_id)["event_id"] == outcome.verdict.event_id


def test_halting_the_py_trees_behaviour_mid_goal_cancels_its_goal_within_200_ms(hands):
    from py_trees.common import Status

    _, tree = py_trees_tree(hands, "py-trees-halt")
    tree.tick()
    time.sleep(0.3)
    tree.tick()
    assert tree.root.status == Status.RUNNING
    started = time.monotonic()
    tree.root.stop(Status.INVALID)  # as a higher-priority branch preempting it does
    took = time.monotonic() - started
    assert took < HALT_LIMIT_S, f"halt took {took * 1e3:.0f} ms"
    assert_cancelled_alone(hands.left, "py-trees-halt")


# --- the action itself -----------------------------------------------------------------------


def _done(future, timeout: float = 10.0):
    end = time.monotonic() + timeout
    while not future.done():
        assert time.monotonic() < end, "no answer from the action server"
        time.sleep(0.01)
    return future.result()


def test_a_cancelled_goal_ends_canceled_and_the_other_goal_in_flight_gets_its_verdict(hands):
    from action_msgs.msg import GoalStatus
    from grasp_success_msgs.action import VerifyGrasp
    from grasp_success_msgs.msg import GraspVerdict

    from grasp_success_ros.ros.rclpy_compat import ActionClient

    client = ActionClient(hands.left, VerifyGrasp, ACTION)
    try:
        assert client.wait_for_server(10.0)
        goals = [_done(client.send_goal_async(VerifyGrasp.Goal(grasp_id=grasp_id)))
                 for grasp_id in ("cancel-me", "keep-me")]
        assert all(goal.accepted for goal in goals)
        time.sleep(0.2)  # both wait for frames
        assert len(_done(goals[0].cancel_goal_async()).goals_canceling) == 1
        cancelled = _done(goals[0].get_result_async())
        with camera(hands.left, True):
            kept = _done(goals[1].get_result_async())
    finally:
        client.destroy()
    assert cancelled.status == GoalStatus.STATUS_CANCELED
    assert cancelled.result.verdict.error_code == GraspVerdict.ERROR_CANCELED
    assert cancelled.result.verdict.grasp_id == "cancel-me"
    assert kept.status == GoalStatus.STATUS_SUCCEEDED
    assert kept.result.verdict.status == GraspVerdict.SUCCESS
    assert kept.result.verdict.grasp_id == "keep-me"  # the goal's grasp_id, echoed
    assert [r["error_code"] for r in records_of(hands.left, "cancel-me", 0.5)] == ["canceled"]
    assert [r["verdict"] for r in records_of(hands.left, "keep-me", 0.0)] == [True]


def test_a_header_events_frame_id_is_its_grasp_id(hands):
    from std_msgs.msg import Header

    with camera(hands.left, True):
        hands.left.event_pub.publish(Header(stamp=hands.left.get_clock().now().to_msg(),
                                            frame_id="cup-3"))
        record = first_record_of(hands.left, "cup-3")
    assert record["trigger"] == "header:cup-3" and record["verdict"] is True


def test_a_goal_naming_the_second_camera_is_judged_on_it(hands):
    from grasp_success_msgs.msg import GraspVerdict

    with camera(hands.left, False), camera(hands.right, True):
        outcome = send_verify_goal(hands.left, ACTION, camera="right", grasp_id="right-1")
    verdict = outcome.verdict
    assert outcome.accepted and verdict.status == GraspVerdict.SUCCESS, verdict
    assert first_record_of(hands.right, "right-1")["event_id"] == verdict.event_id
    assert records_of(hands.left, "right-1", 0.5) == []  # not on the first camera's topic


def test_a_goal_naming_an_unknown_camera_is_refused_with_the_cameras_logged(hands):
    outcome = send_verify_goal(hands.left, ACTION, camera="middle")
    assert outcome.accepted is False
    end = time.monotonic() + 5.0
    line = "unknown camera 'middle'; this node's cameras: left, right"
    while line not in hands.log.read_text() and time.monotonic() < end:
        time.sleep(0.05)
    assert re.search(r"VerifyGrasp goal refused: " + re.escape(line), hands.log.read_text())


def change_state(player, label: str) -> bool:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    client = player.create_client(ChangeState, f"{NS}/grasp_success_node/change_state")
    try:
        assert client.wait_for_service(10.0)
        request = ChangeState.Request(transition=Transition(label=label))
        response = client.call(request, timeout_sec=30.0)
        return response is not None and response.success
    finally:
        player.destroy_client(client)


def test_a_goal_waiting_when_the_node_is_deactivated_ends_aborted(hands):
    """Not about the grasp: the node stopped serving (onFailure for a BT.ROS2 leaf)."""
    from action_msgs.msg import GoalStatus
    from grasp_success_msgs.action import VerifyGrasp

    from grasp_success_ros.ros.rclpy_compat import ActionClient

    client = ActionClient(hands.left, VerifyGrasp, ACTION)
    try:
        assert client.wait_for_server(10.0)
        goal = _done(client.send_goal_async(VerifyGrasp.Goal(grasp_id="deactivated-1")))
        assert goal.accepted
        time.sleep(0.2)  # waiting for frames
        assert change_state(hands.left, "deactivate")
        result = _done(goal.get_result_async())
    finally:
        client.destroy()
        assert change_state(hands.left, "activate")
    assert result.status == GoalStatus.STATUS_ABORTED
    assert result.result.verdict.error_code == "deactivated"
    assert result.result.verdict.grasp_id == "deactivated-1"


def test_the_examples_are_installed_with_the_package(ros_install):
    share = ros_install / "grasp_success_ros" / "share" / "grasp_success_ros" / "examples"
    assert {p.name for p in share.iterdir()} >= {
        "verify_grasp_call.py", "bt_cpp_leaf.py", "py_trees_leaf.py", "verify_grasp_tree.xml"}
