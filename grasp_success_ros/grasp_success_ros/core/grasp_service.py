"""The grasp service: from frames and grasp events on a timeline to exactly one record each.

One engine for the live node and the recordings. It owns, per camera, the frame buffer, the
events waiting for frames (trigger events and VerifyGrasp goals), the streaming scores of
``n_after``; for all cameras, the model that serves with its policy (and one staged to swap
in), the answer counts and the stage timings. Its interface is plain calls with the time
passed in: a frame arrives, an event arrives, "answer what is ready now", "when is the next
deadline", "a goal was cancelled", deactivate. It never reads a clock of its own: ``now`` is
the frames' clock (ROS time at the node, the log time in a bag) and ``steady`` a monotonic
clock it is given (the node's ``time.monotonic``; a bag's log time), so a test or a bag
drives it on any timeline.

No ROS, no ML framework, no image library: the model is a :class:`Scorer` and the frame
decoder a callable, both given by the caller (``ros/node.py``, ``bags/evaluate.py``).
Thread-safe: the node's camera, trigger, worker, action and timer threads call it at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import count
from typing import Any, Protocol

import numpy as np

from grasp_success_ros.core.clocks import ClockWatch, no_clock_reason, skew_reason, trigger_note
from grasp_success_ros.core.evidence import (
    HandWitness,
    JointOpinion,
    fuse_record,
    vision_only,
)
from grasp_success_ros.core.frame_buffer import FrameBuffer
from grasp_success_ros.core.hold import Hold, HoldConfig, HoldReport
from grasp_success_ros.core.joints import JointSample
from grasp_success_ros.core.judge import (
    Frame,
    GraspEvent,
    GraspRecord,
    Judgement,
    failure_record,
    judge_batch,
)
from grasp_success_ros.core.pending import AnswerStats, FrameScores, PendingEvents, StageTimes
from grasp_success_ros.core.policy import PolicyConfig, Selection, frames_so_far, select_frames
from grasp_success_ros.core.stamps import ns_to_s
from grasp_success_ros.core.triggers import TriggerInfo

# After its deadline plus this (steady seconds), an event is judged with the frames it has,
# whatever the frames' clock says (a simulated clock that stopped).
BACKSTOP_S = 5.0
DEADLINE_MARGIN_S = 0.001  # a deadline is passed once the clock is beyond it
DEACTIVATED = ("deactivated", "the node is not active")
DEACTIVATED_WAITING = ("deactivated", "the node was deactivated before frames for this event "
                       "arrived")
CANCELED = ("canceled", "the goal was cancelled before its event was judged")


class Scorer(Protocol):
    """What the service needs of a model (``model.classifier.GraspClassifier`` is one)."""

    @property
    def source(self) -> str: ...  # the model's path, named in every record

    @property
    def device(self) -> str: ...  # what runs it, for /diagnostics

    def prepare(self, images: list[np.ndarray]) -> Any: ...

    def predict_prepared(self, batch: Any) -> np.ndarray: ...


@dataclass(frozen=True)
class PredictFunction:
    """A plain ``predict(images) -> P(success)`` as a :class:`Scorer`, for tools and tests
    that hold a function rather than a classifier."""

    predict: Callable[[list[np.ndarray]], Any]
    source: str = ""
    device: str = "function"

    def prepare(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return images

    def predict_prepared(self, batch: list[np.ndarray]) -> np.ndarray:
        return np.asarray(self.predict(batch), dtype=np.float64)


@dataclass(frozen=True)
class Serving:
    """The model that answers and its policy (the card's thresholds): swapped as one."""

    scorer: Scorer
    policy: PolicyConfig

    def policy_for(self, event: GraspEvent) -> PolicyConfig:
        """The policy with the event's own overrides (a VerifyGrasp goal's)."""
        return self.policy.replace(**event.overrides) if event.overrides else self.policy


@dataclass(frozen=True)
class Answer:
    """One event's one record, with the frames that judged it (empty if none did)."""

    camera: int
    record: GraspRecord
    event: GraspEvent
    frames: tuple[Frame, ...] = ()


@dataclass(frozen=True)
class Progress:
    """A waiting goal's frames so far (VerifyGrasp feedback), reported when it changes."""

    event_id: int
    collected: int
    needed: int


@dataclass
class Pass:
    """What one pass produced: the answers to publish and the goals' progress."""

    answers: list[Answer] = field(default_factory=list)
    progress: list[Progress] = field(default_factory=list)
    holds: list[HoldReport] = field(default_factory=list)  # holds that ended (core/hold.py)


@dataclass(frozen=True)
class Intake:
    """An event taken in: its id and time, its answer when it got one at once (rejected,
    or the service inactive), and a clock note worth a warning (else None)."""

    event: GraspEvent
    answer: Answer | None = None
    note: str | None = None


class CameraState:
    """One camera's frames, waiting events and streaming scores, and its hand's witness
    when it has a hand profile (``core/evidence.py``)."""

    def __init__(self, buffer_size: int, steady: Callable[[], float],
                 hand: HandWitness | None = None) -> None:
        self.buffer = FrameBuffer(buffer_size, clock=steady)
        self.pending = PendingEvents()
        self.scores = FrameScores()
        self.frame_id = ""  # the newest frame's, for answers that judged no frame
        self.hand = hand
        self.hold: Hold | None = None  # watching since a SUCCESS (core/hold.py)


class GraspService:
    """Frames and events in, one record per event out; see the module docstring."""

    def __init__(self, cameras: int, decode: Callable[[Any], np.ndarray], buffer_size: int,
                 streaming: bool = True, steady: Callable[[], float] | None = None,
                 hands: Sequence[HandWitness | None] = (),
                 hold: HoldConfig | None = None) -> None:
        """``hands``: each camera's hand witness (None or missing: that camera is judged by
        vision alone); ``hold``: the watch after a SUCCESS (off by default)."""
        if steady is None:
            raise ValueError("GraspService needs a steady clock (time.monotonic, a bag's)")
        self._decode, self._steady, self._streaming = decode, steady, streaming
        self._buffer_size = buffer_size
        self.hold_config = (hold or HoldConfig()).validate()
        self.cameras = [CameraState(buffer_size, steady) for _ in range(cameras)]
        self.equip(hands)
        self._serving: Serving | None = None
        self._staged: Scorer | None = None
        self._accepting = False
        self._event_ids = count(1)
        self._goals: dict[int, int] = {}  # event_id -> frames reported (-1: none yet)
        self._intake_lock = threading.Lock()  # intake vs deactivate
        self._answer_lock = threading.Lock()  # one pass at a time: one answer per event
        self.stats = AnswerStats()
        self.times = StageTimes()
        self.clocks = ClockWatch(clock=steady)

    # --- the model ---------------------------------------------------------------------

    @property
    def serving(self) -> Serving | None:
        return self._serving

    def serve(self, scorer: Scorer, policy: PolicyConfig) -> None:
        """Answer with ``scorer`` under ``policy`` from the next pass on (one assignment: a
        pass judges with the old or the new, never a mix)."""
        self._serving = Serving(scorer, policy)

    def stage(self, scorer: Scorer | None) -> None:
        """Hold a loaded model until :meth:`commit` swaps it in (a parameter set validated
        then committed)."""
        self._staged = scorer

    def commit(self, policy_of: Callable[[Scorer], PolicyConfig]) -> tuple[str, str] | None:
        """Serve the staged model (or keep the one serving) with ``policy_of`` it; returns
        (old, new) sources when a model was swapped in."""
        staged, self._staged = self._staged, None
        old = self._serving
        if old is None:
            return None
        scorer = staged or old.scorer
        self.serve(scorer, policy_of(scorer))
        return (old.scorer.source, scorer.source) if staged is not None else None

    def equip(self, hands: Sequence[HandWitness | None]) -> None:
        """Each camera's hand witness from now on (None or missing: vision alone); the node
        reads its hand profiles at configure, before it serves."""
        n = len(self.cameras)
        self._hands = [*hands, *[None] * (n - len(hands))][:n]
        for camera, hand in zip(self.cameras, self._hands, strict=True):
            camera.hand = hand

    def clear_frames(self) -> None:
        """Forget every buffered frame (their times were taken another way)."""
        for camera in self.cameras:
            camera.buffer.clear()

    # --- lifecycle -----------------------------------------------------------------------

    def activate(self) -> None:
        with self._intake_lock:
            self._accepting = True

    def deactivate(self, now: float, clock_set: bool = True) -> Pass:
        """Stop taking events; answer every pending one now: judged if its frames are here,
        else a ``deactivated`` failure record."""
        with self._intake_lock:
            self._accepting = False
        out = self.answer_ready(now, clock_set, final=True)
        with self._answer_lock:
            out.holds += [self._end_hold(camera, "ended", now, "the node was deactivated")
                          for camera in self.cameras if camera.hold is not None]
        return out

    def cleanup(self) -> None:
        """Free the model and the frames (the scorer's memory goes with the last reference)."""
        self._serving = self._staged = None
        self.cameras = [CameraState(self._buffer_size, self._steady, hand)
                        for hand in self._hands]
        for hand in self._hands:
            if hand is not None:
                hand.timeline.clear()

    @property
    def accepting(self) -> bool:
        return self._accepting

    # --- intake --------------------------------------------------------------------------

    def frame(self, camera: int, header_s: float, now: float, payload: Any,
              frame_id: str = "", clock_set: bool = True) -> tuple[bool, str | None]:
        """A frame arrived at ``now``, stamped ``header_s`` (0: not stamped), undecoded;
        timed by its stamp or, ``frame_stamp: arrival``, by ``now``. Returns (a pass is
        wanted, a note worth a warning or None)."""
        state, note = self.cameras[camera], None
        policy = self._serving.policy if self._serving else PolicyConfig()
        by_arrival = policy.frame_stamp == "arrival"
        if header_s == 0.0:
            note = "camera frames carry no stamp; using arrival time"
        elif not clock_set:
            self.clocks.frame_without_clock()
        else:  # transport, and any offset between the camera's clock and this one
            self.times.add("frame_delay", (now - header_s) * 1e3)
            self.clocks.frame(header_s - now)
            if not by_arrival:
                reason = skew_reason(header_s - now, policy.clock_tolerance_s)
                note = None if reason is None else f"camera {reason}"
        stamp = now if by_arrival or header_s == 0.0 else header_s
        state.buffer.append(Frame(stamp, payload, now if clock_set else None))
        state.frame_id = frame_id
        return bool(state.pending) or state.hold is not None, note

    def joints(self, camera: int, sample: JointSample) -> bool:
        """A joint state of the camera's hand (profile order, stamped on the frames' clock);
        returns whether a pass is wanted (events wait for their joint window)."""
        hand = self.cameras[camera].hand
        if hand is not None:
            hand.timeline.state(sample)
        state = self.cameras[camera]
        return bool(state.pending) or state.hold is not None

    def joint_command(self, camera: int, stamp: float, position: np.ndarray) -> None:
        """A command to the camera's hand (profile order): the target its joints fall short of."""
        hand = self.cameras[camera].hand
        if hand is not None:
            hand.timeline.command(stamp, position)

    def tactile(self, camera: int, stamp: float, pads: Sequence[float]) -> None:
        """The camera's hand's tactile pads' readings."""
        hand = self.cameras[camera].hand
        if hand is not None:
            hand.timeline.tactile(stamp, pads)

    def event(self, camera: int, info: TriggerInfo, now_ns: int, clock_set: bool = True,
              overrides: dict | None = None, goal: bool = False) -> Intake:
        """A trigger (or a goal) arrived at ``now_ns``: pending until its frames come, or
        answered at once when rejected (Bool false) or while inactive."""
        stamp_ns = now_ns if info.stamp_ns is None else info.stamp_ns
        event = GraspEvent(next(self._event_ids), info.stamp, self._steady(), info.trigger,
                           stamp_ns=stamp_ns, overrides=dict(overrides or {}),
                           grasp_id=info.grasp_id)
        note = self._watch_trigger(info.stamp_ns, now_ns, clock_set)
        with self._intake_lock:
            accepting = self._accepting and self._serving is not None
            if accepting and not info.rejection:
                self.cameras[camera].pending.add(event)
                if goal:
                    self._goals[event.event_id] = -1
        rejection = info.rejection if accepting else DEACTIVATED
        if rejection is None:
            return Intake(event, None, note)
        return Intake(event, self._failure(camera, event, rejection), note)

    def cancel(self, event_id: int) -> Answer | None:
        """Withdraw a waiting event (a cancelled goal): its one answer now, a ``canceled``
        failure record; None when it has had its answer (judged, failed, cancelled) or was
        never waiting. Under the answer lock, so a pass judging it at the same moment and
        this call cannot both answer it."""
        with self._answer_lock:
            for index, camera in enumerate(self.cameras):
                for event in camera.pending.snapshot():
                    if event.event_id == event_id and camera.pending.remove(event):
                        return self._failure(index, event, CANCELED)
        return None

    def _watch_trigger(self, stamp_ns: int | None, now_ns: int, clock_set: bool) -> str | None:
        """A Header trigger's or goal's own stamp minus its arrival, for /diagnostics."""
        if stamp_ns is None or not clock_set:
            return None
        ahead_s = ns_to_s(stamp_ns - now_ns)
        self.clocks.trigger(ahead_s)
        policy = self._serving.policy if self._serving else PolicyConfig()
        note = trigger_note(ahead_s, policy.clock_tolerance_s)
        return None if note is None else note[1]

    def _failure(self, camera: int, event: GraspEvent, why: tuple[str, str],
                 frames: Sequence[Frame] = ()) -> Answer:
        serving = self._serving
        policy = serving.policy_for(event) if serving else PolicyConfig()
        model = serving.scorer.source if serving else ""
        return self._answered(Answer(camera, failure_record(event, policy, *why, model=model),
                                     event, tuple(frames)))

    def _answered(self, answer: Answer) -> Answer:
        """Stamp the record's latency on the steady clock and count it."""
        answer.record.latency_ms = round(
            (self._steady() - answer.event.received_steady) * 1e3, 3)
        self.stats.count(answer.record)
        self._goals.pop(answer.event.event_id, None)
        return answer

    # --- answering -----------------------------------------------------------------------

    def answer_ready(self, now: float, clock_set: bool = True, final: bool = False) -> Pass:
        """Answer every pending event whose frames are here or whose deadline passed
        (``final``: every pending event). The events ready together, of all cameras, are
        judged with one forward pass over all their frames (``judge_batch``); those left
        waiting are streamed and their goals' progress reported."""
        with self._answer_lock:
            serving = self._serving  # one model per pass: a swap lands between passes
            out = Pass()
            if serving is None:
                return out
            ready: list[tuple[int, Judgement]] = []
            for index in range(len(self.cameras)):
                ready += self._ready_events(index, serving, now, clock_set, final, out)
            records = self._judge([job for _, job in ready], serving)
            for (index, job), record in zip(ready, records, strict=True):
                record, opinion = self._witnessed(index, job, record)
                self.cameras[index].pending.remove(job.event)
                stamps = set(record.frame_stamps)
                chosen = tuple(f for f in job.frames if f.stamp in stamps)
                out.answers.append(self._answered(Answer(index, record, job.event, chosen)))
                self._start_hold(index, job, record, opinion, now, out)
            if not final:
                self._watch_holds(serving, now, out)
            return out

    def _ready_events(self, index: int, serving: Serving, now: float, clock_set: bool,
                      final: bool, out: Pass) -> list[tuple[int, Judgement]]:
        """The camera's events ready to judge; the waiting ones are streamed (or, ``final``,
        answered ``deactivated``)."""
        camera = self.cameras[index]
        events = camera.pending.snapshot()
        if not events:
            return []
        frames = camera.buffer.snapshot()
        stamps = [f.stamp for f in frames]
        known = camera.scores.known(serving.scorer)
        ready = []
        for event in events:
            policy = serving.policy_for(event)
            selection = self._select(event, policy, frames, stamps, now, clock_set)
            if selection.status != "wait" and not self._hand_waits(camera, event, policy, now):
                ready.append((index, Judgement(event, frames, selection, policy, known)))
            elif final:
                camera.pending.remove(event)
                out.answers.append(self._failure(index, event, DEACTIVATED_WAITING, frames))
            else:
                self._stream(camera, event, frames, stamps, policy, serving)
                self._progress(event, stamps, policy, out)
        camera.scores.retain(stamps)
        return ready

    def _hand_waits(self, camera: CameraState, event: GraspEvent, policy: PolicyConfig,
                    now: float) -> bool:
        """The event's joint window is not covered yet and its deadline has not passed."""
        if camera.hand is None or now > policy.deadline_at(event.stamp):
            return False
        if self._steady() > self._backstop_at(event, policy):
            return False
        return not camera.hand.ready(event.stamp, now)

    def _witnessed(self, index: int, job: Judgement, record: GraspRecord
                   ) -> tuple[GraspRecord, JointOpinion | None]:
        """The camera's record, with its hand's opinion fused in where it has a hand (and
        that opinion, which a hold starts from)."""
        hand = self.cameras[index].hand
        if hand is None:
            return vision_only(record), None
        opinion = hand.opinion(job.event.stamp)
        return fuse_record(record, opinion, hand.fusion, job.event, job.cfg), opinion

    def _select(self, event: GraspEvent, policy: PolicyConfig, frames: Sequence[Frame],
                stamps: Sequence[float], now: float, clock_set: bool) -> Selection:
        if not clock_set:  # no time to choose frames by: say what the frames carry
            newest = frames[-1].stamp if frames else None
            return Selection("fail", code="no_clock", reason=no_clock_reason(newest))
        overdue = self._steady() > self._backstop_at(event, policy)
        return select_frames(stamps, event.stamp, policy, now=None if overdue else now)

    @staticmethod
    def _backstop_at(event: GraspEvent, policy: PolicyConfig) -> float:
        return event.received_steady + policy.deadline_s + BACKSTOP_S

    def _stream(self, camera: CameraState, event: GraspEvent, frames: Sequence[Frame],
                stamps: Sequence[float], policy: PolicyConfig, serving: Serving) -> None:
        """Streaming n_after: classify the event's frames that are here as they arrive, so
        its n-th frame costs one more forward pass, not a batch of n."""
        if self._streaming and policy.selection == "n_after":
            camera.scores.add(serving.scorer, frames,
                              frames_so_far(stamps, event.stamp, policy),
                              self._timed(serving.scorer), self._decode)

    def _progress(self, event: GraspEvent, stamps: Sequence[float], policy: PolicyConfig,
                  out: Pass) -> None:
        """A waiting goal's frames stamped after its event so far, when the count changed."""
        reported = self._goals.get(event.event_id)
        if reported is None:
            return
        after = sum(1 for s in stamps if s >= event.stamp + policy.settle_s)
        collected = min(after, policy.frames_needed)
        if collected != reported:
            self._goals[event.event_id] = collected
            out.progress.append(Progress(event.event_id, collected, policy.frames_needed))

    def _judge(self, jobs: list[Judgement], serving: Serving) -> list[GraspRecord]:
        model = serving.scorer.source
        try:
            return judge_batch(jobs, self._timed(serving.scorer), self._decode, model)
        except Exception as exc:  # never down, never silent: each event still gets its record
            return [failure_record(job.event, job.cfg, "inference_error",
                                   f"{type(exc).__name__}: {exc}", model=model)
                    for job in jobs]

    def _timed(self, scorer: Scorer) -> Callable[[list[np.ndarray]], np.ndarray]:
        """The scorer's predict that records its preprocessing and forward times."""
        def predict(images: list[np.ndarray]) -> np.ndarray:
            t0 = self._steady()
            batch = scorer.prepare(images)
            t1 = self._steady()
            p = scorer.predict_prepared(batch)
            self.times.add("preprocess", (t1 - t0) * 1e3)
            self.times.add("forward", (self._steady() - t1) * 1e3)
            return p

        return predict

    # --- the watch over the hold (core/hold.py) -------------------------------------------

    def release(self, camera: int, stamp: float) -> HoldReport | None:
        """The grasp manager released the object: the camera's hold ends ``released`` (None:
        no hold was open, e.g. it was lost already)."""
        with self._answer_lock:
            if self.cameras[camera].hold is None:
                return None
            return self._end_hold(self.cameras[camera], "released", stamp)

    def _start_hold(self, index: int, job: Judgement, record: GraspRecord,
                    opinion: JointOpinion | None, now: float, out: Pass) -> None:
        """After a SUCCESS, watch this camera's hand until release (a previous hold ends)."""
        camera = self.cameras[index]
        if not self.hold_config.enabled or record.verdict is not True:
            return
        if camera.hold is not None:
            out.holds.append(self._end_hold(camera, "ended", now, "a new grasp was judged"))
        hand = (camera.hand, opinion.features) if opinion and opinion.features else None
        camera.hold = Hold(index, job.event, job.event.stamp, job.cfg.threshold,
                           record.p_vision, hand, self.hold_config,
                           last_frame=max(record.frame_stamps, default=job.event.stamp))

    def _watch_holds(self, serving: Serving, now: float, out: Pass) -> None:
        for camera in self.cameras:
            report = self._watch(camera, serving) if camera.hold is not None else None
            if report is None and camera.hold is not None and now > camera.hold.deadline:
                report = self._end_hold(camera, "timeout", camera.hold.deadline,
                                        f"no release within {camera.hold.cfg.timeout_s:g} s")
            if report is not None:
                camera.hold = None
                out.holds.append(report)

    def _watch(self, camera: CameraState, serving: Serving) -> HoldReport | None:
        """The hold's new joint states, then its due camera check; the first loss ends it."""
        hold = camera.hold
        for sample in camera.hand.timeline.after(hold.last_joint) if camera.hand else ():
            hold.last_joint = sample.stamp
            if (report := hold.joint(sample)) is not None:
                return report
        new = [f for f in camera.buffer.snapshot() if f.stamp > hold.last_frame]
        due = [f for f in new if hold.wants_frame()]
        hold.last_frame = new[-1].stamp if new else hold.last_frame
        if not due:
            return None
        try:
            [p] = self._timed(serving.scorer)([self._decode(due[-1].msg)])
        except Exception:  # a frame the hold cannot judge says nothing about the hold
            return None
        return hold.camera_p(due[-1].stamp, float(p))

    def _end_hold(self, camera: CameraState, status: str, stamp: float,
                  reason: str = "") -> HoldReport:
        report = camera.hold.end(status, stamp, reason)
        camera.hold = None
        return report

    # --- deadlines and readings ----------------------------------------------------------

    def next_deadline(self, now: float) -> float | None:
        """Seconds from ``now`` until the earliest waiting event's deadline passes, on the
        frames' clock or its steady backstop, whichever comes first (None: nothing waits)."""
        serving = self._serving
        if serving is None:
            return None
        steady, delays = self._steady(), []
        for camera in self.cameras:
            if camera.hold is not None:
                delays.append(camera.hold.deadline - now)
            for event in camera.pending.snapshot():
                policy = serving.policy_for(event)
                delays += [policy.deadline_at(event.stamp) - now,
                           self._backstop_at(event, policy) - steady]
        return min(delays) + DEADLINE_MARGIN_S if delays else None

    def pending_count(self) -> int:
        return sum(len(camera.pending) for camera in self.cameras)

    def newest_age(self, now: float) -> float:
        """Seconds since the first camera's newest frame's time (inf: none yet)."""
        newest = self.cameras[0].buffer.newest()
        return now - newest.stamp if newest else float("inf")
