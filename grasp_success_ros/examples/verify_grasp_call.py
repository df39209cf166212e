"""One VerifyGrasp goal in flight, for a behaviour-tree leaf: sent at once, polled without
blocking (a leaf's tick must return at once), cancelled on halt.

The leaves in this folder (bt_cpp_leaf.py, py_trees_leaf.py) share it. The rclpy node given
to :class:`VerifyGraspCall` must be spun by an executor in another thread (the tree ticks in
its own): the goal's futures complete there.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from action_msgs.msg import GoalStatus
from grasp_success_msgs.action import VerifyGrasp
from grasp_success_msgs.msg import GraspVerdict
from rclpy.node import Node

from grasp_success_ros.ros.rclpy_compat import ActionClient

DEFAULT_ACTION = "/grasp_success_node/verify"
# BT.ROS2's RosActionNode waits this long on halt for the server to accept the cancel.
CANCEL_WAIT_S = 1.0
REJECTED = -1  # not a GoalStatus: the node refused the goal (inactive, unknown camera, ...)
STATUS_NAMES = {GoalStatus.STATUS_SUCCEEDED: "SUCCEEDED", GoalStatus.STATUS_ABORTED: "ABORTED",
                GoalStatus.STATUS_CANCELED: "CANCELED", REJECTED: "REJECTED"}
VERDICT_NAMES = {GraspVerdict.SUCCESS: "SUCCESS", GraspVerdict.FAILURE: "FAILURE",
                 GraspVerdict.UNKNOWN: "UNKNOWN"}


@dataclass(frozen=True)
class Outcome:
    """How a goal ended: its status (a GoalStatus, or REJECTED) and its verdict (None if
    rejected)."""

    status: int
    verdict: GraspVerdict | None

    @property
    def grasp_held(self) -> bool:
        """What a leaf succeeds on: the node judged the grasp and the object is in the hand.
        Everything else (a FAILURE verdict, no verdict, an aborted or refused goal) is a
        leaf failure; the verdict says which."""
        return (self.status == GoalStatus.STATUS_SUCCEEDED and self.verdict is not None
                and self.verdict.status == GraspVerdict.SUCCESS)

    def describe(self) -> str:
        """One line for a log: status, verdict, error code, grasp id, event id."""
        status = STATUS_NAMES.get(self.status, str(self.status))
        if self.verdict is None:
            return f"goal {status}"
        v = self.verdict
        code = f" ({v.error_code})" if v.error_code else ""
        return (f"goal {status}: {VERDICT_NAMES.get(v.status, v.status)}{code}, grasp "
                f"{v.grasp_id or '-'}, event {v.event_id}")


def verify_client(node: Node, action: str = DEFAULT_ACTION) -> ActionClient:
    return ActionClient(node, VerifyGrasp, action)


def _wait(future, timeout_s: float) -> bool:
    """Block the caller (not the executor) until ``future`` is done or the time is up."""
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    return done.wait(timeout_s)


class VerifyGraspCall:
    """One goal: ``poll()`` is None while it runs, then its :class:`Outcome`."""

    def __init__(self, client: ActionClient, grasp_id: str = "", camera: str = "",
                 **policy) -> None:
        goal = VerifyGrasp.Goal(grasp_id=grasp_id, camera=camera, **policy)
        self._sent = client.send_goal_async(goal)
        self._handle = None
        self._result = None
        self.outcome: Outcome | None = None

    def poll(self) -> Outcome | None:
        if self.outcome is not None:
            return self.outcome
        if self._result is None:
            if not self._sent.done():
                return None
            self._handle = self._sent.result()
            if not self._handle.accepted:
                self.outcome = Outcome(REJECTED, None)
                return self.outcome
            self._result = self._handle.get_result_async()
        if self._result.done():
            response = self._result.result()
            self.outcome = Outcome(response.status, response.result.verdict)
        return self.outcome

    def cancel(self, wait_s: float = CANCEL_WAIT_S) -> bool:
        """Ask the node to cancel the goal (a halted leaf) and wait, at most ``wait_s``, for
        it to accept, as BT.ROS2's halt does; the node then ends the goal CANCELED with a
        ``canceled`` record. True when the goal is over or the cancel was accepted."""
        if self.poll() is not None:
            return True
        if self._handle is None and not _wait(self._sent, wait_s):
            return False  # not even accepted yet: the node never answered the goal request
        if self.poll() is not None:
            return True
        cancelling = self._handle.cancel_goal_async()
        if not _wait(cancelling, wait_s):
            return False
        return bool(cancelling.result().goals_canceling) or self.poll() is not None
