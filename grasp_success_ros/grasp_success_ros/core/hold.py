"""A watch over the hold: after a SUCCESS, is the object still in the hand?

Most real failures are a slip while the arm carries the object, after the grasp's verdict
said SUCCESS. A :class:`Hold` watches one camera's hand from that verdict until the grasp
manager's release event or a timeout, and ends with exactly one report: ``lost`` (stamped
with the first evidence of the loss, and which sources saw it), ``released``, ``timeout``
or ``ended`` (a new grasp, the node deactivated).

Each witness watches for a change from how the hold began, not for an absolute verdict: a
hand whose camera never saw the object well (hidden by the fingers) is not "lost" for it.
- the joints (every message): the closing joints close further than at the verdict by more
  than the profile's ``short`` margin, two messages in a row (the object slipped out and the
  fingers followed their command); the first of the two stamps the loss;
- the camera (every ``camera_every``-th frame): P(success) falls below the threshold for
  ``lost_frames`` checks in a row, when it was at or above it at the verdict, and the joints
  do not contradict it (no hand, or the joints' own P(success) on their newest message is
  below the threshold too: a thin object the fingers close around is theirs to lose). A
  camera that is unsure of an unchanged scene (its P wandering across the threshold from
  frame to frame) is not a loss while the fingers still hold firmly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.core.evidence import HandWitness
from grasp_success_ros.core.joints import HandFeatures, JointSample, features_of
from grasp_success_ros.core.judge import GraspEvent

HOLD_ENDS = ("lost", "released", "timeout", "ended")
HISTORY_MAX = 400  # (stamp, source, P) points kept per hold for its report
JOINT_HISTORY_EVERY = 10  # a joint P in the history every this many messages (10 Hz at 100)


@dataclass(frozen=True)
class HoldConfig:
    """The watch's parameters (the node's hold_* parameters)."""

    enabled: bool = False
    camera_every: int = 5  # judge every n-th camera frame during the hold (0: joints only)
    timeout_s: float = 60.0  # a hold with no release event ends ``timeout`` after this
    lost_frames: int = 2  # camera checks below the threshold in a row that make a loss

    def validate(self) -> HoldConfig:
        if self.camera_every < 0 or self.lost_frames < 1 or not self.timeout_s > 0:
            raise ConfigError("hold: camera_every >= 0, lost_frames >= 1, timeout_s > 0")
        return self


@dataclass
class HoldReport:
    """How one hold ended; ``history``: (stamp, source, P(success)) over the hold."""

    camera: int
    event: GraspEvent
    status: str
    stamp: float
    started: float
    sources: list[str] = field(default_factory=list)
    reason: str = ""
    history: list[tuple[float, str, float]] = field(default_factory=list)


class Hold:
    """One camera's hold since a SUCCESS verdict (module docstring). ``hand``: the camera's
    hand witness and its features at the verdict (None: the camera watches alone)."""

    def __init__(self, camera: int, event: GraspEvent, started: float, threshold: float,
                 p_vision: float | None, hand: tuple[HandWitness, HandFeatures] | None,
                 cfg: HoldConfig, last_frame: float | None = None) -> None:
        """``last_frame``: the newest frame already judged (the verdict's)."""
        self.camera, self.event, self.started, self.cfg = camera, event, started, cfg
        self.last_joint = started  # the newest joint state the watch has taken
        self.last_frame = started if last_frame is None else last_frame
        self._threshold, self._hand = threshold, hand
        self._camera_saw_it = p_vision is not None and p_vision >= threshold
        self._joint_run: list[float] = []  # stamps of consecutive "closed further" messages
        self._camera_run: list[float] = []
        self._frames_seen = self._joints_seen = 0
        self._joint_p: float | None = None  # the joints' P(success) on their newest message
        self.history: list[tuple[float, str, float]] = []

    @property
    def deadline(self) -> float:
        return self.started + self.cfg.timeout_s

    def joint(self, sample: JointSample) -> HoldReport | None:
        """One joint state during the hold; the ``lost`` report when it confirms a slip."""
        if self._hand is None or sample.stamp < self.started:
            return None
        witness, at_verdict = self._hand
        now = features_of(witness.timeline.profile, [sample])
        if not math.isfinite(now.closure) or not math.isfinite(at_verdict.closure):
            return None
        self._joints_seen += 1
        self._joint_p = float(witness.scorer(now))
        if self._joints_seen % JOINT_HISTORY_EVERY == 1:
            self._note(sample.stamp, "joints", self._joint_p)
        further = now.closure - at_verdict.closure
        short = witness.timeline.profile.margins.short
        self._joint_run = self._joint_run + [sample.stamp] if further > short else []
        if len(self._joint_run) >= 2:
            return self._lost(self._joint_run[0], "joints", f"the closing joints closed "
                              f"{further:.2f} of their range further than at the verdict")
        return None

    def wants_frame(self) -> bool:
        """Count a frame; True when this one is due a camera check."""
        if not self.cfg.camera_every or not self._camera_saw_it:
            return False
        self._frames_seen += 1
        return self._frames_seen % self.cfg.camera_every == 0

    def camera_p(self, stamp: float, p: float) -> HoldReport | None:
        """A camera check's P(success); the ``lost`` report when enough checks fall short."""
        self._note(stamp, "vision", p)
        self._camera_run = self._camera_run + [stamp] if p < self._threshold else []
        held = self._joint_p is not None and self._joint_p >= self._threshold
        if len(self._camera_run) >= self.cfg.lost_frames and not held:
            return self._lost(self._camera_run[0], "vision", f"the camera's P(success) fell "
                              f"below {self._threshold:g} for {len(self._camera_run)} checks")
        return None

    def end(self, status: str, stamp: float, reason: str = "") -> HoldReport:
        return HoldReport(self.camera, self.event, status, stamp, self.started, [], reason,
                          self.history)

    def _lost(self, stamp: float, source: str, reason: str) -> HoldReport:
        sources = [source]
        other = self._camera_run if source == "joints" else self._joint_run
        if other:  # the other witness was seeing it too
            sources.append("vision" if source == "joints" else "joints")
            stamp = min(stamp, other[0])
        return HoldReport(self.camera, self.event, "lost", stamp, self.started, sources,
                          reason, self.history)

    def _note(self, stamp: float, source: str, value: float) -> None:
        if len(self.history) < HISTORY_MAX and math.isfinite(value):
            self.history.append((stamp, source, round(value, 4)))
