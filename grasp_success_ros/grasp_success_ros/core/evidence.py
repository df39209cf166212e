"""More than one witness: the camera's record and the hand's joints into one record.

The vision path (``judge.judge_selected``) gives a record as before; with a hand profile, the
hand's features over its window give a second P(success) (the profile's rule, or a trained
joint model), and :class:`Fusion` combines the sources that judged. The uncertain band applies
to the combined P. A source that could not judge is named in ``missing`` with why, and the
verdict comes from the other; with neither, the record is a ``no_evidence`` failure. Without
a profile the record is the camera's alone (``sources`` ["vision"], no fusion).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.core.fusion import DEFAULT_FUSION, Fusion
from grasp_success_ros.core.hand_card import HandCard
from grasp_success_ros.core.hands import HandProfile
from grasp_success_ros.core.joints import HandFeatures, JointTimeline, features, rule_p_success
from grasp_success_ros.core.judge import GraspEvent, GraspRecord, failure_record
from grasp_success_ros.core.policy import PolicyConfig, mean_rule

# Vision failures another witness can stand in for: the camera saw nothing usable. The
# others (not_completed, deactivated, canceled, no_clock) end the event for every witness.
CAMERA_MISSING = frozenset({"no_fresh_frame", "no_frame", "stale_frame", "bad_image",
                            "inference_error", "clock_skew"})
# With the joints silent this long (frames' clock) before an event's window closes, they
# are missing at once rather than waited for until the deadline.
JOINTS_SILENT_S = 0.5

JointScorer = Callable[[HandFeatures], float]


@dataclass(frozen=True)
class JointOpinion:
    """What the hand said about one event: its P(success) and features, or why not."""

    p_success: float | None
    features: HandFeatures | None = None
    missing: str | None = None


class HandWitness:
    """One camera's hand: its timeline, how its features become P(success) (the rule, or
    a trained model) and the fusion the verdicts use."""

    def __init__(self, timeline: JointTimeline, scorer: JointScorer | None = None,
                 fusion: Fusion = DEFAULT_FUSION) -> None:
        self.timeline, self.fusion = timeline, fusion
        self.scorer = scorer or rule_p_success

    @property
    def window_s(self) -> float:
        return self.timeline.profile.window_s

    def ready(self, event_stamp: float, now: float | None) -> bool:
        """The event's window is covered (a joint state stamped past it), or the joints
        have gone silent; ``now`` None: offline, every message is in."""
        newest = self.timeline.newest()
        end = event_stamp + self.window_s
        if now is None or (newest is not None and newest >= end):
            return True
        return newest is None or newest < min(now, end) - JOINTS_SILENT_S

    def opinion(self, event_stamp: float) -> JointOpinion:
        start, end = event_stamp, event_stamp + self.window_s
        found = features(self.timeline, start, end)
        if found is None:
            topic = self.timeline.profile.joint_states_topic
            return JointOpinion(None, None, f"joints: no {topic} message stamped within "
                                            f"{self.window_s:g} s after the event")
        return JointOpinion(round(float(self.scorer(found)), 6), found)


def hand_witness(profile: HandProfile, card: HandCard | None = None) -> HandWitness:
    """A camera's hand: the profile's rule and the default fusion, or a hand card's trained
    joint model and fitted fusion (refused when it was trained for another hand)."""
    if card is None:
        return HandWitness(JointTimeline(profile))
    if card.hand != profile.hand:
        raise ConfigError(f"hand card is for {card.hand!r}, the hand profile is "
                          f"{profile.hand!r}")
    return HandWitness(JointTimeline(profile), card.joint_model, card.fusion)


def vision_only(record: GraspRecord) -> GraspRecord:
    """The camera's record as it is, naming its one source when it judged."""
    if record.p_success is not None:
        record.p_vision, record.sources = record.p_success, ["vision"]
    return record


def fuse_record(vision: GraspRecord, joints: JointOpinion, fusion: Fusion,
                event: GraspEvent, cfg: PolicyConfig) -> GraspRecord:
    """One record from the camera's and the hand's opinions (module docstring)."""
    if vision.error_code is not None and vision.error_code not in CAMERA_MISSING | {"uncertain"}:
        return vision  # the event itself has no answer (not_completed, deactivated, ...)
    sources, missing = {}, []
    if vision.p_success is not None:
        sources["vision"] = vision.p_success
    else:
        missing.append(f"camera: {vision.error}")
    if joints.p_success is not None:
        sources["joints"] = joints.p_success
    else:
        missing.append(joints.missing or "joints: no opinion")
    hand = joints.features.as_dict() if joints.features is not None else None
    if not sources:
        record = failure_record(event, cfg, "no_evidence", "; ".join(missing),
                                vision.frame_stamps, vision.model)
        return dataclasses.replace(record, missing=missing, fusion=fusion.name,
                                   joint_features=hand)
    p = fusion.p_success(sources)
    decision = mean_rule([p], cfg.threshold, cfg.threshold_failure)
    unsure = decision.verdict is None
    return dataclasses.replace(
        vision, verdict=decision.verdict,
        confidence=None if unsure else round(decision.confidence, 6),
        p_success=round(p, 6), error=f"uncertain: {decision.why}" if unsure else None,
        error_code="uncertain" if unsure else None, p_vision=sources.get("vision"),
        p_joints=sources.get("joints"), sources=list(sources), missing=missing,
        fusion=fusion.name, joint_features=hand)
