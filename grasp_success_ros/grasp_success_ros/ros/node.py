"""``grasp_success_node``: judges each grasp-completed event from the hand camera (and, with
a hand profile, from the hand's joints: ros/hand.py).

A thin, managed (lifecycle) node over the grasp service (core/grasp_service.py), which
decides: this module keeps what is ROS. Configure reads the hand profiles, loads and warms up
the model and creates the publishers and the ``~/verify`` action; activate subscribes to the
cameras, triggers and hands' joint states;
deactivate stops taking them and answers every pending event; cleanup frees the model.
Frames go into the service undecoded from the camera callback; a worker (its own callback
group) asks the service what is ready and publishes exactly one ``GraspVerdict`` per event,
whether it came from a trigger or a ``VerifyGrasp`` goal. Setting ``model_path`` swaps the
model without a restart. bag-eval drives the same service with a bag's timeline.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from grasp_success_ros.core.clocks import clock_unset
from grasp_success_ros.core.errors import GraspSuccessError
from grasp_success_ros.core.grasp_service import Answer, GraspService, Intake, Pass
from grasp_success_ros.core.loads import OneLoad
from grasp_success_ros.core.params import NodeConfig
from grasp_success_ros.core.stamps import ns_to_s, stamp_s
from grasp_success_ros.core.triggers import trigger_info
from grasp_success_ros.core.wakeups import WorkerWakeups
from grasp_success_ros.data.image_conversion import to_rgb
from grasp_success_ros.model.classifier import GraspClassifier
from grasp_success_ros.model.fence import check_model_path
from grasp_success_ros.model.native_logs import native_notices_filtered
from grasp_success_ros.ros.camera import CameraChannel
from grasp_success_ros.ros.diagnostics import DiagnosticsTimer, grasp_status
from grasp_success_ros.ros.hand import HandChannel, hand_channels, hands_line, witnesses
from grasp_success_ros.ros.hold import HoldWatch
from grasp_success_ros.ros.parameters import declare_cameras, declare_parameters
from grasp_success_ros.ros.rclpy_compat import (
    InlineCallbackGroup,
    NodeExecutor,
    guard_change_state,
    settle_interrupt,
)
from grasp_success_ros.ros.verdicts import answer_message
from grasp_success_ros.ros.verify import VerifyServer

# The longest the worker sleeps while an event waits: a deadline on a simulated clock that
# runs faster than the steady one is met this late at most.
MAX_DEADLINE_SLEEP_S = 0.5
LOG_THROTTLE_S = 5.0
# A model swap loads inside the parameter callback (a model that cannot serve is refused with
# the reason); past this the set is refused, so a hung file system cannot hold the parameter
# and lifecycle services for ever (core/loads.py).
LOAD_TIMEOUT_S = 120.0
# Setting one of these loads the model anew (beside the one serving) and swaps it in.
RELOADING_PARAMS = {"model_path", "onnx_runtime", "openvino_device", "openvino_precision"}
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


def load_classifier(config: NodeConfig, path: str, logger) -> GraspClassifier:
    """Load ``path`` (inside the fence of model_dirs and max_model_mb, its card checked to
    be its own) and warm it up; GraspSuccessError (or whatever the runtime raises for a
    model that does not run) says why it cannot serve."""
    check_model_path(path, config.model_dirs, config.max_model_mb)
    classifier, notes = GraspClassifier.from_path(
        path, allow_custom_code=config.allow_custom_code, providers=config.providers,
        onnx_runtime=config.onnx_choice, accept_card_mismatch=config.accept_card_mismatch)
    for note in notes:
        logger.warning(note)
    if config.warmup:
        classifier.warm_up({1, card_policy(config, classifier).frames_needed})
    return classifier


def card_policy(config: NodeConfig, classifier: GraspClassifier):
    """The parameters' policy with the model card's threshold pair where they defer to it."""
    return config.policy(classifier.card.threshold, classifier.card.threshold_failure)


def load_beside(loads: OneLoad, config: NodeConfig, serving: str, logger) -> GraspClassifier:
    """Load ``config.model_path`` now, beside the model ``serving``, so one that cannot
    serve is refused with the reason (GraspSuccessError); one load at a time, its wait
    bounded (core/loads.py)."""
    started = time.monotonic()
    try:
        classifier = loads.run(lambda: load_classifier(config, config.model_path, logger),
                               config.model_path, LOAD_TIMEOUT_S)
    except Exception as exc:  # any model that cannot serve is refused, never fatal
        reason = str(exc) if isinstance(exc, GraspSuccessError) \
            else f"{type(exc).__name__}: {exc}"
        logger.error(f"model_path {config.model_path} refused, still serving {serving}: "
                     f"{reason}")
        raise GraspSuccessError(reason) from None
    logger.info(f"loaded {classifier.source} in {time.monotonic() - started:.1f} s")
    return classifier


def ready_line(classifier: GraspClassifier, policy, trigger_type: str) -> str:
    """What an activated node says it serves."""
    card = classifier.card
    return (f"ready: model {classifier.source} ({card.backbone}, {card.input_size} px, "
            f"output {card.output}), threshold {policy.threshold}, policy {policy.selection}, "
            f"trigger {trigger_type}")


class GraspSuccessNode(LifecycleNode):
    """Camera + grasp events in, one verdict (or failure record) per event out."""

    def __init__(self, **kwargs) -> None:
        super().__init__("grasp_success_node", **kwargs)
        self.config = declare_parameters(self)
        self._cameras = [CameraChannel(topics) for topics in declare_cameras(self)]
        self._hands: list[HandChannel | None] = []  # each camera's hand, from configure on
        self.service = GraspService(len(self._cameras), to_rgb, self.config.buffer_size,
                                    self.config.streaming, steady=time.monotonic,
                                    hold=self.config.hold)
        self._loads = OneLoad(on_late=self.get_logger().warning)
        self._last_load_error = ""
        self._publish_lock = threading.Lock()  # the worker, trigger and goals all answer
        self._inputs: list = []  # the camera and trigger subscriptions, while active
        self._outputs: list = []
        self._verify: VerifyServer | None = None  # from configure to cleanup
        self._hold: HoldWatch | None = None  # hold_watch: from configure to cleanup
        self._groups = [MutuallyExclusiveCallbackGroup() for _ in range(3)]
        worker_group, diagnostics_group, self._verify_group = self._groups
        # The worker group holds one entity, the wake-up guard condition: with a timer or a
        # service beside it, rclpy's executor re-dispatched whichever lost the race.
        self._wake = self.create_guard_condition(self._process_pending, worker_group)
        self._wakeups = WorkerWakeups(self._wake.trigger)
        DiagnosticsTimer(self, self.config.diagnostics_period_s, diagnostics_group, self._status)
        # Validate, then commit only once the set succeeded (ros2/demos'
        # set_parameters_callback.py).
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._commit_parameters)
        guard_change_state(self, self.get_logger())

    @property
    def executor_threads(self) -> int:
        """One pool thread per callback group the node creates (worker, diagnostics,
        verify, each camera's trigger, the default group for parameters, /clock and
        lifecycle), so none waits its turn; the inline camera groups run on the spinning
        thread."""
        groups = self._groups + [c.trigger_group for c in self._cameras] + [
            c.image_group for c in self._cameras] + [self.default_callback_group]
        return sum(1 for g in groups if not isinstance(g, InlineCallbackGroup))

    @property
    def camera_names(self) -> list[str]:
        """The ``cameras`` names in the service's order ("" for the one unnamed camera)."""
        return [camera.topics.name for camera in self._cameras]

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> bool:
        """autostart: configure and activate, as a lifecycle manager would."""
        return self.trigger_configure() == SUCCESS and self.trigger_activate() == SUCCESS

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:  # a hand profile or model that cannot serve: one line, stay unconfigured
            hands = hand_channels(self.config, [camera.topics for camera in self._cameras])
            classifier = load_classifier(self.config, self.config.model_path, self.get_logger())
        except Exception as exc:
            self._last_load_error = f"{type(exc).__name__}: {exc}"
            self.get_logger().fatal(self._last_load_error)
            return FAILURE
        self._hands = hands
        self.service.equip(witnesses(hands))
        self.service.serve(classifier, card_policy(self.config, classifier))
        self._outputs = [pub for camera in self._cameras for pub in camera.create_outputs(self)]
        # From configure to cleanup, refusing goals while inactive: a server that vanished at
        # deactivate could not deliver the answers to the goals pending then.
        self._verify = VerifyServer(self, self._verify_group, self._publish_lock,
                                    self._wakeups.request)
        if self.config.hold_watch:
            self._hold = HoldWatch(self, self._cameras, self._verify_group)
        self.get_logger().info(f"configured: model {classifier.source}{hands_line(hands)}")
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.service.activate()
        self._inputs = [sub for index, camera in enumerate(self._cameras)
                        for sub in camera.create_inputs(
                            self, self.config.image_transport, self.config.trigger_type,
                            lambda m, i=index: self._on_image(i, m),
                            lambda m, i=index: self._on_trigger(i, m))]
        self._inputs += [sub for index, hand in enumerate(self._hands) if hand is not None
                         for sub in hand.create_inputs(self, index, self._wakeups.request)]
        self._inputs += self._hold.create_inputs(self._verify_group) if self._hold else []
        serving = self.service.serving
        self.get_logger().info(ready_line(serving.scorer, serving.policy,
                                          self.config.trigger_type))
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop taking frames and events; every pending event is answered now."""
        self._stop_inputs()
        self.get_logger().info("inactive")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release(stop=True)
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"transition from {state.label} failed: back to unconfigured")
        self._release(stop=True)
        return SUCCESS

    def destroy_node(self) -> None:
        self._wakeups.close()
        super().destroy_node()

    def _stop_inputs(self) -> None:
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs = []
        self._publish_pass(self.service.deactivate(*self._now()))

    def _release(self, stop: bool = False) -> None:
        """Free the model, the frames and the publishers (cleanup; shutdown and error stop
        the inputs first)."""
        if stop:
            self._stop_inputs()
        for pub in self._outputs:
            self.destroy_publisher(pub)
        for server in (self._verify, self._hold):
            if server is not None:
                server.destroy()
        self._outputs, self._verify, self._hold = [], None, None
        self.service.cleanup()

    # --- inputs -------------------------------------------------------------------------

    def _now(self) -> tuple[float, bool]:
        """The node's time in seconds, and whether it is set (use_sim_time: /clock came)."""
        now = ns_to_s(self.get_clock().now().nanoseconds)
        return now, not clock_unset(self.get_clock().ros_time_is_active, now)

    def _on_image(self, camera: int, msg) -> None:
        """Hot path: stamp and store; decoding waits until an event uses the frame."""
        now, clock_set = self._now()
        wanted, note = self.service.frame(camera, stamp_s(msg.header.stamp), now, msg,
                                          msg.header.frame_id, clock_set)
        self._note(note)
        if wanted:
            self._wakeups.request()

    def _on_trigger(self, camera: int, msg) -> None:
        """The same rule as the bag tools (triggers.py): event time = receipt time, or the
        Header's stamp; Bool false is answered with a not_completed failure record."""
        now_ns = self.get_clock().now().nanoseconds
        info = trigger_info(self.config.trigger_type, msg, ns_to_s(now_ns))
        self._take(self.service.event(camera, info, now_ns, self._now()[1]))

    def _take(self, intake: Intake) -> None:
        self._note(intake.note)
        if intake.answer is not None:  # rejected, or inactive: answered, never dropped
            self.publish_answer(intake.answer)
        else:
            self._wakeups.request()

    def _note(self, note: str | None) -> None:
        if note is not None:
            self.get_logger().warning(note, throttle_duration_sec=LOG_THROTTLE_S)

    # --- the worker and the answers -------------------------------------------------------

    def _process_pending(self) -> None:
        self._wakeups.run_passes(self._one_pass)

    def _one_pass(self) -> float | None:
        """Answer what is ready; the seconds until the next deadline of a waiting event."""
        now, clock_set = self._now()
        self._publish_pass(self.service.answer_ready(now, clock_set))
        delay = self.service.next_deadline(self._now()[0])
        return None if delay is None else min(delay, MAX_DEADLINE_SLEEP_S)

    def _publish_pass(self, done: Pass) -> None:
        for progress in done.progress:
            if self._verify is not None:
                self._verify.feedback(progress)
        for answer in done.answers:
            self.publish_answer(answer)
        for report in done.holds if self._hold is not None else ():
            self._hold.publish(report)

    def publish_answer(self, answer: Answer) -> None:
        """The event's GraspVerdict (and Bool), its goal's result, the debug image."""
        camera, record = self._cameras[answer.camera], answer.record
        message = answer_message(answer, self.service.cameras[answer.camera].frame_id)
        with self._publish_lock:
            camera.publish(message, record, self.get_logger())
            resolved = self._verify is not None and self._verify.resolve(record.event_id,
                                                                          message)
        camera.publish_debug_image(record, answer.frames)
        if resolved:
            self.executor.wake()  # resumes the goal's coroutine now, not at the next event

    # --- parameters and diagnostics -------------------------------------------------------

    def _configured(self, params) -> NodeConfig | None:
        """The config with the node's own parameters among ``params`` (None: none of them;
        use_sim_time, qos_overrides.* are rclpy's)."""
        return self.config.changed({p.name: p.value for p in params})

    def _validate_parameters(self, params) -> SetParametersResult:
        try:
            config = self._configured(params)
            if config is not None and self.service.serving is not None and \
                    {p.name for p in params} & RELOADING_PARAMS:
                self.service.stage(self._load_beside(config))
        except GraspSuccessError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _load_beside(self, config: NodeConfig) -> GraspClassifier:
        """The new model, loaded beside the one serving (which keeps answering)."""
        try:
            return load_beside(self._loads, config, self.service.serving.scorer.source,
                               self.get_logger())
        except GraspSuccessError as exc:
            self._last_load_error = str(exc)
            raise

    def _commit_parameters(self, params) -> None:
        config = self._configured(params)  # validated by _validate_parameters
        if config is None:
            self.service.stage(None)
            return
        if config.frame_stamp != self.config.frame_stamp:  # the two kinds of time don't mix
            self.service.clear_frames()
        self.config = config
        swapped = self.service.commit(lambda classifier: card_policy(config, classifier))
        if swapped is not None:
            self._last_load_error = ""
            self.get_logger().info(f"model swapped: {swapped[0]} -> {swapped[1]}")

    def _status(self) -> tuple[int, str, dict]:
        state = self._state_machine.current_state[1]  # checked by guard_change_state
        return grasp_status(self.service, self.config, state, self._now()[0],
                            self.get_clock().ros_time_is_active, self._last_load_error,
                            self.camera_names)


def main(args=None) -> int:
    """Run the node; exit 1 with a one-line error if the model or parameters are unusable
    (at autostart; under a lifecycle manager a failed configure leaves it unconfigured).

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
    if node.config.autostart and not node.start():  # the transition logged its one line
        node.destroy_node()
        rclpy.try_shutdown()
        return 1
    executor = NodeExecutor(num_threads=node.executor_threads)
    executor.add_node(node)
    try:
        executor.spin()
    except KeyboardInterrupt:  # Ctrl-C: rclpy's signal thread may still be at work
        settle_interrupt(node.context)
    except ExternalShutdownException:
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
