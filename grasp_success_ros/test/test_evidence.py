"""More than one witness, in-process: hand profiles, the joints' rule, the fusion, and the
grasp service answering from the camera and the hand (core/hands.py, joints.py, fusion.py,
evidence.py). The camera's scorer is the frame's brightness, as in test_grasp_service."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_grasp_service import Brightness, Timeline, decode, image

from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.core.evidence import HandWitness
from grasp_success_ros.core.fusion import Fusion
from grasp_success_ros.core.grasp_service import GraspService
from grasp_success_ros.core.hands import HandProfile
from grasp_success_ros.core.joints import JointSample, JointTimeline, features, rule_p_success
from grasp_success_ros.core.policy import PolicyConfig
from grasp_success_ros.core.triggers import TriggerInfo
from grasp_success_ros.data.hand_profiles import load_profile, shipped_profiles

ALLEGRO = load_profile("allegro_v4")


def hand_state(profile: HandProfile, t: float, closure: float, effort: float,
               speed: float = 0.0) -> JointSample:
    """The hand with every closing joint at ``closure`` of its range, pushing ``effort``."""
    position = np.zeros(len(profile.joints))
    for joint, k in zip(profile.closing, profile.closing_index, strict=True):
        position[k] = joint.open + closure * (joint.closed - joint.open)
    n = len(profile.joints)
    return JointSample(t, position, np.full(n, speed), np.full(n, effort))


def timeline_of(*samples: JointSample, profile: HandProfile = ALLEGRO) -> JointTimeline:
    timeline = JointTimeline(profile)
    for sample in samples:
        timeline.state(sample)
    return timeline


# --- profiles ------------------------------------------------------------------------------

def test_the_shipped_profiles_name_their_hands_and_load_by_name():
    assert set(shipped_profiles()) >= {"allegro_v4", "allegro_v5", "robotiq_2f85"}
    v5, gripper = load_profile("allegro_v5"), load_profile("robotiq_2f85")
    assert len(ALLEGRO.joints) == 16 and ALLEGRO.command_type == "none"
    assert v5.tactile_pads == 16 and v5.command_type == "float64_multi_array"
    assert len(gripper.joints) == 1 and gripper.effort_limit is None


def test_a_users_profile_is_a_yaml_file_and_its_mistakes_are_named(tmp_path):
    good = tmp_path / "my_gripper.yaml"
    good.write_text("hand: mine\njoints: [finger]\nclosing: [{name: finger, open: 0.0, "
                    "closed: 0.04}]\n")
    assert load_profile(str(good)).closing[0].closed == 0.04
    bad = tmp_path / "typo.yaml"
    bad.write_text("hand: mine\njoints: [finger]\nclosing: [{name: fingr, open: 0, closed: 1}]\n")
    with pytest.raises(ConfigError, match="typo.yaml: closing joints must be among joints"):
        load_profile(str(bad))
    with pytest.raises(ConfigError, match="neither a shipped one"):
        load_profile("allegro_v9")


def test_a_message_is_read_by_joint_name_whatever_its_order():
    names = list(reversed(ALLEGRO.joints))
    values = np.arange(16.0)[::-1]
    assert ALLEGRO.reorder(names, values).tolist() == list(np.arange(16.0))
    assert np.isnan(ALLEGRO.reorder(["joint00"], [1.0])[1:]).all()


# --- the rule ------------------------------------------------------------------------------

def test_fingers_stopped_short_and_pushing_mean_something_is_held():
    held = features(timeline_of(hand_state(ALLEGRO, 1.05, 0.55, 0.5)), 1.0, 1.2)
    assert held.blocked == 1.0 and rule_p_success(held) > 0.9


def test_fingers_closed_to_their_limits_mean_an_empty_hand():
    empty = features(timeline_of(hand_state(ALLEGRO, 1.05, 0.99, 0.1)), 1.0, 1.2)
    assert empty.blocked == 0.0 and rule_p_success(empty) < 0.1


def test_fingers_still_moving_are_not_blocked_yet():
    moving = features(timeline_of(hand_state(ALLEGRO, 1.05, 0.55, 0.5, speed=2.0)), 1.0, 1.2)
    assert moving.blocked == 0.0


def test_a_gripper_without_effort_judges_by_where_its_finger_stopped():
    gripper = load_profile("robotiq_2f85")
    stopped = JointSample(1.05, np.array([0.45]))
    closed = JointSample(1.05, np.array([0.79]))
    p_held = rule_p_success(features(timeline_of(stopped, profile=gripper), 1.0, 1.2))
    p_empty = rule_p_success(features(timeline_of(closed, profile=gripper), 1.0, 1.2))
    assert p_held > 0.9 and p_empty < 0.1


def test_no_joint_state_in_the_window_gives_no_features():
    assert features(timeline_of(hand_state(ALLEGRO, 0.5, 0.5, 0.5)), 1.0, 1.2) is None


# --- fusion --------------------------------------------------------------------------------

def test_the_default_fusion_multiplies_the_witnesses_odds():
    p = Fusion().p_success({"vision": 0.8, "joints": 0.8})
    assert p == pytest.approx(16 / 17)  # odds 4 x 4


def test_a_missing_source_adds_nothing():
    assert Fusion().p_success({"vision": 0.7}) == pytest.approx(0.7)


def test_fusion_weights_are_checked():
    with pytest.raises(ConfigError):
        Fusion({"sonar": 1.0})


# --- the service with a hand ---------------------------------------------------------------

def hand_service(policy=None):
    clock = Timeline()
    witness = HandWitness(JointTimeline(ALLEGRO))
    svc = GraspService(1, decode, 90, True, steady=clock, hands=[witness])
    svc.serve(Brightness(), policy or PolicyConfig())
    svc.activate()
    return svc, clock


def run(svc, clock, frames=(), joints=(), event=1.0, until=1.3, step=0.01):
    """Frames (t, level) and joint states on one timeline from 0.9 s to ``until``, an event
    at ``event``; the answers of every pass."""
    answers = []
    items = sorted([(t, "frame", v) for t, v in frames] + [(s.stamp, "joints", s) for s in joints]
                   + [(event, "event", None)], key=lambda x: x[0])
    for t, kind, value in items:
        clock.t = t
        if kind == "frame":
            svc.frame(0, t, t, image(value), "hand")
        elif kind == "joints":
            svc.joints(0, value)
        else:
            svc.event(0, TriggerInfo(t, "empty"), round(t * 1e9))
        answers += svc.answer_ready(t).answers
    for t in np.arange(event, until, step):
        clock.t = float(t)
        answers += svc.answer_ready(float(t)).answers
    return answers


def joint_stream(closure, effort, start=0.9, end=1.3, hz=100):
    return [hand_state(ALLEGRO, t, closure, effort) for t in np.arange(start, end, 1 / hz)]


def test_both_witnesses_judge_and_the_verdict_carries_each_ones_p():
    svc, clock = hand_service()
    [answer] = run(svc, clock, frames=[(1.02, 204)], joints=joint_stream(0.55, 0.5))
    record = answer.record
    assert record.sources == ["vision", "joints"] and record.missing == []
    assert record.p_vision == pytest.approx(0.8) and record.p_joints > 0.9
    assert record.fusion == "default" and record.verdict is True
    assert record.p_success > max(record.p_vision, record.p_joints)


def test_an_event_waits_for_its_joint_window():
    svc, clock = hand_service()
    answers = run(svc, clock, frames=[(1.02, 204)], joints=joint_stream(0.55, 0.5, end=1.1),
                  until=1.15)
    assert answers == []  # the frame is here, the window ends at 1.2 s: still waiting
    answers = run(svc, clock, joints=joint_stream(0.55, 0.5, start=1.1, end=1.25), event=1.25,
                  until=1.26)
    assert answers[0].record.sources == ["vision", "joints"]


def test_with_the_camera_stopped_the_joints_answer_and_say_so():
    svc, clock = hand_service(PolicyConfig(deadline_s=0.5))
    [answer] = run(svc, clock, frames=[(0.95, 204)], joints=joint_stream(0.55, 0.5, end=1.6),
                   until=1.6)
    record = answer.record
    assert record.verdict is True and record.sources == ["joints"]
    assert record.missing[0].startswith("camera: no_fresh_frame")
    assert record.p_vision is None and record.p_success == pytest.approx(record.p_joints)


def test_with_the_joints_stopped_the_camera_answers_at_once_and_says_so():
    svc, clock = hand_service()
    [answer] = run(svc, clock, frames=[(1.02, 51)], joints=joint_stream(0.55, 0.5, end=0.4),
                   until=1.05)
    record = answer.record
    assert record.verdict is False and record.sources == ["vision"]
    assert record.missing == ["joints: no joint_states message stamped within 0.2 s after "
                              "the event"]


def test_with_neither_witness_the_event_gets_a_no_evidence_record():
    svc, clock = hand_service(PolicyConfig(deadline_s=0.5))
    [answer] = run(svc, clock, frames=[(0.95, 204)], until=1.6)
    record = answer.record
    assert record.error_code == "no_evidence" and record.verdict is None
    assert [m.split(":")[0] for m in record.missing] == ["camera", "joints"]


def test_the_uncertain_band_applies_to_the_fused_p():
    band = PolicyConfig(threshold=0.7, threshold_failure=0.3)
    svc, clock = hand_service(band)
    # the camera is sure of success (0.96), the joints of failure (0.04): together, unsure
    [answer] = run(svc, clock, frames=[(1.02, 245)], joints=joint_stream(0.99, 0.05))
    record = answer.record
    assert record.error_code == "uncertain" and 0.3 < record.p_success < 0.7
    assert not math.isnan(record.p_joints)


def test_without_a_hand_the_record_is_the_cameras_alone():
    clock = Timeline()
    svc = GraspService(1, decode, 90, True, steady=clock)
    svc.serve(Brightness(), PolicyConfig())
    svc.activate()
    [answer] = run(svc, clock, frames=[(1.02, 204)])
    record = answer.record
    assert record.sources == ["vision"] and record.fusion == "" and record.p_joints is None
    assert record.p_success == record.p_vision == pytest.approx(0.8)
