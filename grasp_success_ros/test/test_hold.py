"""The watch over the hold (core/hold.py through the grasp service), in-process: after a
SUCCESS the service watches the hand until release, and every hold ends with one report."""

from __future__ import annotations

import numpy as np
import pytest
from test_evidence import ALLEGRO, hand_state
from test_grasp_service import Brightness, Timeline, decode, image

from grasp_success_ros.core.evidence import HandWitness
from grasp_success_ros.core.grasp_service import GraspService
from grasp_success_ros.core.hold import HoldConfig
from grasp_success_ros.core.joints import JointTimeline
from grasp_success_ros.core.policy import PolicyConfig
from grasp_success_ros.core.triggers import TriggerInfo

HELD, EMPTY = 0.55, 0.99  # closing joints' closure holding an object / closed on nothing


def watched(hold=None, hand=True):
    clock = Timeline()
    hands = [HandWitness(JointTimeline(ALLEGRO))] if hand else []
    svc = GraspService(1, decode, 90, True, steady=clock, hands=hands,
                       hold=hold or HoldConfig(enabled=True, camera_every=3))
    svc.serve(Brightness(), PolicyConfig())
    svc.activate()
    return svc, clock


def episode(svc, clock, end, closure=lambda t: HELD, level=lambda t: 204, event=1.0,
            release=None, hand=True, noise=0.0, seed=0):
    """Frames at 30 Hz and joint states at 100 Hz from 0.9 s to ``end`` on one timeline, a
    grasp event at ``event`` and a release at ``release``; the verdicts and hold reports."""
    rng = np.random.default_rng(seed)
    items = [(t, "frame") for t in np.arange(0.9, end, 1 / 30)]
    items += [(t, "joints") for t in np.arange(0.9, end, 1 / 100)] if hand else []
    items += [(event, "event")] + ([(release, "release")] if release else [])
    answers, holds = [], []
    for t, kind in sorted(items):
        t = float(t)
        clock.t = t
        if kind == "frame":
            svc.frame(0, t, t, image(level(t)), "hand")
        elif kind == "joints":
            sample = hand_state(ALLEGRO, t, closure(t) + rng.normal(0, noise), 0.5)
            svc.joints(0, sample)
        elif kind == "event":
            svc.event(0, TriggerInfo(t, "empty"), round(t * 1e9))
        elif (report := svc.release(0, t)) is not None:
            holds.append(report)
        passed = svc.answer_ready(t)
        answers += passed.answers
        holds += passed.holds
    return answers, holds


def test_a_slip_during_the_carry_is_reported_lost_at_its_first_joint_message():
    svc, clock = watched()
    answers, holds = episode(svc, clock, 3.0, closure=lambda t: HELD if t < 2.0 else EMPTY,
                             release=2.9)
    assert answers[0].record.verdict is True
    [lost] = holds
    assert lost.status == "lost" and lost.sources[0] == "joints"
    assert lost.stamp == pytest.approx(2.0, abs=0.011)
    assert lost.event.event_id == answers[0].event.event_id and lost.history


def test_a_hold_that_ends_normally_is_reported_released_and_never_lost():
    svc, clock = watched()
    _, holds = episode(svc, clock, 3.0, release=2.5, noise=0.02)
    assert [(h.status, h.stamp) for h in holds] == [("released", 2.5)]


def test_the_camera_alone_sees_the_object_fall_out_of_view():
    svc, clock = watched(hand=False)
    _, holds = episode(svc, clock, 3.0, level=lambda t: 204 if t < 2.0 else 40, hand=False,
                       release=2.9)
    [lost] = holds
    assert lost.status == "lost" and lost.sources == ["vision"]
    assert 2.0 <= lost.stamp <= 2.0 + 3 * 3 / 30  # within the checks of every 3rd frame


def test_a_camera_unsure_of_a_firm_hold_is_not_a_loss():
    svc, clock = watched()
    # the camera's P wanders across the threshold frame by frame; the fingers hold firmly
    answers, holds = episode(svc, clock, 3.0, level=lambda t: 204 if t < 1.2 or
                             int(t * 30) % 2 else 60, release=2.9)
    assert answers[0].record.verdict is True
    assert [h.status for h in holds] == ["released"]


def test_the_camera_sees_a_thin_object_leave_that_the_fingers_cannot_feel():
    svc, clock = watched()
    thin = 0.93  # closed almost fully around it: the joints' rule says "empty"
    answers, holds = episode(svc, clock, 3.0, closure=lambda t: thin,
                             level=lambda t: 255 if t < 2.0 else 30, release=2.9)
    assert answers[0].record.verdict is True and answers[0].record.p_joints < 0.5
    [lost] = holds
    assert lost.status == "lost" and lost.sources == ["vision"]


def test_a_camera_that_never_saw_the_object_cannot_lose_it():
    svc, clock = watched()
    # hidden by the fingers: the camera says failure all along, the joints say held
    answers, holds = episode(svc, clock, 3.0, level=lambda t: 60, release=2.5)
    assert answers[0].record.verdict is True and answers[0].record.p_vision < 0.5
    assert [h.status for h in holds] == ["released"]


def test_a_hold_without_a_release_times_out():
    svc, clock = watched(HoldConfig(enabled=True, timeout_s=1.0))
    _, holds = episode(svc, clock, 2.5)
    assert [(h.status, h.stamp) for h in holds] == [("timeout", 2.0)]


def test_a_hold_has_at_most_one_report():
    svc, clock = watched()
    _, holds = episode(svc, clock, 3.0, closure=lambda t: HELD if t < 1.5 else EMPTY,
                       release=2.5)
    assert [h.status for h in holds] == ["lost"]  # the release after it adds nothing


def test_a_failure_verdict_opens_no_hold():
    svc, clock = watched()
    answers, holds = episode(svc, clock, 2.0, closure=lambda t: EMPTY, level=lambda t: 30,
                             release=1.8)
    assert answers[0].record.verdict is False and holds == []


def test_the_watch_is_off_unless_enabled():
    svc, clock = watched(HoldConfig())
    _, holds = episode(svc, clock, 3.0, closure=lambda t: HELD if t < 2.0 else EMPTY,
                       release=2.9)
    assert holds == []


def test_deactivating_ends_an_open_hold():
    svc, clock = watched()
    episode(svc, clock, 1.5)
    [ended] = svc.deactivate(1.6).holds
    assert ended.status == "ended" and "deactivated" in ended.reason
