"""train-hand's fits (training/hand.py) on records of the grasp service itself: a joint model
on one set of grasps, its calibration and the fusion on another, served from a hand card."""

from __future__ import annotations

import numpy as np
import pytest
from test_evidence import ALLEGRO
from test_grasp_service import Brightness, Timeline, decode
from test_hold import episode

from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.core.evidence import hand_witness
from grasp_success_ros.core.grasp_service import GraspService
from grasp_success_ros.core.hold import HoldConfig
from grasp_success_ros.core.policy import PolicyConfig
from grasp_success_ros.data.hand_cards import load_hand_card, save_hand_card
from grasp_success_ros.data.hand_profiles import load_profile
from grasp_success_ros.training.hand import HandRows, train_hand

# (truth, closure, frame brightness): each witness is wrong on some kinds, as on a robot
KINDS = {
    "plain held": (True, 0.55, 200), "plain empty": (False, 0.99, 50),
    "hidden by the fingers": (True, 0.55, 70), "stopped on the table": (False, 0.6, 60),
    "thin object": (True, 0.93, 190),
}


def judged(seed: int, grasps: int = 40, card=None):
    """(record, truth) of ``grasps`` episodes through the service with the Allegro hand."""
    rng = np.random.default_rng(seed)
    kinds = list(KINDS)
    out = []
    for g in range(grasps):
        truth, closure, level = KINDS[kinds[g % len(kinds)]]
        closure += rng.normal(0, 0.03)
        level = int(np.clip(level + rng.normal(0, 25), 0, 255))
        clock = Timeline()
        svc = GraspService(1, decode, 90, True, steady=clock,
                           hands=[hand_witness(ALLEGRO, card)], hold=HoldConfig())
        svc.serve(Brightness(), PolicyConfig())
        svc.activate()
        answers, _ = episode(svc, clock, 1.4, closure=lambda t, c=closure: c,
                             level=lambda t, v=level: v, seed=seed * 1000 + g)
        out.append((answers[0].record, truth))
    return out


@pytest.fixture(scope="module")
def card():
    train = HandRows.of(judged(1), "train")
    holdout = HandRows.of(judged(2), "holdout")
    return train_hand(train, holdout, ALLEGRO.hand, "fitted:test",
                      {"train": ["seed 1"], "holdout": ["seed 2"]})


def accuracy(pairs, field):
    values = [(getattr(r, field), t) for r, t in pairs if getattr(r, field) is not None]
    return np.mean([(p >= 0.5) == t for p, t in values])


def test_the_fitted_fusion_is_more_accurate_than_either_witness_on_fresh_grasps(card):
    fresh = judged(3, card=card)
    fused, vision, joints = (accuracy(fresh, f) for f in ("p_success", "p_vision", "p_joints"))
    assert fused > max(vision, joints)
    assert {r.fusion for r, _ in fresh} == {"fitted:test"}


def test_a_hand_card_round_trips_through_its_file(card, tmp_path):
    path = save_hand_card(card, tmp_path / "allegro.hand.json")
    again = load_hand_card(path)
    assert again == card


def test_a_card_for_another_hand_is_refused(card):
    with pytest.raises(ConfigError, match="hand card is for 'allegro_v4'"):
        hand_witness(load_profile("robotiq_2f85"), card)


def test_too_few_grasps_cannot_train():
    with pytest.raises(ConfigError, match="need 20"):
        HandRows.of(judged(4, grasps=6), "train")
