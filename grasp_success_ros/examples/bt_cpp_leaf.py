"""A BehaviorTree.CPP v4 ``VerifyGrasp`` action leaf written in Python (behaviortreepy).

The leaf sends a VerifyGrasp goal when it starts, returns RUNNING while the node judges,
SUCCESS when the object is held (goal SUCCEEDED with a SUCCESS verdict), FAILURE otherwise;
halted (a Timeout, a reactive sequence's condition, ``Tree.halt_tree``), it cancels its goal
and waits for the node to accept, at most ``cancel_wait_s`` (BT.ROS2's RosActionNode does the
same). behaviortreepy 0.1.4 registers Python nodes without ports, so the leaf reads the
blackboard entries ``grasp_id`` and ``grasp_camera`` (both optional) and writes
``grasp_verdict`` (SUCCESS, FAILURE or UNKNOWN), ``grasp_error_code`` and
``grasp_goal_status`` (SUCCEEDED, ABORTED, CANCELED, REJECTED); a SubTree remaps them per leaf.

Run it against a running node (after ``source install/setup.bash``)::

    python3 bt_cpp_leaf.py --action /grasp_success_node/verify --grasp-id cup-3

Tick the tree from Python (``tick_once`` and ``time.sleep``), not with
``tick_while_running``: that sleeps in C++ holding the GIL, so rclpy's spinning thread,
which completes the goal's futures, would stall.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import behaviortreepy as bt
import rclpy
from rclpy.executors import SingleThreadedExecutor
from verify_grasp_call import (
    CANCEL_WAIT_S,
    DEFAULT_ACTION,
    STATUS_NAMES,
    VERDICT_NAMES,
    Outcome,
    VerifyGraspCall,
    verify_client,
)

TREE_XML = Path(__file__).with_name("verify_grasp_tree.xml")
TICK_S = 0.01


def _read(blackboard, key: str) -> str:
    return blackboard.get_string(key) if key in blackboard.get_keys() else ""


def write_outcome(blackboard, outcome: Outcome) -> None:
    """The leaf's outputs on the blackboard."""
    verdict = outcome.verdict
    blackboard.set_string("grasp_verdict", VERDICT_NAMES[verdict.status] if verdict else "")
    blackboard.set_string("grasp_error_code", verdict.error_code if verdict else "rejected")
    blackboard.set_string("grasp_goal_status", STATUS_NAMES.get(outcome.status, "UNKNOWN"))


class VerifyGraspLeaf:
    """The ``VerifyGrasp`` node type: one goal per running instance (by the tree node's
    uid), so a tree may hold several."""

    def __init__(self, node, action: str = DEFAULT_ACTION,
                 cancel_wait_s: float = CANCEL_WAIT_S) -> None:
        self._node, self._client = node, verify_client(node, action)
        self._cancel_wait_s = cancel_wait_s
        self._calls: dict[int, VerifyGraspCall] = {}
        self.last: Outcome | None = None  # the latest goal's outcome (for logs)

    def wait_for_server(self, timeout_s: float) -> bool:
        return self._client.wait_for_server(timeout_s)

    def register(self, factory: bt.BehaviorTreeFactory, name: str = "VerifyGrasp") -> None:
        factory.register_simple_stateful_action(name, self.on_start, self.on_running,
                                                self.on_halted)

    def on_start(self, tree_node) -> bt.NodeStatus:
        if not self._client.server_is_ready():
            self._node.get_logger().error("VerifyGrasp: no action server")
            return bt.NodeStatus.FAILURE
        blackboard = tree_node.config().blackboard
        self._calls[tree_node.uid()] = VerifyGraspCall(
            self._client, _read(blackboard, "grasp_id"), _read(blackboard, "grasp_camera"))
        return bt.NodeStatus.RUNNING

    def on_running(self, tree_node) -> bt.NodeStatus:
        outcome = self._calls[tree_node.uid()].poll()
        if outcome is None:
            return bt.NodeStatus.RUNNING
        del self._calls[tree_node.uid()]
        self.last = outcome
        write_outcome(tree_node.config().blackboard, outcome)
        return bt.NodeStatus.SUCCESS if outcome.grasp_held else bt.NodeStatus.FAILURE

    def on_halted(self, tree_node) -> None:
        call = self._calls.pop(tree_node.uid(), None)
        if call is not None and not call.cancel(self._cancel_wait_s):
            self._node.get_logger().warning("VerifyGrasp: the node did not accept the cancel")


def tick_until_done(tree, timeout_s: float) -> bt.NodeStatus:
    """Tick every TICK_S until the tree is done (or halt it at ``timeout_s``)."""
    end = time.monotonic() + timeout_s
    status = tree.tick_once()
    while status == bt.NodeStatus.RUNNING and time.monotonic() < end:
        time.sleep(TICK_S)  # releases the GIL for rclpy's spinning thread
        status = tree.tick_once()
    if status == bt.NodeStatus.RUNNING:
        tree.halt_tree()
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--action", default=DEFAULT_ACTION)
    parser.add_argument("--grasp-id", default="")
    parser.add_argument("--camera", default="")
    args = parser.parse_args(argv)
    rclpy.init()
    node = rclpy.create_node("verify_grasp_tree")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        leaf = VerifyGraspLeaf(node, args.action)
        if not leaf.wait_for_server(10.0):
            print(f"no action server {args.action}", file=sys.stderr)
            return 2
        factory = bt.BehaviorTreeFactory()
        leaf.register(factory)
        blackboard = bt.Blackboard.create()
        blackboard.set_string("grasp_id", args.grasp_id)
        blackboard.set_string("grasp_camera", args.camera)
        tree = factory.create_tree_from_file(str(TREE_XML), blackboard)
        status = tick_until_done(tree, 10.0)
        print(f"tree {status.name}: {leaf.last.describe() if leaf.last else 'no outcome'}")
        return 0 if status == bt.NodeStatus.SUCCESS else 1
    finally:
        executor.shutdown()
        spinner.join(5.0)  # Jazzy's shutdown does not wait for the spinning thread
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
