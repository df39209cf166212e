"""``~/verify`` (grasp_success_msgs/VerifyGrasp): a goal becomes a grasp event like a
trigger's, judged by the grasp service on the camera it names; its result is the event's one
GraspVerdict, its feedback the frames collected so far. The coroutine awaits the answer
without holding an executor thread.

A goal may be cancelled (a behaviour tree halting its leaf): the event is withdrawn from the
service and answered ``canceled`` at once, which resolves the answer the goal awaits, and
the goal ends CANCELED (ros/cancellable.py: when rclpy lets it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from grasp_success_msgs.action import VerifyGrasp
from grasp_success_msgs.msg import GraspVerdict
from rclpy.action import GoalResponse
from rclpy.task import Future

from grasp_success_ros.core.clocks import clock_unset
from grasp_success_ros.core.errors import GraspSuccessError
from grasp_success_ros.core.grasp_service import Intake, Progress
from grasp_success_ros.core.params import GOAL_PARAMS
from grasp_success_ros.core.stamps import ns_to_s, stamp_ns
from grasp_success_ros.core.triggers import TriggerInfo
from grasp_success_ros.ros.cancellable import CancellableServer

# Failure records that say the node could not serve the goal (it was deactivated, its model
# failed), not something about the grasp: the goal ends ABORTED (README, "Result status").
ABORTING_CODES = frozenset({GraspVerdict.ERROR_DEACTIVATED, GraspVerdict.ERROR_INFERENCE_ERROR})
LOG_THROTTLE_S = 5.0


def goal_values(request) -> dict:
    """The goal's policy fields that are set (empty / 0 keeps the node's parameter), by
    parameter name."""
    values = {name: getattr(request, name) for name in GOAL_PARAMS}
    return {name: value for name, value in values.items() if value}


def camera_index(names: Sequence[str], name: str) -> int | None:
    """The camera a goal names (empty: the first), None when the node has no such camera."""
    if not name:
        return 0
    return names.index(name) if name in names else None


def unknown_camera(names: Sequence[str], name: str) -> str:
    known = ", ".join(n for n in names if n)
    return (f"unknown camera {name!r}; this node's cameras: {known}" if known else
            f"unknown camera {name!r}; this node has one camera (leave camera empty)")


def end_goal(goal_handle, verdict: GraspVerdict) -> None:
    """The goal's terminal status by its verdict: CANCELED for ``canceled``, ABORTED for
    :data:`ABORTING_CODES`, else SUCCEEDED (a verdict, or no verdict for the grasp's own
    reasons: ``uncertain``, ``no_fresh_frame``, ...)."""
    if verdict.error_code == GraspVerdict.ERROR_CANCELED:
        goal_handle.canceled()
    elif verdict.error_code in ABORTING_CODES:
        goal_handle.abort()
    else:
        goal_handle.succeed()


@dataclass
class Goal:
    handle: object
    answer: Future


class VerifyServer:
    """The action server and the goals waiting for their verdicts."""

    def __init__(self, node, group, lock, wake: Callable[[], None]) -> None:
        """``node``: the grasp node (its ``service``, ``config``, camera ``camera_names``,
        clock and ``publish_answer``); ``lock``: its publish lock, held from intake to the
        goal's registration so that no answer can come before the goal is waiting;
        ``wake``: asks the worker for a pass."""
        self._node, self._lock, self._wake = node, lock, wake
        self._goals: dict[int, Goal] = {}
        self._server = CancellableServer(node, VerifyGrasp, "~/verify", self._execute,
                                         self._on_goal, self._answer_cancelled, group)

    def destroy(self) -> None:
        self._server.destroy()

    # --- goals in ------------------------------------------------------------------------

    def refusal(self, request) -> str | None:
        """Why a goal is refused: the node inactive, an unknown camera, overrides the
        node's rules forbid; None: accepted."""
        service, names = self._node.service, self._node.camera_names
        if service.serving is None or not service.accepting:
            return "the node is not active"
        if camera_index(names, request.camera) is None:
            return unknown_camera(names, request.camera)
        try:
            self._node.config.goal_overrides(goal_values(request))
        except GraspSuccessError as exc:
            return str(exc)
        return None

    def _on_goal(self, request) -> GoalResponse:
        why = self.refusal(request)
        if why is not None:
            self._node.get_logger().warning(f"VerifyGrasp goal refused: {why}")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _submit(self, request) -> Intake:
        """The goal's event: its own stamp, or now; on the camera it names."""
        node = self._node
        now_ns = node.get_clock().now().nanoseconds
        own = stamp_ns(request.stamp)
        info = TriggerInfo(ns_to_s(own or now_ns), "action", stamp_ns=own or None,
                           grasp_id=request.grasp_id)
        clock_set = not clock_unset(node.get_clock().ros_time_is_active, ns_to_s(now_ns))
        camera = camera_index(node.camera_names, request.camera) or 0
        intake = node.service.event(camera, info, now_ns, clock_set, goal=True,
                                    overrides=node.config.goal_overrides(goal_values(request)))
        if intake.note is not None:
            node.get_logger().warning(intake.note, throttle_duration_sec=LOG_THROTTLE_S)
        if intake.answer is None:
            self._wake()
        return intake

    async def _execute(self, goal_handle) -> VerifyGrasp.Result:
        with self._lock:
            intake = self._submit(goal_handle.request)
            goal = self._goals[intake.event.event_id] = Goal(goal_handle, Future())
        if intake.answer is not None:  # answered at once (inactive): never dropped
            self._node.publish_answer(intake.answer)
        elif goal_handle.is_cancel_requested:  # cancelled before it ran
            self._cancel(intake.event.event_id)
        verdict = await goal.answer
        end_goal(goal_handle, verdict)
        return VerifyGrasp.Result(verdict=verdict)

    # --- cancellation --------------------------------------------------------------------

    def _answer_cancelled(self) -> None:
        with self._lock:
            cancelled = [event_id for event_id, goal in self._goals.items()
                         if goal.handle.is_cancel_requested]
        for event_id in cancelled:
            self._cancel(event_id)

    def _cancel(self, event_id: int) -> None:
        """The event's ``canceled`` record, published (which ends its goal), unless it has
        had its answer already (then the goal ends with that one)."""
        answer = self._node.service.cancel(event_id)
        if answer is not None:
            self._node.publish_answer(answer)

    # --- answers out ---------------------------------------------------------------------

    def resolve(self, event_id: int, verdict: GraspVerdict) -> bool:
        """Hand an event's verdict to the goal that asked for it (True if one did)."""
        goal = self._goals.pop(event_id, None)
        if goal is not None:
            goal.answer.set_result(verdict)
        return goal is not None

    def feedback(self, progress: Progress) -> None:
        goal = self._goals.get(progress.event_id)
        if goal is not None:
            goal.handle.publish_feedback(VerifyGrasp.Feedback(
                frames_collected=progress.collected, frames_needed=progress.needed))
