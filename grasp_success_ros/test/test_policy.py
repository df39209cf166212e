"""The decision policy: which frames judge an event, and how they become one verdict."""

import numpy as np
import pytest

from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.core.policy import (
    PolicyConfig,
    decide,
    frames_so_far,
    is_failure,
    is_success,
    mean_rule,
    select_frames,
    thresholds_for,
    verdicts,
    vote,
)

STAMPS = [10.0, 10.1, 10.2, 10.3, 10.4, 10.5, 10.6]


def test_first_after_takes_the_first_frame_stamped_at_or_after_the_event():
    assert select_frames(STAMPS, 10.15, PolicyConfig()).indices == (2,)
    assert select_frames(STAMPS, 10.2, PolicyConfig()).indices == (2,)


def test_settle_delay_moves_the_first_usable_frame():
    assert select_frames(STAMPS, 10.0, PolicyConfig(settle_s=0.25)).indices == (3,)


def test_live_selection_waits_for_a_frame_until_the_deadline():
    cfg = PolicyConfig(deadline_s=1.0)
    assert select_frames(STAMPS, 10.65, cfg, now=11.0).status == "wait"
    late = select_frames(STAMPS, 10.65, cfg, now=11.7)
    assert late.status == "fail" and late.code == "no_fresh_frame"


def test_offline_selection_fails_at_once_when_no_frame_follows():
    assert select_frames(STAMPS, 10.65, PolicyConfig(), now=None).code == "no_fresh_frame"


def test_frames_after_the_deadline_do_not_count():
    sel = select_frames([10.0, 13.0], 10.5, PolicyConfig(deadline_s=2.0))
    assert sel.status == "fail"


def test_n_after_takes_n_consecutive_frames_after_the_event():
    cfg = PolicyConfig(selection="n_after", n_frames=3)
    assert select_frames(STAMPS, 10.15, cfg).indices == (2, 3, 4)
    assert select_frames(STAMPS, 10.45, cfg, now=10.7).status == "wait"


def test_latest_takes_the_newest_frame_at_the_event_if_fresh():
    cfg = PolicyConfig(selection="latest", max_frame_age_s=0.2)
    assert select_frames(STAMPS, 10.45, cfg).indices == (4,)
    stale = select_frames(STAMPS, 11.0, cfg)
    assert stale.code == "stale_frame" and "0.400 s old" in stale.reason


def test_latest_without_an_earlier_frame_fails():
    assert select_frames(STAMPS, 9.0, PolicyConfig(selection="latest")).code == "no_frame"


def test_an_empty_buffer_waits_then_fails():
    assert select_frames([], 5.0, PolicyConfig(), now=5.1).status == "wait"
    assert select_frames([], 5.0, PolicyConfig(), now=None).status == "fail"


def test_mean_combination_thresholds_the_mean_probability():
    d = decide([0.9, 0.7, 0.2], PolicyConfig(threshold=0.5))
    assert d.verdict is True and d.p_success == pytest.approx(0.6)
    assert d.confidence == pytest.approx(0.6)


def test_confidence_is_the_probability_of_the_published_verdict():
    d = decide([0.1], PolicyConfig())
    assert d.verdict is False and d.confidence == pytest.approx(0.9)


def test_threshold_direction_success_at_or_above():
    assert decide([0.7], PolicyConfig(threshold=0.7)).verdict is True
    assert decide([0.69], PolicyConfig(threshold=0.7)).verdict is False


def test_vote_needs_more_than_half_of_the_frames():
    cfg = PolicyConfig(combine="vote", threshold=0.5)
    assert decide([0.9, 0.9, 0.1, 0.1], cfg).verdict is False
    d = decide([0.9, 0.6, 0.1], cfg)
    assert d.verdict is True and d.confidence == pytest.approx(2 / 3)


def test_is_success_thresholds_floats_and_arrays_at_or_above():
    assert is_success(0.7, 0.7) is True and is_success(0.69, 0.7) is False
    assert is_success(np.array([0.2, 0.7, 0.9]), 0.7).tolist() == [False, True, True]


def test_vote_says_success_when_more_than_fraction_of_the_frames_reach_the_threshold():
    p = [0.9, 0.9, 0.9, 0.1]  # 3 of 4 say success
    assert vote(p, 0.5).verdict is True and vote(p, 0.5, fraction=0.74).verdict is True
    assert vote(p, 0.5, fraction=0.75).verdict is False
    assert vote(p, 0.5, fraction=0.75).confidence == pytest.approx(1 / 4)


