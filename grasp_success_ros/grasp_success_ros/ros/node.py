"""``grasp_success_node``: judges each grasp-completed event from the hand camera.

A thin adapter and a managed (lifecycle) node: configure loads and warms up the model and
creates the publishers, activate subscribes to the camera and the trigger and answers,
deactivate stops taking frames and events (answering every pending one), cleanup frees the
model. Frames are buffered undecoded by the camera callback; a worker (its own callback
group, on a multi-threaded executor) selects frames with the shared policy, runs the
classifier and publishes exactly one ``GraspVerdict`` per event, whether the event came from
the trigger topic or a ``VerifyGrasp`` goal. Setting ``model_path`` swaps the model without a
restart. The ``cameras`` parameter gives several hands to one node and one model: each camera
(ros/camera.py) has its own topics, frames and answers; events of all cameras that are ready
together are judged in one forward pass.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from itertools import count

import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from grasp_success_msgs.action import VerifyGrasp
from grasp_success_msgs.msg import GraspVerdict
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.action import ActionServer, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.task import Future
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, Header

from grasp_success_ros.core.clocks import (
    ClockWatch,
    clock_unset,
    no_clock_reason,
    skew_reason,
    trigger_note,
)
from grasp_success_ros.core.errors import GraspSuccessError, ModelLoadError
from grasp_success_ros.core.judge import (
    Frame,
    GraspEvent,
    GraspRecord,
    Judgement,
    failure_record,
    judge_batch,
)
from grasp_success_ros.core.params import (
    CAMERA_FIELDS,
    PARAM_NAMES,
    PARAMS,
    CameraTopics,
    NodeConfig,
    ParamSpec,
    camera_param_name,
    check_camera_names,
)
from grasp_success_ros.core.pending import AnswerStats, StageTimes
from grasp_success_ros.core.policy import PolicyConfig, Selection, frames_so_far, select_frames
from grasp_success_ros.core.triggers import frame_stamp, stamp_seconds, trigger_info
from grasp_success_ros.core.wakeups import WorkerWakeups
from grasp_success_ros.data.image_conversion import rgb_to_image_fields, to_rgb
from grasp_success_ros.data.overlay import annotate
from grasp_success_ros.model.classifier import GraspClassifier
from grasp_success_ros.model.fence import check_model_path
from grasp_success_ros.model.native_logs import native_notices_filtered
from grasp_success_ros.ros.camera import CameraChannel
from grasp_success_ros.ros.executor import NodeExecutor
from grasp_success_ros.ros.verdicts import time_msg, verdict_message

BACKSTOP_S = 5.0
# The longest the worker sleeps while an event waits: a deadline on a simulated clock that
# runs faster than the steady one is met this late at most.
MAX_DEADLINE_SLEEP_S = 0.5
DEADLINE_MARGIN_S = 0.001  # a deadline is passed once the clock is beyond it
LOG_THROTTLE_S = 5.0
# A model swap loads inside the parameter callback (so a model that cannot serve is refused
# with the reason); past this the set is refused, so a hung file system cannot hold the
# parameter and lifecycle services for ever.
LOAD_TIMEOUT_S = 120.0
# A pool thread each for the trigger, the worker, the verify action, the diagnostics timer
# and the default group (/clock, parameters with a model swap's load, lifecycle
# transitions): none waits its turn. The camera's callback runs on the spinning thread.
EXECUTOR_THREADS = 5
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
# A VerifyGrasp goal's policy fields: empty / 0 keeps the node's parameter.
GOAL_OVERRIDES = {"frame_selection": "selection", "n_frames": "n_frames", "combine": "combine"}


# Setting one of these loads the model anew (beside the one serving) and swaps it in.
RELOADING_PARAMS = {"model_path", "onnx_runtime", "openvino_device", "openvino_precision"}


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


@dataclass(frozen=True)
class Serving:
    """The model that answers and the policy with its card's threshold: swapped as one."""

    classifier: GraspClassifier
    policy: PolicyConfig

    def policy_for(self, event: GraspEvent) -> PolicyConfig:
        """The node's policy with the event's own overrides (a VerifyGrasp goal's)."""
        return self.policy.replace(**event.overrides) if event.overrides else self.policy


