"""The synthetic hand (data/hand_synth.py): the scene kinds' fixed shares, the no-training
rule right on plain grasps and wrong the planned way on the hard kinds (confidently for
half), the slip's onset where the joints show it, and the camera's side (data/synth.py)."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from grasp_success_ros.core.joints import JointSample, JointTimeline, features, rule_p_success
from grasp_success_ros.data.hand_profiles import load_profile
from grasp_success_ros.data.hand_synth import (
    HARD_KINDS,
    SCENE_SHARES,
    SLIP_S,
    EpisodeTiming,
    hand_stream,
    plan_grasps,
)
from grasp_success_ros.data.synth import grasp_stream

TIMING = EpisodeTiming()
N = 300


def timeline(plans, profile, seed: int = 1) -> tuple[JointTimeline, list]:
    """Every hand message of the grasps into one timeline; the release/slip items."""
    tl = JointTimeline(profile, maxlen=10**7)
    moments = []
    for item in hand_stream(plans, profile, seed):
        if item.kind == "joints":
            tl.state(JointSample(item.t, item.position, item.velocity, item.effort))
        elif item.kind == "command":
            tl.command(item.t, item.values)
        elif item.kind == "tactile":
            tl.tactile(item.t, item.values)
        else:
            moments.append(item)
    return tl, moments


def p_at_events(plans, profile) -> dict[str, list[tuple[float, bool]]]:
    """The rule's P(success) at each grasp event (as a bag's trigger falls: half a frame
    before the outcome), by the grasp's tag."""
    tl, _ = timeline(plans, profile)
    out = defaultdict(list)
    for plan in plans:
        start = TIMING.event_at(plan.index) - 1 / 60
        found = features(tl, start, start + profile.window_s)
        out[plan.tag].append((rule_p_success(found), plan.label))
    return out


def test_the_scene_kinds_come_in_the_issues_fixed_shares():
    plans = plan_grasps(4, N)
    counts = Counter(p.kind for p in plans)
    assert counts == {k: round(share * N) for k, share in SCENE_SHARES.items()}
    for kind in HARD_KINDS:  # the confident half and the unsure half
        flags = Counter(p.confident for p in plans if p.kind == kind)
        assert abs(flags[True] - flags[False]) <= 1
    assert all(p.confident is None for p in plans if p.kind not in HARD_KINDS)
    odd = Counter(p.kind for p in plan_grasps(4, 7))
    assert sum(odd.values()) == 7 and odd["plain"] in (3, 4)


def test_the_truth_follows_the_kind_and_slips_fall_inside_the_carry():
    plans = plan_grasps(5, N)
    assert all(p.label for p in plans if p.kind in ("hidden", "out_of_frame", "thin_soft",
                                                    "carry_slip"))
    assert not any(p.label for p in plans if p.kind == "stopped_empty")
    plain = [p.label for p in plans if p.kind == "plain"]
    assert 0.35 < np.mean(plain) < 0.65
    slips = [p.slip_after_s for p in plans if p.kind == "carry_slip"]
    assert all(0.3 <= s <= TIMING.release_after_s - SLIP_S for s in slips)
    assert plan_grasps(5, 50) == plan_grasps(5, 50) != plan_grasps(6, 50)


@pytest.mark.parametrize("name", ["allegro_v4", "allegro_v5"])
def test_the_rule_is_right_on_plain_grasps_and_wrong_the_planned_way_on_the_hard_kinds(name):
    by_tag = p_at_events(plan_grasps(2, N), load_profile(name))
    for tag in ("plain", "hidden:confident", "hidden:unsure", "out_of_frame:confident",
                "out_of_frame:unsure", "carry_slip"):  # the joints can tell
        assert all((p >= 0.5) == label and abs(p - 0.5) > 0.4 for p, label in by_tag[tag]), tag
    for tag in ("stopped_empty:confident", "thin_soft:confident"):  # confidently wrong
        assert all((p >= 0.5) != label and abs(p - 0.5) > 0.4 for p, label in by_tag[tag]), tag
    for tag in ("stopped_empty:unsure", "thin_soft:unsure"):  # near even odds
        assert all(0.25 < p < 0.75 for p, _ in by_tag[tag]), tag


def test_a_one_joint_gripper_is_wrong_confidently_where_planned():
    """A single joint is blocked or not: its unsure half cannot be unsure (rule or not)."""
    by_tag = p_at_events(plan_grasps(2, 100), load_profile("robotiq_2f85"))
    assert all((p >= 0.5) == label for p, label in by_tag["plain"])
    assert all((p >= 0.5) != label for p, label in by_tag["stopped_empty:confident"]
               + by_tag["thin_soft:confident"])


def test_the_slip_onset_is_where_the_joints_show_it():
    profile = load_profile("allegro_v4")
    plans = [p for p in plan_grasps(3, 60) if p.kind == "carry_slip"]
    tl, moments = timeline(plans, profile)
    slips = {m.grasp_index: m.t for m in moments if m.kind == "slip"}
    assert set(slips) == {p.index for p in plans}
    for plan in plans:
        onset = slips[plan.index]
        assert onset == pytest.approx(TIMING.event_at(plan.index) + plan.slip_after_s)
        before = features(tl, onset - 0.25, onset - 0.01)
        after = features(tl, onset + SLIP_S + 0.02, onset + SLIP_S + 0.2)
        assert rule_p_success(before) > 0.9 > 0.1 > rule_p_success(after)
        assert after.closure - before.closure > 0.2 and after.effort < 0.3 < before.effort
        states, _, _ = tl.window(onset - 0.1, onset + SLIP_S)
        closing = [s.stamp for s in states
                   if np.nanmean(s.velocity[profile.closing_index]) > 1.0]
        assert onset - 0.011 <= closing[0] <= onset + 0.02  # the fingers move at the onset


def test_the_command_is_the_closed_posture_and_the_release_opens_the_hand():
    profile = load_profile("allegro_v5")
    plans = plan_grasps(8, 10)
    tl, moments = timeline(plans, profile)
    releases = sorted(m.t for m in moments if m.kind == "release")
    assert len(releases) == 10
    index = profile.closing_index
    _, command, _ = tl.window(0.0, TIMING.event_at(0))
    assert 0.85 * 1.6 < np.mean(command[index]) <= 1.72
    opened = features(tl, releases[0] + 0.16, releases[0] + 0.2)
    assert opened.closure < 0.05
    _, command, _ = tl.window(0.0, releases[0] + 0.16)
    assert np.all(command[index] == 0.0)


def test_the_camera_shows_the_planned_scenes():
    """The frames' truth is the plan's, and a carry slip's scene changes at its onset."""
    plans = plan_grasps(2, 20)
    seen = defaultdict(list)
    for item in grasp_stream(2, 20, fps=10.0, height=48, width=64, plans=plans):
        if item.kind == "frame":
            seen[item.grasp_index].append(item.image)
        else:
            assert item.label == plans[item.grasp_index].label
    slip = next(p for p in plans if p.kind == "carry_slip")
    frames = seen[slip.index]
    k = int((TIMING.approach_s + TIMING.lead_s + slip.slip_after_s) * 10) + 1
    assert np.abs(frames[k].astype(int) - frames[k - 2].astype(int)).mean() > 3