def test_decide_combines_with_the_mean_rule_or_the_vote_of_the_policy():
    p = [0.9, 0.9, 0.1, 0.1]
    assert decide(p, PolicyConfig()) == mean_rule(p, 0.5)
    assert decide(p, PolicyConfig(combine="vote")) == vote(p, 0.5)


def test_a_decision_needs_at_least_one_probability():
    with pytest.raises(ValueError):
        decide([], PolicyConfig())
    with pytest.raises(ValueError):
        vote([], 0.5)


@pytest.mark.parametrize("bad", [dict(selection="middle"), dict(n_frames=0),
                                 dict(threshold=1.5), dict(deadline_s=0.1, settle_s=0.2)])
def test_invalid_policies_are_refused(bad):
    with pytest.raises(ConfigError):
        PolicyConfig(**bad).validate()


# --------------------------------------------------------------------------- two thresholds

BAND = PolicyConfig(threshold=0.7, threshold_failure=0.3)


def test_between_the_two_thresholds_there_is_no_verdict_and_no_confidence():
    assert decide([0.7], BAND).verdict is True and decide([0.3], BAND).verdict is False
    for p in (0.31, 0.5, 0.69):
        d = decide([p], BAND)
        assert d.verdict is None and d.confidence is None and d.p_success == pytest.approx(p)
    assert decide([0.5], BAND).why == ("P(success) 0.5000 lies between threshold_failure 0.3 "
                                       "and threshold 0.7")


def test_a_failure_threshold_equal_to_the_threshold_is_one_threshold():
    p = np.linspace(0.0, 1.0, 101)
    assert verdicts(p, 0.42, 0.42) == verdicts(p, 0.42) == is_success(p, 0.42).tolist()
    assert is_failure(0.41, 0.42) is True and is_failure(0.42, 0.42, 0.42) is False


def test_the_mean_of_several_frames_is_judged_against_the_band():
    assert decide([0.9, 0.2], BAND).verdict is None  # mean 0.55
    assert decide([0.9, 0.6], BAND).verdict is True and decide([0.1, 0.4], BAND).verdict is False


def test_a_vote_with_a_band_needs_a_majority_the_unsure_frames_could_not_overturn():
    vote_band = BAND.replace(combine="vote")
    assert decide([0.9, 0.9, 0.5], vote_band).verdict is True  # 2 of 3 even if 0.5 said no
    assert decide([0.9, 0.5, 0.1], vote_band).verdict is None  # 1 yes, 1 no, 1 unsure
    d = decide([0.1, 0.1, 0.5, 0.9], vote_band)  # 2 no, 1 unsure, 1 yes: 2 yes at most
    assert d.verdict is False and d.confidence == pytest.approx(0.5)
    assert decide([0.1, 0.5, 0.5, 0.9], vote_band).why == (
        "1 of 4 frames say success, 1 failure and 2 lie between threshold_failure 0.3 and "
        "threshold 0.7")


def test_the_card_pair_holds_unless_the_threshold_is_given_which_makes_one_threshold():
    assert thresholds_for(None, None, 0.8, 0.2) == (0.8, 0.2)
    assert thresholds_for(-1.0, -1.0, 0.8, 0.2) == (0.8, 0.2)
    assert thresholds_for(0.6, -1.0, 0.8, 0.2) == (0.6, None)
    assert thresholds_for(0.6, 0.4, 0.8, None) == (0.6, 0.4)


@pytest.mark.parametrize("given", [(-1.0, 0.4), (0.3, 0.4)])
def test_a_failure_threshold_alone_or_above_the_threshold_is_refused(given):
    with pytest.raises(ConfigError, match="threshold_failure"):
        thresholds_for(*given, 0.5, None)


def test_a_policy_with_the_failure_threshold_above_the_threshold_is_refused():
    with pytest.raises(ConfigError, match="threshold_failure must be in"):
        PolicyConfig(threshold=0.5, threshold_failure=0.6).validate()


def test_frames_so_far_are_the_n_after_frames_that_have_arrived_while_the_event_waits():
    cfg = PolicyConfig(selection="n_after", n_frames=3)
    assert frames_so_far(STAMPS[:4], 10.15, cfg) == (2, 3)
    assert frames_so_far(STAMPS, 10.15, cfg) == select_frames(STAMPS, 10.15, cfg).indices
    assert frames_so_far(STAMPS, 10.15, PolicyConfig(selection="first_after")) == ()