def goal_overrides(request) -> dict:
    """A VerifyGrasp goal's policy fields that are set, as PolicyConfig fields."""
    values = {field: getattr(request, name) for name, field in GOAL_OVERRIDES.items()}
    return {field: value for field, value in values.items() if value}


@dataclass
class Goal:
    """A VerifyGrasp goal waiting for its event's verdict."""

    handle: object
    answer: Future
    frames_reported: int = -1


def backstop_at(event: GraspEvent, policy: PolicyConfig) -> float:
    """``time.monotonic()`` after which an event is judged without waiting, whatever the
    frames' clock says (a simulated clock that stopped): its deadline plus ``BACKSTOP_S``
    after it was received."""
    return event.received_monotonic + policy.deadline_s + BACKSTOP_S


def card_policy(config: NodeConfig, classifier: GraspClassifier) -> PolicyConfig:
    """The parameters' policy with the model card's threshold pair where they defer to it."""
    return config.policy(classifier.card.threshold, classifier.card.threshold_failure)


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


class GraspSuccessNode(LifecycleNode):
    """Camera + grasp events in, one verdict (or failure record) per event out."""

    def __init__(self, **kwargs) -> None:
        super().__init__("grasp_success_node", **kwargs)
        values = {}
        for spec in PARAMS:  # a list's type is named: rclpy takes an empty one for bytes
            default = Parameter.Type.STRING_ARRAY if isinstance(spec.default, list) \
                else spec.default
            value = self.declare_parameter(spec.name, default, descriptor(spec)).value
            values[spec.name] = spec.default if value is None else value
        self.config = NodeConfig.from_values(values)
        self._serving: Serving | None = None  # set by configure, read once per judgement
        self._staged: GraspClassifier | None = None  # loaded on-set, swapped in post-set
        self._last_load_error = ""
        self._cameras = [CameraChannel(topics, self.config.buffer_size)
                         for topics in self._declare_cameras()]
        self._event_ids = count(1)
        self._stats = AnswerStats()
        self._times = StageTimes()  # /diagnostics: frame delay, preprocessing, forward
        self._clocks = ClockWatch()  # /diagnostics: frames and triggers stamped ahead
        self._publish_lock = threading.Lock()
        self._answer_lock = threading.Lock()  # the worker vs deactivate: one answer per event
        self._intake_lock = threading.Lock()  # the trigger vs deactivate
        self._accepting = False
        self._inputs: list = []  # the camera and trigger subscriptions, while active
        self._outputs: list = []
        self._verify: ActionServer | None = None  # from configure to cleanup
        self._goals: dict[int, Goal] = {}  # event_id -> the goal that asked for it
        # The worker group holds one entity, the wake-up guard condition: with a timer and a
        # service beside it, rclpy's executor re-dispatched whichever lost the race for the
        # busy group, piling up thousands of tasks and starving the camera callback.
        self._wake = self.create_guard_condition(self._process_pending,
                                                 MutuallyExclusiveCallbackGroup())
        self._wakeups = WorkerWakeups(self._wake.trigger)
        self._create_timers()
        # Validate, then commit only once the set succeeded (ros2/demos'
        # set_parameters_callback.py): parameters the node does not own (use_sim_time,
        # qos_overrides.*) are for rclpy to judge.
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._commit_parameters)
        self._guard_change_state()

    def _declare_cameras(self) -> list[CameraTopics]:
        """The ``cameras`` parameter and, per listed NAME, ``cameras.NAME.*`` (read-only,
        from the params file or -p; declared here since their names come from the list).
        Empty: the one camera of the node's own topics."""
        read_only = ParameterDescriptor(
            read_only=True, description="Camera names judged by this node's one model; each "
            "NAME reads cameras.NAME.image_topic, .trigger_topic, .namespace. Empty: one "
            "camera on camera/image_raw and grasp_completed.")
        names = self.declare_parameter("cameras", Parameter.Type.STRING_ARRAY, read_only).value
        if not names:
            return [CameraTopics("")]
        cameras = []
        for name in check_camera_names(list(names)):
            values = {field: self.declare_parameter(
                camera_param_name(name, field), "",
                ParameterDescriptor(description=text, read_only=True)).value
                for field, text in CAMERA_FIELDS.items()}
            cameras.append(CameraTopics.named(name, values))
        return cameras

    def _create_timers(self) -> None:
        """The diagnostics timer, from construction on so an unconfigured node says why
        (load error); on the steady clock (a ROS-time timer also wakes the executor on every
        /clock message), in a group of its own so a model swap loading in the default group
        does not delay it. Deadlines need no timer: ``WorkerWakeups``."""
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self.config.diagnostics_period_s, self._publish_diagnostics,
                          clock=Clock(clock_type=ClockType.STEADY_TIME),
                          callback_group=MutuallyExclusiveCallbackGroup())

    def _guard_change_state(self) -> None:
        """Refuse a transition the current state does not offer with success=false.

        rclpy 7.1 (Jazzy) lets rcl's "Transition is not registered" error escape the
        change_state service callback, which ends the executor's spin: one bad request
        killed the node (ros2/rclpy#1209, fixed upstream by ros2/rclpy#1319, not in the
        Jazzy wheels). rclpy offers no hook, so this wraps the service's callback; the two
        private names it needs are checked here, so an rclpy that renames them fails at
        start-up instead of losing the guard silently.
        """
        service = getattr(self, "_service_change_state", None)
        machine = getattr(self, "_state_machine", None)
        if service is None or not hasattr(machine, "available_transitions"):
            raise RuntimeError("rclpy's lifecycle internals changed: review "
                               "GraspSuccessNode._guard_change_state (ros2/rclpy#1209)")
        unguarded = service.callback

        def change_state(request, response):
            wanted = request.transition
            offered = [(tid, label) for tid, label, *_ in machine.available_transitions]
            if not any(label == wanted.label if wanted.label else tid == wanted.id
                       for tid, label in offered):
                self.get_logger().warning(
                    f"refused transition id {wanted.id} label '{wanted.label}' from state "
                    f"{machine.current_state[1]}: offered {offered}")
                response.success = False
                return response
            return unguarded(request, response)

        service.callback = change_state

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> bool:
        """autostart: configure and activate, as a lifecycle manager would."""
        return self.trigger_configure() == SUCCESS and self.trigger_activate() == SUCCESS

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            classifier = load_classifier(self.config, self.config.model_path, self.get_logger())
        except Exception as exc:  # a model that cannot serve: one line, stay unconfigured
            self._last_load_error = f"{type(exc).__name__}: {exc}"
            self.get_logger().fatal(self._last_load_error)
            return FAILURE
        self._serving = Serving(classifier, card_policy(self.config, classifier))
        self._cameras = [CameraChannel(c.topics, self.config.buffer_size) for c in self._cameras]
        self._outputs = [pub for camera in self._cameras for pub in camera.create_outputs(self)]
        # From configure to cleanup, refusing goals while inactive: a server that vanished at
        # deactivate could not deliver the answers to the goals pending then.
        self._verify = ActionServer(self, VerifyGrasp, "~/verify", self._execute_verify,
                                    goal_callback=self._accept_goal,
                                    callback_group=MutuallyExclusiveCallbackGroup())
        self.get_logger().info(f"configured: model {classifier.source}")
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._intake_lock:
            self._accepting = True
        self._create_inputs()
        policy, card = self._serving.policy, self._serving.classifier.card
        self.get_logger().info(
            f"ready: model {self._serving.classifier.source} ({card.backbone}, "
            f"{card.input_size} px, output {card.output}), threshold {policy.threshold}, "
            f"policy {policy.selection}, trigger {self.config.trigger_type}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop taking frames and events; every pending event is answered now: judged if
        its frames are here, else a ``deactivated`` failure record."""
        self._stop_inputs()
        self.get_logger().info("inactive")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        self._release()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"transition from {state.label} failed: back to unconfigured")
        self._stop_inputs()
        self._release()
        return SUCCESS

    def destroy_node(self) -> None:
        self._wakeups.close()
        super().destroy_node()

    def _stop_inputs(self) -> None:
        with self._intake_lock:
            self._accepting = False
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs = []
        with self._answer_lock:
            self._answer_pending(final=True)

    def _release(self) -> None:
        """Free the model, the frames and the publishers (cleanup, shutdown, error)."""
        for pub in self._outputs:
            self.destroy_publisher(pub)
        if self._verify is not None:
            self._verify.destroy()
        self._outputs, self._verify = [], None
        self._serving = self._staged = None
        self._cameras = [CameraChannel(c.topics, self.config.buffer_size) for c in self._cameras]

    # --- inputs -------------------------------------------------------------------------

    def _create_inputs(self) -> None:
        """Each camera's image and trigger subscriptions (ros/camera.py)."""
        self._inputs = [sub for camera in self._cameras for sub in camera.create_inputs(
            self, self.config.image_transport, self.config.trigger_type, self._on_image,
            self._on_trigger)]

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _clock_unset(self, now: float) -> bool:
        """use_sim_time with no /clock received yet: the clock stands at 0."""
        return clock_unset(self.get_clock().ros_time_is_active, now)

    def _on_image(self, camera: CameraChannel, msg) -> None:
        """Hot path: stamp and store; decoding waits until an event uses the frame."""
        now, header_s = self._now(), stamp_seconds(msg.header.stamp)
        unset = self._clock_unset(now)
        if header_s == 0.0:
            self.get_logger().warning("camera frames carry no stamp; using arrival time",
                                      throttle_duration_sec=LOG_THROTTLE_S)
        elif unset:
            self._clocks.frame_without_clock()
        else:  # transport, and any offset between the camera's clock and this one
            self._times.add("frame_delay", (now - header_s) * 1e3)
            self._watch_frame(header_s - now)
        stamp = now if self.config.frame_stamp == "arrival" else frame_stamp(msg, now)
        camera.buffer.append(Frame(stamp, msg, None if unset else now))
        camera.frame_id = msg.header.frame_id
        if camera.pending:
            self._wakeups.request()

    def _watch_frame(self, ahead_s: float) -> None:
        """A frame's stamp minus its arrival, for /diagnostics; logged when impossible."""
        self._clocks.frame(ahead_s)
        reason = skew_reason(ahead_s, self.config.clock_tolerance_s)
        if reason is not None and self.config.frame_stamp == "header":
            self.get_logger().warning(f"camera {reason}", throttle_duration_sec=LOG_THROTTLE_S)

    def _watch_trigger(self, stamp_ns: int | None, now_ns: int) -> None:
        """A Header trigger's or goal's own stamp minus its arrival, for /diagnostics;
        logged when stamped ahead, or far behind."""
        if stamp_ns is None or self._clock_unset(now_ns * 1e-9):
            return
        ahead_s = (stamp_ns - now_ns) * 1e-9
        self._clocks.trigger(ahead_s)
        note = trigger_note(ahead_s, self.config.clock_tolerance_s)
        if note is not None:
            self.get_logger().warning(note[1], throttle_duration_sec=LOG_THROTTLE_S)

    def _on_trigger(self, camera: CameraChannel, msg) -> None:
        # The same rule as the bag tools (triggers.py): event time = receipt time, or the
        # Header's stamp; Bool false is answered with a not_completed failure record.
        now = self.get_clock().now()
        info = trigger_info(self.config.trigger_type, msg, now.nanoseconds * 1e-9)
        event = GraspEvent(next(self._event_ids), info.stamp, time.monotonic(), info.trigger,
                           stamp_ns=now.nanoseconds if info.stamp_ns is None else info.stamp_ns)
        self._watch_trigger(info.stamp_ns, now.nanoseconds)
        serving = self._serving
        if serving is None:  # unreachable: cleanup comes after deactivate took the inputs
            self.get_logger().error(f"event {event.event_id} dropped: no model loaded")
            return
        with self._intake_lock:
            accepting = self._accepting
            if accepting and not info.rejection:
                camera.pending.add(event)
        if not accepting:  # taken while deactivating: answered, never dropped
            rejection = ("deactivated", "the node is not active")
        else:
            rejection = info.rejection
        if rejection:
            self._publish(camera, failure_record(event, serving.policy, *rejection,
                                                 model=serving.classifier.source), event)
            return
        self._wakeups.request()

    # --- the worker ---------------------------------------------------------------------

    def _process_pending(self) -> None:
        self._wakeups.run_passes(self._one_pass)

    def _one_pass(self) -> float | None:
        """Answer what can be answered; the seconds until the next deadline of an event
        left waiting (None: none is)."""
        with self._answer_lock:
            self._answer_pending(final=False)
        return self._next_deadline_s()

    def _next_deadline_s(self) -> float | None:
        """When the earliest waiting event's deadline passes: on the frames' (ROS) clock,
        or its steady-clock backstop, whichever comes first."""
        serving = self._serving
        if serving is None:
            return None
        now, mono, delays = self._now(), time.monotonic(), []
        for camera in self._cameras:
            for event in camera.pending.snapshot():
                policy = serving.policy_for(event)
                delays += [policy.deadline_at(event.stamp) - now,
                           backstop_at(event, policy) - mono]
        if not delays:
            return None
        return min(min(delays) + DEADLINE_MARGIN_S, MAX_DEADLINE_SLEEP_S)

    def _answer_pending(self, final: bool) -> None:
        """Answer every pending event of every camera whose frames are there or whose
        deadline passed; ``final`` (deactivating): the others too, with a ``deactivated``
        failure record. The events ready in one pass, of all cameras, are judged with one
        forward pass over all their frames (``judge_batch``)."""
        serving = self._serving  # one model per pass: a swap lands between passes
        if serving is None:
            return
        ready: list[tuple[CameraChannel, Judgement]] = []
        for camera in self._cameras:
            ready += self._ready_events(camera, serving, final)
        for (camera, job), record in zip(ready, self._judge(ready, serving), strict=True):
            self._publish(camera, record, job.event, job.frames)
            camera.pending.remove(job.event)

    def _ready_events(self, camera: CameraChannel, serving: Serving,
                      final: bool) -> list[tuple[CameraChannel, Judgement]]:
        """The camera's events ready to judge; the waiting ones are streamed (or, ``final``,
        answered with a ``deactivated`` failure record)."""
        events = camera.pending.snapshot()
        if not events:
            return []
        frames = camera.buffer.snapshot()
        stamps = [f.stamp for f in frames]
        now, known = self._now(), camera.scores.known(serving.classifier)
        unset = self._clock_unset(now)
        ready = []
        for event in events:
            policy = serving.policy_for(event)
            overdue = time.monotonic() > backstop_at(event, policy)
            selection = self._no_clock(frames) if unset else \
                select_frames(stamps, event.stamp, policy, now=None if overdue else now)
            if selection.status != "wait":
                ready.append((camera, Judgement(event, frames, selection, policy, known)))
            elif final:
                self._publish(camera, failure_record(
                    event, policy, "deactivated", "the node was deactivated before frames for "
                    "this event arrived", model=serving.classifier.source), event, frames)
                camera.pending.remove(event)
            else:
                self._stream(camera, event, frames, stamps, policy, serving)
                self._report_progress(event, stamps, policy)
        camera.scores.retain(stamps)
        return ready

    @staticmethod
    def _no_clock(frames) -> Selection:
        """No time to choose frames by: a ``no_clock`` failure, naming what frames carry."""
        newest = stamp_seconds(frames[-1].msg.header.stamp) if frames else None
        return Selection("fail", code="no_clock", reason=no_clock_reason(newest))

    def _stream(self, camera: CameraChannel, event, frames, stamps, policy: PolicyConfig,
                serving: Serving) -> None:
        """Streaming n_after: classify the event's frames that are here, one forward pass
        each as they arrive, so its n-th frame costs one more pass, not a batch of n."""
        if self.config.streaming:
            camera.scores.add(serving.classifier, frames,
                              frames_so_far(stamps, event.stamp, policy),
                              self._timed(serving.classifier), to_rgb)

    def _judge(self, ready: list[tuple[CameraChannel, Judgement]],
               serving: Serving) -> list[GraspRecord]:
        model = serving.classifier.source
        try:
            return judge_batch([job for _, job in ready], self._timed(serving.classifier),
                               to_rgb, model)
        except Exception as exc:  # never down, never silent: each event still gets its record
            self.get_logger().error(f"judging failed: {exc!r}",
                                    throttle_duration_sec=LOG_THROTTLE_S)
            return [failure_record(job.event, job.cfg, "inference_error",
                                   f"{type(exc).__name__}: {exc}", model=model)
                    for _, job in ready]

    def _timed(self, classifier: GraspClassifier):
        """``classifier.predict`` that records its preprocessing and forward times."""
        def predict(images):
            if len(images) == 0:  # classifier.predict's own answer, nothing to time
                return classifier.predict(images)
            t0 = time.perf_counter()
            batch = classifier.prepare(images)
            t1 = time.perf_counter()
            p = classifier.predict_prepared(batch)
            self._times.add("preprocess", (t1 - t0) * 1e3)
            self._times.add("forward", (time.perf_counter() - t1) * 1e3)
            return p

        return predict

    # --- answers ------------------------------------------------------------------------

    def _publish(self, camera: CameraChannel, record: GraspRecord, event: GraspEvent,
                 frames=()) -> None:
        message = self._verdict_message(camera, record, event, frames)
        with self._publish_lock:  # the worker and the trigger callback both answer events
            self._publish_locked(camera, record, message)
        if frames and record.frame_stamps and camera.debug_pub.get_subscription_count():
            self._publish_debug_image(camera, record, frames)
        goal = self._goals.pop(record.event_id, None)
        if goal is not None:
            goal.answer.set_result(message)
            self.executor.wake()  # resumes the goal's coroutine now, not at the next event

    def _verdict_message(self, camera: CameraChannel, record: GraspRecord, event: GraspEvent,
                         frames) -> GraspVerdict:
        """Stamped from the input: the event's own stamp, the judged frames' own stamps and
        the camera's frame_id (never now())."""
        by_stamp = {f.stamp: f.msg.header for f in frames}
        judged = [by_stamp.get(s) for s in record.frame_stamps]
        frame_stamps = [h.stamp if h is not None and (h.stamp.sec or h.stamp.nanosec)
                        else time_msg(s) for h, s in zip(judged, record.frame_stamps, strict=True)]
        frame_id = judged[-1].frame_id if judged and judged[-1] is not None \
            else camera.frame_id
        ns = event.stamp_ns if event.stamp_ns is not None else round(event.stamp * 1e9)
        stamp = Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
        return verdict_message(record, Header(stamp=stamp, frame_id=frame_id), frame_stamps)

    def _publish_debug_image(self, camera: CameraChannel, record: GraspRecord, frames) -> None:
        """The last judged frame with the verdict, P(success) and the band drawn on it,
        stamped like the frame. Decoded again: it costs only while someone subscribes."""
        frame = next((f for f in reversed(frames) if f.stamp == record.frame_stamps[-1]), None)
        if frame is None:
            return
        try:
            rgb = to_rgb(frame.msg)
        except GraspSuccessError:  # the record already says bad_image
            return
        drawn = annotate(rgb, record.verdict, record.p_success, record.threshold,
                         record.threshold_failure)
        image = Image(**rgb_to_image_fields(drawn, "rgb8"))
        image.header = frame.msg.header
        camera.debug_pub.publish(image)

    def _publish_locked(self, camera: CameraChannel, record: GraspRecord,
                        message: GraspVerdict) -> None:
        where = f"{camera.topics.name} " if camera.topics.name else ""
        if record.ok:
            camera.verdict_pub.publish(Bool(data=record.verdict))
            self.get_logger().info(
                f"{where}event {record.event_id}: {'SUCCESS' if record.verdict else 'FAILURE'} "
                f"(confidence {record.confidence:.3f}, {record.latency_ms:.0f} ms)")
        else:
            self.get_logger().warning(f"{where}event {record.event_id}: no verdict: "
                                      f"{record.error}", throttle_duration_sec=LOG_THROTTLE_S)
        self._stats.count(record)
        camera.result_pub.publish(message)

    # --- the VerifyGrasp action -----------------------------------------------------------

    def _accept_goal(self, request) -> GoalResponse:
        """Refused while inactive, or when its policy overrides are invalid (logged why)."""
        serving = self._serving
        if serving is None or not self._accepting:
            self.get_logger().warning("VerifyGrasp goal refused: the node is not active")
            return GoalResponse.REJECT
        try:
            serving.policy.replace(**goal_overrides(request))
        except GraspSuccessError as exc:
            self.get_logger().warning(f"VerifyGrasp goal refused: {exc}")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    async def _execute_verify(self, goal_handle) -> VerifyGrasp.Result:
        """The goal becomes an event like a trigger's, judged by the same worker; the
        coroutine waits without holding an executor thread."""
        request, now = goal_handle.request, self.get_clock().now()
        own = request.stamp.sec * 1_000_000_000 + request.stamp.nanosec
        self._watch_trigger(own or None, now.nanoseconds)
        ns = own or now.nanoseconds
        event = GraspEvent(next(self._event_ids), ns * 1e-9, time.monotonic(), "action",
                           stamp_ns=ns, overrides=goal_overrides(request))
        goal = self._goals[event.event_id] = Goal(goal_handle, Future())
        with self._intake_lock:
            accepting = self._accepting and self._serving is not None
            if accepting:
                self._cameras[0].pending.add(event)
        if accepting:
            self._wakeups.request()
        else:  # deactivated between acceptance and execution: answered, never dropped
            serving = self._serving
            policy = serving.policy_for(event) if serving else PolicyConfig()
            model = serving.classifier.source if serving else ""
            self._publish(self._cameras[0], failure_record(
                event, policy, "deactivated", "the node is not active", model=model), event)
        verdict = await goal.answer
        goal_handle.succeed()
        return VerifyGrasp.Result(verdict=verdict)

    def _report_progress(self, event: GraspEvent, stamps, policy: PolicyConfig) -> None:
        """Feedback for a waiting goal: frames stamped after the event so far."""
        goal = self._goals.get(event.event_id)
        if goal is None:
            return
        after = sum(1 for s in stamps if s >= event.stamp + policy.settle_s)
        collected = min(after, policy.frames_needed)
        if collected != goal.frames_reported:
            goal.frames_reported = collected
            goal.handle.publish_feedback(VerifyGrasp.Feedback(
                frames_collected=collected, frames_needed=policy.frames_needed))

    # --- parameters and diagnostics -------------------------------------------------------

    def _configured(self, params) -> NodeConfig | None:
        """The config with the node's own parameters among ``params`` applied; None when
        ``params`` holds none of them. Raises GraspSuccessError for invalid values."""
        changes = {p.name: p.value for p in params if p.name in PARAM_NAMES}
        if not changes:
            return None
        return NodeConfig.from_values({**self.config.__dict__, **changes})

    def _validate_parameters(self, params) -> SetParametersResult:
        try:
            config = self._configured(params)
            self._staged = self._stage_model(config, {p.name for p in params})
        except GraspSuccessError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _stage_model(self, config: NodeConfig | None, names: set[str]) -> GraspClassifier | None:
        """``model_path`` (or what runs it: onnx_runtime, openvino_device,
        openvino_precision) set while a model is loaded: load and warm up the new model now,
        beside the old one (which keeps answering), so that one that cannot serve is refused
        with the reason. This runs in the default callback group: /clock and the parameter
        and lifecycle services wait for the load; camera, trigger, worker and timers do not.
        """
        serving = self._serving
        if config is None or serving is None or not names & RELOADING_PARAMS:
            return None
        pool = ThreadPoolExecutor(max_workers=1)  # a thread only to bound the wait
        future = pool.submit(load_classifier, config, config.model_path, self.get_logger())
        pool.shutdown(wait=False)
        started = time.monotonic()
        try:
            classifier = future.result(timeout=LOAD_TIMEOUT_S)
            self.get_logger().info(f"loaded {classifier.source} in "
                                   f"{time.monotonic() - started:.1f} s")
            return classifier
        except FutureTimeout:
            reason = f"loading {config.model_path} took over {LOAD_TIMEOUT_S:.0f} s"
        except Exception as exc:  # any model that cannot serve is refused, never fatal
            reason = f"{type(exc).__name__}: {exc}"
        self._last_load_error = reason
        self.get_logger().error(f"model_path {config.model_path} refused, still serving "
                                f"{serving.classifier.source}: {reason}")
        raise ModelLoadError(reason)

    def _commit_parameters(self, params) -> None:
        config = self._configured(params)  # validated by _validate_parameters
        staged, self._staged = self._staged, None
        if config is None:
            return
        if config.frame_stamp != self.config.frame_stamp:  # the two kinds of time don't mix
            for camera in self._cameras:
                camera.buffer.clear()
        self.config, old = config, self._serving
        if old is None:
            return
        classifier = staged or old.classifier
        # one assignment: the worker judges each pass with the old or the new, never a mix
        self._serving = Serving(classifier, card_policy(config, classifier))
        if staged is not None:
            self._last_load_error = ""
            self.get_logger().info(f"model swapped: {old.classifier.source} -> "
                                   f"{classifier.source}")

    def _lifecycle_state(self) -> str:
        return self._state_machine.current_state[1]  # checked by _guard_change_state

    def _publish_diagnostics(self) -> None:
        serving, newest = self._serving, self._cameras[0].buffer.newest()
        now = self._now()
        age = now - newest.stamp if newest else float("inf")
        state = self._lifecycle_state()
        level, message = DiagnosticStatus.OK, "ready"
        if state != "active":
            level, message = DiagnosticStatus.WARN, state
        elif newest is None or age > serving.policy.deadline_s:
            level, message = DiagnosticStatus.WARN, "no fresh camera frames"
        config = self.config
        clock = self._clocks.reading(self.get_clock().ros_time_is_active, now,
                                     config.frame_stamp, config.clock_tolerance_s,
                                     config.deadline_s)
        if clock.level > level[0]:  # the clock's trouble is the headline
            level, message = bytes([clock.level]), clock.message
        elif clock.message:
            message = f"{message}; {clock.message}"
        values = {**self._diagnostic_values(serving, age, state), "node_clock_s": round(now, 3),
                  **clock.values}
        status = DiagnosticStatus(
            level=level, name=f"{self.get_name()}: grasp success", message=message,
            hardware_id=self.get_fully_qualified_name(),
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)

    def _diagnostic_values(self, serving: Serving | None, age: float, state: str) -> dict:
        return {
            "state": state, "model_loaded": serving is not None,
            "model": serving.classifier.source if serving else "",
            "device": serving.classifier.device if serving else "",
            "last_load_error": self._last_load_error,
            "threshold": serving.policy.threshold if serving else "",
            "threshold_failure": "" if serving is None or serving.policy.threshold_failure is None
            else serving.policy.threshold_failure,
            "camera_rate_hz": round(self._cameras[0].buffer.rate_hz(), 2),
            "newest_frame_age_s": round(age, 3),
            "pending_events": sum(len(camera.pending) for camera in self._cameras),
            **{f"{c.topics.name}.camera_rate_hz": round(c.buffer.rate_hz(), 2)
               for c in self._cameras[1:]},
            **self._stats.as_dict(),
            **self._times.medians(),
        }


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
    # one more thread per further camera: its trigger group
    executor = NodeExecutor(num_threads=EXECUTOR_THREADS + len(node._cameras) - 1)
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
