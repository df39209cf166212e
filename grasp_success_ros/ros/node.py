"""``grasp_success_node``: judges each grasp-completed event from the hand camera.

A thin adapter: frames are buffered undecoded by the camera callback; a worker (its own
callback group, on a multi-threaded executor) selects frames with the shared policy,
runs the classifier and publishes exactly one record per event.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from itertools import count

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Bool, Float32, String
from std_srvs.srv import Trigger

from grasp_success_ros.core.errors import GraspSuccessError
from grasp_success_ros.core.frame_buffer import FrameBuffer
from grasp_success_ros.core.judge import (
    Frame,
    GraspEvent,
    GraspRecord,
    failure_record,
    judge_selected,
)
from grasp_success_ros.core.params import PARAM_NAMES, PARAMS, NodeConfig, ParamSpec
from grasp_success_ros.core.pending import AnswerStats, PendingEvents
from grasp_success_ros.core.policy import PolicyConfig, select_frames
from grasp_success_ros.core.triggers import frame_stamp, stamp_seconds, trigger_info
from grasp_success_ros.data.image_conversion import to_rgb
from grasp_success_ros.model.classifier import GraspClassifier
from grasp_success_ros.model.native_logs import native_notices_filtered
from grasp_success_ros.ros.executor import NodeExecutor
from grasp_success_ros.ros.messages import trigger_class

DEADLINE_POLL_S = 0.05
BACKSTOP_S = 5.0
LOG_THROTTLE_S = 5.0
# Every event must be answered: keep all trigger messages until the callback takes them (a
# depth of 10 lost events of a 100-events-per-second burst while the worker was busy), and
# keep enough answers for a slow reliable reader to catch up.
TRIGGER_QOS = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
ANSWER_DEPTH = 100
# A thread each for the camera, the trigger, the worker, the classify service and the
# default group (/clock, parameters, diagnostics, deadline polling): none waits its turn.
EXECUTOR_THREADS = 5


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    desc = ParameterDescriptor(description=spec.description, read_only=not spec.dynamic)
    if spec.choices:
        desc.additional_constraints = "one of: " + ", ".join(spec.choices)
    if isinstance(spec.default, bool) or spec.min is None:
        return desc
    if isinstance(spec.default, int):
        desc.integer_range = [IntegerRange(from_value=int(spec.min), to_value=int(spec.max),
                                           step=1)]
    else:
        desc.floating_point_range = [FloatingPointRange(from_value=float(spec.min),
                                                        to_value=float(spec.max), step=0.0)]
    return desc


class GraspSuccessNode(Node):
    """Camera + grasp events in, one verdict (or failure record) per event out."""

    def __init__(self, **kwargs) -> None:
        super().__init__("grasp_success_node", **kwargs)
        for spec in PARAMS:
            self.declare_parameter(spec.name, spec.default, descriptor(spec))
        self.config = NodeConfig.from_values(
            {spec.name: self.get_parameter(spec.name).value for spec in PARAMS})
        self.classifier, notes = GraspClassifier.from_path(
            self.config.model_path, allow_custom_code=self.config.allow_custom_code)
        for note in notes:
            self.get_logger().warning(note)
        self.policy: PolicyConfig = self.config.policy(self.classifier.card.threshold)
        if self.config.warmup:
            self.classifier.warm_up({1, self.policy.frames_needed})

        self._buffer = FrameBuffer(self.config.buffer_size)
        self._pending = PendingEvents()
        self._event_ids = count(1)
        self._service_ids = count(1)
        self._stats = AnswerStats()
        self._publish_lock = threading.Lock()

        self._create_subscriptions()
        self._verdict_pub = self.create_publisher(Bool, "grasp_success", ANSWER_DEPTH)
        self._confidence_pub = self.create_publisher(Float32, "grasp_success/confidence",
                                                     ANSWER_DEPTH)
        self._result_pub = self.create_publisher(String, "grasp_success/result", ANSWER_DEPTH)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # The worker group holds one entity, the wake-up guard condition: with a timer and a
        # service beside it, rclpy's executor re-dispatched whichever lost the race for the
        # busy group, piling up thousands of tasks and starving the camera callback.
        self._wake = self.create_guard_condition(self._process_pending,
                                                 MutuallyExclusiveCallbackGroup())
        # Timers on the steady clock: a ROS-time timer also wakes the executor on every
        # /clock message (use_sim_time with a bag's 100 Hz /clock).
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        # Wakes the worker for the deadlines of pending events (cancelling it while idle
        # raced with the executor calling it: rclpy raised 'timer is canceled').
        self.create_timer(DEADLINE_POLL_S, self._wake_if_pending, clock=steady)
        self.create_service(Trigger, "~/classify", self._on_classify,
                            callback_group=MutuallyExclusiveCallbackGroup())
        self.create_timer(self.config.diagnostics_period_s, self._publish_diagnostics,
                          clock=steady)
        # Validate, then commit only once the set succeeded (ros2/demos'
        # set_parameters_callback.py): parameters the node does not own (use_sim_time,
        # qos_overrides.*) are for rclpy to judge.
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._commit_parameters)
        card = self.classifier.card
        self.get_logger().info(
            f"ready: model {self.classifier.source} ({card.backbone}, {card.input_size} px, "
            f"output {card.output}), threshold {self.policy.threshold}, policy "
            f"{self.policy.selection}, trigger {self.config.trigger_type}")

    # --- inputs -------------------------------------------------------------------------

    def _create_subscriptions(self) -> None:
        """Camera and trigger in groups of their own: in one mutually exclusive group a
        30 Hz camera kept winning the executor's turn and delayed events by seconds."""
        camera, trigger = MutuallyExclusiveCallbackGroup(), MutuallyExclusiveCallbackGroup()
        if self.config.image_transport == "compressed":
            self.create_subscription(CompressedImage, "camera/image_raw/compressed",
                                     self._on_image, qos_profile_sensor_data,
                                     callback_group=camera)
        else:
            self.create_subscription(Image, "camera/image_raw", self._on_image,
                                     qos_profile_sensor_data, callback_group=camera)
        self.create_subscription(trigger_class(self.config.trigger_type), "grasp_completed",
                                 self._on_trigger, TRIGGER_QOS, callback_group=trigger)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_image(self, msg) -> None:
        """Hot path: stamp and store; decoding waits until an event uses the frame."""
        if stamp_seconds(msg.header.stamp) == 0.0:
            self.get_logger().warning("camera frames carry no stamp; using arrival time",
                                      throttle_duration_sec=LOG_THROTTLE_S)
        self._buffer.append(Frame(frame_stamp(msg, self._now()), msg))
        if self._pending:
            self._wake.trigger()

    def _on_trigger(self, msg) -> None:
        # The same rule as the bag tools (triggers.py): event time = receipt time, or the
        # Header's stamp; Bool false is answered with a not_completed failure record.
        info = trigger_info(self.config.trigger_type, msg, self._now())
        event = GraspEvent(next(self._event_ids), info.stamp, time.monotonic(), info.trigger)
        if info.rejection:
            self._publish(failure_record(event, self.policy, *info.rejection))
            return
        self._pending.add(event)
        self._wake.trigger()

    # --- the worker ---------------------------------------------------------------------

    def _wake_if_pending(self) -> None:
        if self._pending:
            self._wake.trigger()

    def _process_pending(self) -> None:
        """Answer every pending event whose frames are there or whose deadline passed."""
        events = self._pending.snapshot()
        if not events:
            return
        frames = self._buffer.snapshot()
        stamps = [f.stamp for f in frames]
        now, policy = self._now(), self.policy
        for event in events:
            overdue = time.monotonic() - event.received_monotonic > policy.deadline_s + BACKSTOP_S
            selection = select_frames(stamps, event.stamp, policy, now=None if overdue else now)
            if selection.status == "wait":
                continue
            self._publish(self._judge(event, frames, selection, policy))
            self._pending.remove(event)

    def _judge(self, event, frames, selection, policy) -> GraspRecord:
        try:
            return judge_selected(event, frames, selection, self.classifier.predict, to_rgb,
                                  policy)
        except Exception as exc:  # never down, never silent: the event still gets its record
            self.get_logger().error(f"event {event.event_id}: judging failed: {exc!r}",
                                    throttle_duration_sec=LOG_THROTTLE_S)
            return failure_record(event, policy, "inference_error",
                                  f"{type(exc).__name__}: {exc}")

    def _publish(self, record: GraspRecord) -> None:
        with self._publish_lock:  # the worker and the trigger callback both answer events
            self._publish_locked(record)

    def _publish_locked(self, record: GraspRecord) -> None:
        if record.ok:
            self._verdict_pub.publish(Bool(data=record.verdict))
            self._confidence_pub.publish(Float32(data=record.confidence))
            self.get_logger().info(
                f"event {record.event_id}: {'SUCCESS' if record.verdict else 'FAILURE'} "
                f"(confidence {record.confidence:.3f}, {record.latency_ms:.0f} ms)")
        else:
            self.get_logger().warning(f"event {record.event_id}: no verdict: {record.error}",
                                      throttle_duration_sec=LOG_THROTTLE_S)
        self._stats.count(record)
        self._result_pub.publish(String(data=record.to_json()))

    def _on_classify(self, request, response):
        """Classify the newest frame now. ``success`` = the classification ran, not the grasp:
        the verdict is in the JSON record in ``message``."""
        policy = self.policy.replace(selection="latest")
        event = GraspEvent(next(self._service_ids), self._now(), time.monotonic(), "service")
        frames = self._buffer.snapshot()
        selection = select_frames([f.stamp for f in frames], event.stamp, policy)
        record = self._judge(event, frames, selection, policy)
        response.success = record.ok
        response.message = record.to_json()
        return response

    # --- parameters and diagnostics -------------------------------------------------------

    def _configured(self, params) -> tuple[NodeConfig, PolicyConfig] | None:
        """Config and policy with the node's own parameters among ``params`` applied; None
        when ``params`` holds none of them. Raises GraspSuccessError for invalid values."""
        changes = {p.name: p.value for p in params if p.name in PARAM_NAMES}
        if not changes:
            return None
        config = NodeConfig.from_values({**self.config.__dict__, **changes})
        return config, config.policy(self.classifier.card.threshold)

    def _validate_parameters(self, params) -> SetParametersResult:
        try:
            self._configured(params)
        except GraspSuccessError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _commit_parameters(self, params) -> None:
        configured = self._configured(params)  # validated by _validate_parameters
        if configured is not None:
            self.config, self.policy = configured

    def _publish_diagnostics(self) -> None:
        newest = self._buffer.newest()
        age = self._now() - newest.stamp if newest else float("inf")
        level, message = DiagnosticStatus.OK, "ready"
        if newest is None or age > self.policy.deadline_s:
            level, message = DiagnosticStatus.WARN, "no fresh camera frames"
        values = {
            "model_loaded": self.classifier is not None,
            "model": self.classifier.source, "threshold": self.policy.threshold,
            "camera_rate_hz": round(self._buffer.rate_hz(), 2),
            "newest_frame_age_s": round(age, 3), "pending_events": len(self._pending),
            **self._stats.as_dict(),
        }
        status = DiagnosticStatus(
            level=level, name=f"{self.get_name()}: grasp success", message=message,
            hardware_id=self.get_fully_qualified_name(),
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


def main(args=None) -> int:
    """Run the node; exit 1 with a one-line error if the model or parameters are unusable.

    TensorFlow's native start-up notices are dropped unless the log level is debug
    (``--ros-args --log-level debug``).
    """
    rclpy.init(args=args)
    logger = rclpy.logging.get_logger("grasp_success_node")
    if logger.is_enabled_for(rclpy.logging.LoggingSeverity.DEBUG):
        return _spin(logger)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_notices_filtered():
        return _spin(logger)


def _spin(logger) -> int:
    try:
        node = GraspSuccessNode()
    except GraspSuccessError as exc:
        logger.fatal(f"{type(exc).__name__}: {exc}")
        rclpy.try_shutdown()
        return 1
    executor = NodeExecutor(num_threads=EXECUTOR_THREADS)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
