"""``~/verify`` (grasp_success_msgs/VerifyGrasp): a goal becomes a grasp event like a
trigger's, judged by the grasp service; its result is the event's one GraspVerdict, its
feedback the frames collected so far. The coroutine awaits the answer without holding an
executor thread."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from grasp_success_msgs.action import VerifyGrasp
from grasp_success_msgs.msg import GraspVerdict
from rclpy.action import ActionServer, GoalResponse
from rclpy.task import Future

from grasp_success_ros.core.grasp_service import Intake, Progress
from grasp_success_ros.core.params import GOAL_PARAMS


def goal_values(request) -> dict:
    """The goal's policy fields that are set (empty / 0 keeps the node's parameter), by
    parameter name."""
    values = {name: getattr(request, name) for name in GOAL_PARAMS}
    return {name: value for name, value in values.items() if value}


@dataclass
class Goal:
    handle: object
    answer: Future


class VerifyServer:
    """The action server and the goals waiting for their verdicts."""

    def __init__(self, node, group, accept: Callable[[dict], str | None],
                 submit: Callable[[object], Intake], lock) -> None:
        """``accept(values)``: why a goal is refused (None: accepted); ``submit(request)``
        takes its event in; ``lock``: the node's publish lock, held from intake to the
        goal's registration so that no answer can come before the goal is waiting."""
        self._node, self._accept, self._submit, self._lock = node, accept, submit, lock
        self._goals: dict[int, Goal] = {}
        self._server = ActionServer(node, VerifyGrasp, "~/verify", self._execute,
                                    goal_callback=self._on_goal, callback_group=group)

    def destroy(self) -> None:
        self._server.destroy()

    def _on_goal(self, request) -> GoalResponse:
        why = self._accept(goal_values(request))
        if why is not None:
            self._node.get_logger().warning(f"VerifyGrasp goal refused: {why}")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    async def _execute(self, goal_handle) -> VerifyGrasp.Result:
        with self._lock:
            intake = self._submit(goal_handle.request)
            goal = self._goals[intake.event.event_id] = Goal(goal_handle, Future())
        if intake.answer is not None:  # answered at once (inactive): never dropped
            self._node.publish_answer(intake.answer)
        verdict = await goal.answer
        goal_handle.succeed()
        return VerifyGrasp.Result(verdict=verdict)

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
