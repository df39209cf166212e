"""The watch over the hold, the ROS side (core/hold.py decides): each camera's release
subscription and ``grasp_success/hold`` publisher, and the ``~/watch_hold`` action
(grasp_success_msgs/WatchHold).

Why a second action rather than a "watch until release" mode of ``~/verify``: a behaviour
tree verifies a grasp and then carries the object; the watch belongs beside the carry (a
Parallel or ReactiveSequence node whose WatchHold leaf fails the carry on LOST), and a
VerifyGrasp leaf that stayed RUNNING until release would hold the tree at the grasp.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence

from grasp_success_msgs.action import WatchHold
from grasp_success_msgs.msg import GraspHold
from rclpy.action import GoalResponse
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.task import Future
from std_msgs.msg import Header

from grasp_success_ros.core.hold import HoldReport
from grasp_success_ros.core.stamps import ns_to_s
from grasp_success_ros.core.triggers import trigger_info
from grasp_success_ros.ros.camera import ANSWER_DEPTH, TRIGGER_QOS
from grasp_success_ros.ros.cancellable import CancellableServer
from grasp_success_ros.ros.messages import trigger_class
from grasp_success_ros.ros.verdicts import time_msg, time_msg_ns
from grasp_success_ros.ros.verify import camera_index, unknown_camera

STATUS = {"lost": GraspHold.LOST, "released": GraspHold.RELEASED,
          "timeout": GraspHold.TIMEOUT, "ended": GraspHold.ENDED}


def hold_message(report: HoldReport, frame_id: str) -> GraspHold:
    """The report as published: stamped from its evidence (module core/hold.py)."""
    event = report.event
    started = time_msg_ns(event.stamp_ns) if event.stamp_ns is not None \
        else time_msg(event.stamp)
    stamps, sources, ps = zip(*report.history, strict=True) if report.history else ((), (), ())
    return GraspHold(
        header=Header(stamp=time_msg(report.stamp), frame_id=frame_id),
        event_id=event.event_id, grasp_id=event.grasp_id, started=started,
        status=STATUS[report.status], sources=list(report.sources), reason=report.reason,
        history_stamps=[time_msg(s) for s in stamps], history_sources=list(sources),
        history_p_success=[float(p) for p in ps])


def no_hold(reason: str) -> WatchHold.Result:
    return WatchHold.Result(hold=GraspHold(status=GraspHold.ENDED, reason=reason))


class HoldWatch:
    """Release inputs, hold outputs and the WatchHold goals waiting for their holds."""

    def __init__(self, node, cameras: Sequence, group) -> None:
        """``node``: the grasp node (``service``, ``config``, ``camera_names``, clock);
        ``cameras``: its CameraChannels (output namespaces, release topics)."""
        self._node, self._cameras = node, list(cameras)
        self._pubs = [node.create_publisher(GraspHold, c.topics.output("grasp_success/hold"),
                                            ANSWER_DEPTH) for c in self._cameras]
        self._goals: dict[int, list[tuple[object, Future]]] = {}
        self._lock = threading.Lock()  # goals registered vs their hold's report
        self._server = CancellableServer(node, WatchHold, "~/watch_hold", self._execute,
                                         self._on_goal, self._answer_cancelled, group)

    def destroy(self) -> None:
        self._server.destroy()
        for pub in self._pubs:
            self._node.destroy_publisher(pub)

    def create_inputs(self, group) -> list:
        """Each camera's release subscription (the trigger_type's message; reliable, keep
        all: a lost release would leave the hold to its timeout)."""
        msg_type = trigger_class(self._node.config.trigger_type)
        return [self._node.create_subscription(
            msg_type, camera.topics.release_topic, lambda m, i=i: self._on_release(i, m),
            copy.copy(TRIGGER_QOS), callback_group=group,
            qos_overriding_options=QoSOverridingOptions.with_default_policies())
            for i, camera in enumerate(self._cameras)]

    def _on_release(self, camera: int, msg) -> None:
        now_ns = self._node.get_clock().now().nanoseconds
        info = trigger_info(self._node.config.trigger_type, msg, ns_to_s(now_ns))
        if info.rejection is not None:  # Bool false: not a release
            return
        report = self._node.service.release(camera, info.stamp)
        if report is not None:
            self.publish(report)

    def publish(self, report: HoldReport) -> None:
        """The hold's one GraspHold, and the result of every goal watching it."""
        message = hold_message(report, self._node.service.cameras[report.camera].frame_id)
        self._pubs[report.camera].publish(message)
        line = (f"{self._cameras[report.camera].label}hold of event {report.event.event_id}: "
                f"{report.status} ({report.reason or 'ok'})")
        if report.status == "lost":  # rclpy: one severity per call site
            self._node.get_logger().warning(line)
        else:
            self._node.get_logger().info(line)
        with self._lock:
            waiting = self._goals.pop(report.camera, [])
        for _, future in waiting:
            if not future.done():
                future.set_result(message)
        if waiting:
            self._node.executor.wake()

    # --- the action ----------------------------------------------------------------------

    def _refusal(self, request) -> str | None:
        names = self._node.camera_names
        camera = camera_index(names, request.camera)
        if camera is None:
            return unknown_camera(names, request.camera)
        hold = self._node.service.cameras[camera].hold
        if not self._node.service.accepting or hold is None:
            return "no hold to watch: no SUCCESS verdict is open on this camera"
        if request.grasp_id and hold.event.grasp_id != request.grasp_id:
            return f"the open hold is grasp {hold.event.grasp_id!r}, not {request.grasp_id!r}"
        return None

    def _on_goal(self, request) -> GoalResponse:
        return GoalResponse.ACCEPT  # refusals end ABORTED with the reason in the result

    def _answer_cancelled(self) -> None:
        with self._lock:
            cancelled = [future for waiting in self._goals.values()
                         for handle, future in waiting if handle.is_cancel_requested]
        for future in cancelled:
            if not future.done():
                future.set_result(None)

    async def _execute(self, goal_handle) -> WatchHold.Result:
        future = Future()
        with self._lock:  # the hold checked and the goal registered before its report
            why = self._refusal(goal_handle.request)
            if why is None:
                camera = camera_index(self._node.camera_names, goal_handle.request.camera)
                self._goals.setdefault(camera, []).append((goal_handle, future))
        if why is not None:
            goal_handle.abort()
            return no_hold(why)
        if goal_handle.is_cancel_requested:
            self._server.recheck()
        message = await future
        if message is None:  # cancelled: a halted leaf
            goal_handle.canceled()
            return no_hold("cancelled")
        goal_handle.succeed()
        return WatchHold.Result(hold=message)
