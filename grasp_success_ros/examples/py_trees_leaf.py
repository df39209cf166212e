"""A py_trees ``VerifyGrasp`` behaviour: the same leaf as bt_cpp_leaf.py, for py_trees.

``setup(node=...)`` (py_trees_ros's convention: ``BehaviourTree.setup(node=node)`` hands the
node to every behaviour) creates the action client and waits for the server. ``initialise``
sends the goal; ``update`` is RUNNING while the node judges, SUCCESS when the object is held
(goal SUCCEEDED with a SUCCESS verdict), FAILURE otherwise; stopped while running (a
higher-priority branch took over, a Timeout, ``stop(Status.INVALID)``), ``terminate``
cancels the goal and waits for the node to accept, at most ``cancel_wait_s``. The outcome
goes to the blackboard key ``grasp_outcome`` (an ``Outcome``: goal status and verdict).

Run it against a running node (after ``source install/setup.bash``)::

    python3 py_trees_leaf.py --action /grasp_success_node/verify --grasp-id cup-3
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import py_trees
import rclpy
from py_trees.common import Access, Status
from rclpy.executors import SingleThreadedExecutor
from verify_grasp_call import CANCEL_WAIT_S, DEFAULT_ACTION, VerifyGraspCall, verify_client

TICK_S = 0.01


class VerifyGrasp(py_trees.behaviour.Behaviour):
    """Verify the grasp ``grasp_id`` on ``camera`` (both optional) with the node's
    ``~/verify`` action."""

    def __init__(self, name: str = "VerifyGrasp", action: str = DEFAULT_ACTION,
                 grasp_id: str = "", camera: str = "",
                 cancel_wait_s: float = CANCEL_WAIT_S) -> None:
        super().__init__(name)
        self.action, self.grasp_id, self.camera = action, grasp_id, camera
        self.cancel_wait_s = cancel_wait_s
        self._client = None
        self._call: VerifyGraspCall | None = None
        self.blackboard = self.attach_blackboard_client(name=name)
        self.blackboard.register_key("grasp_outcome", access=Access.WRITE)

    def setup(self, **kwargs) -> None:
        node = kwargs["node"]
        self._client = verify_client(node, self.action)
        if not self._client.wait_for_server(kwargs.get("timeout") or 10.0):
            raise RuntimeError(f"{self.name}: no action server {self.action}")

    def initialise(self) -> None:
        self._call = VerifyGraspCall(self._client, self.grasp_id, self.camera)
        self.feedback_message = "goal sent"

    def update(self) -> Status:
        outcome = self._call.poll()
        if outcome is None:
            return Status.RUNNING
        self.blackboard.grasp_outcome = outcome
        self.feedback_message = outcome.describe()
        return Status.SUCCESS if outcome.grasp_held else Status.FAILURE

    def terminate(self, new_status: Status) -> None:
        """Stopped while its goal runs (INVALID): cancel it."""
        call, self._call = self._call, None
        if new_status == Status.INVALID and call is not None and call.poll() is None:
            if not call.cancel(self.cancel_wait_s):
                self.logger.warning("the node did not accept the cancel")


def tick_until_done(tree: py_trees.trees.BehaviourTree, timeout_s: float) -> Status:
    """Tick every TICK_S until the root is done (or stop it at ``timeout_s``)."""
    end = time.monotonic() + timeout_s
    tree.tick()
    while tree.root.status == Status.RUNNING and time.monotonic() < end:
        time.sleep(TICK_S)
        tree.tick()
    if tree.root.status == Status.RUNNING:
        tree.root.stop(Status.INVALID)
    return tree.root.status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--action", default=DEFAULT_ACTION)
    parser.add_argument("--grasp-id", default="")
    parser.add_argument("--camera", default="")
    args = parser.parse_args(argv)
    rclpy.init()
    node = rclpy.create_node("verify_grasp_py_trees")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        leaf = VerifyGrasp(action=args.action, grasp_id=args.grasp_id, camera=args.camera)
        tree = py_trees.trees.BehaviourTree(
            py_trees.decorators.Timeout(name="Timeout", child=leaf, duration=5.0))
        tree.setup(node=node, timeout=10.0)
        status = tick_until_done(tree, 10.0)
        print(f"tree {status.name}: {leaf.feedback_message}")
        return 0 if status == Status.SUCCESS else 1
    finally:
        executor.shutdown()
        spinner.join(5.0)  # Jazzy's shutdown does not wait for the spinning thread
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
