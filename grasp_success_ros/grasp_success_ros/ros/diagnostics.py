"""The node's ``/diagnostics`` status: what the grasp service and its clocks say, as one
``diagnostic_msgs/DiagnosticStatus`` (OK ready; WARN inactive, no fresh frames or a clock
beyond tolerance; ERROR far beyond it)."""

from __future__ import annotations

from collections.abc import Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType

from grasp_success_ros.core.grasp_service import GraspService
from grasp_success_ros.core.params import NodeConfig


def service_values(service: GraspService, state: str, age: float, load_error: str) -> dict:
    """The key/values of the status: the model, the cameras, the answers and stage times."""
    serving = service.serving
    policy = serving.policy if serving else None
    rates = [round(camera.buffer.rate_hz(), 2) for camera in service.cameras]
    return {
        "state": state, "model_loaded": serving is not None,
        "model": serving.scorer.source if serving else "",
        "device": serving.scorer.device if serving else "",
        "last_load_error": load_error,
        "threshold": policy.threshold if policy else "",
        "threshold_failure": "" if policy is None or policy.threshold_failure is None
        else policy.threshold_failure,
        "camera_rate_hz": rates[0],
        "newest_frame_age_s": round(age, 3),
        "pending_events": service.pending_count(),
        **service.stats.as_dict(),
        **service.times.medians(),
    }


def grasp_status(service: GraspService, config: NodeConfig, state: str, now: float,
                 sim_time: bool, load_error: str, camera_names: list[str]
                 ) -> tuple[int, str, dict]:
    """(level, message, values) for the node in lifecycle ``state`` at ``now``."""
    serving, age = service.serving, service.newest_age(now)
    level, message = DiagnosticStatus.OK[0], "ready"
    if state != "active":
        level, message = DiagnosticStatus.WARN[0], state
    elif serving is None or age > serving.policy.deadline_s:
        level, message = DiagnosticStatus.WARN[0], "no fresh camera frames"
    clock = service.clocks.reading(sim_time, now, config.frame_stamp, config.clock_tolerance_s,
                                   config.deadline_s)
    if clock.level > level:  # the clock's trouble is the headline
        level, message = clock.level, clock.message
    elif clock.message:
        message = f"{message}; {clock.message}"
    values = {**service_values(service, state, age, load_error),
              **{f"{name}.camera_rate_hz": round(camera.buffer.rate_hz(), 2)
                 for name, camera in zip(camera_names[1:], service.cameras[1:], strict=True)},
              **hand_values(service, camera_names, now),
              "node_clock_s": round(now, 3), **clock.values}
    return level, message, values


def hand_values(service: GraspService, camera_names: list[str], now: float) -> dict:
    """Each hand's newest joint state's age in seconds (inf: none yet); the first camera's
    key unprefixed, as its frames' are, the others' ``NAME.newest_joint_age_s``."""
    values = {}
    for index, (name, camera) in enumerate(zip(camera_names, service.cameras, strict=True)):
        if camera.hand is not None:
            newest = camera.hand.timeline.newest()
            key = f"{name}.newest_joint_age_s" if index else "newest_joint_age_s"
            values[key] = float("inf") if newest is None else round(now - newest, 3)
    return values


def status_message(level: int, message: str, values: dict, name: str,
                   hardware_id: str) -> DiagnosticStatus:
    return DiagnosticStatus(level=bytes([level]), name=name, message=message,
                            hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])


class DiagnosticsTimer:
    """Publishes the node's status on ``/diagnostics`` every period, on the steady clock (a
    ROS-time timer would also wake on every /clock message), in a group of its own so a
    model swap loading in the default group does not delay it; from construction on, so an
    unconfigured node says why (its load error)."""

    def __init__(self, node, period_s: float, group,
                 status: Callable[[], tuple[int, str, dict]]) -> None:
        self._node, self._status = node, status
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        node.create_timer(period_s, self._publish, clock=Clock(clock_type=ClockType.STEADY_TIME),
                          callback_group=group)

    def _publish(self) -> None:
        level, message, values = self._status()
        node = self._node
        array = DiagnosticArray(status=[status_message(
            level, message, values, f"{node.get_name()}: grasp success",
            node.get_fully_qualified_name())])
        array.header.stamp = node.get_clock().now().to_msg()
        self._pub.publish(array)
