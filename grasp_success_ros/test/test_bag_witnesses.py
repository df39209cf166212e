"""bag-eval with the node's hand card and its watch over the hold: ``--hand-model`` judges
the joints with the card's model and fuses with its fusion (a card for another hand is
refused in one line); ``--hold-watch`` feeds the release events to the same engine and
reports the holds against the bag's slip labels, without changing one record."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from test_bag_params import expect_error, setup_of

from grasp_success_ros.bags.evaluate import ServiceSettings, evaluate_bag, summarize
from grasp_success_ros.bags.holds import HoldEnd, hold_summary
from grasp_success_ros.bags.report import format_report
from grasp_success_ros.bags.topics import BagTopics, HandTopics, typestore
from grasp_success_ros.bags.writer import bool_cdr, write_session
from grasp_success_ros.cli import main as cli
from grasp_success_ros.core.fusion import Fusion
from grasp_success_ros.core.grasp_service import PredictFunction
from grasp_success_ros.core.hand_card import HandCard, JointModel
from grasp_success_ros.core.hold import HoldConfig
from grasp_success_ros.core.joints import FEATURE_NAMES
from grasp_success_ros.core.policy import PolicyConfig
from grasp_success_ros.data.hand_cards import save_hand_card
from grasp_success_ros.data.hand_profiles import load_profile
from grasp_success_ros.data.hand_synth import plan_grasps

SMALL = {"height": 96, "width": 96}
GRASPS, SEED = 20, 4  # two carry slips
V4 = load_profile("allegro_v4")
HIGH = PredictFunction(lambda images: [0.9] * len(images))
WATCH = ServiceSettings(hold=HoldConfig(enabled=True, camera_every=5, timeout_s=60.0))


def run_cli(*argv) -> int:
    return cli.main([str(a) for a in argv])


def card_for(hand: str, name: str = "fitted:test") -> HandCard:
    """A card whose joint model says "held" for a blocked hand (its one coefficient)."""
    n = len(FEATURE_NAMES)
    coef = tuple(3.0 if f == "blocked" else 0.0 for f in FEATURE_NAMES)
    model = JointModel((0.0,) * n, (0.5,) * n, (0.25,) * n, coef, 0.0)
    return HandCard(hand, model, Fusion({"vision": 0.5, "joints": 2.0}, 0.1, name))


@pytest.fixture(scope="module")
def hand_bag(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("witness") / "session"
    write_session(path, n_grasps=GRASPS, seed=SEED, hand_profile="allegro_v4", **SMALL)
    return path


@pytest.fixture(scope="module")
def cards(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cards")
    return {hand: save_hand_card(card_for(hand), root / f"{hand}.hand.json")
            for hand in ("allegro_v4", "robotiq_2f85")}


# --------------------------------------------------------------------- --hand-model


def test_a_hand_card_judges_the_joints_and_names_its_fusion(hand_bag, cards):
    card = card_for("allegro_v4")
    topics = BagTopics(hand=replace(HandTopics.of(V4), card=card))
    results, _ = evaluate_bag(hand_bag, HIGH, PolicyConfig(), topics)
    assert {r.record.fusion for r in results} == {"fitted:test"}
    for r in results:
        assert r.record.p_joints == pytest.approx(
            card.joint_model(_features(r.record.joint_features)), abs=1e-3)
        assert r.record.p_success == pytest.approx(card.fusion.p_success(
            {"vision": 0.9, "joints": r.record.p_joints}), abs=1e-6)


def _features(values: dict):
    from grasp_success_ros.core.joints import HandFeatures

    return HandFeatures(*[values[k] if values[k] is not None else float("nan")
                          for k in FEATURE_NAMES], samples=1)


def test_the_cli_and_the_params_file_read_the_hand_card(hand_bag, cards, tmp_path,
                                                        trained_model, capsys):
    assert setup_of("--hand-profile", "allegro_v4", "--hand-model", cards["allegro_v4"]
                    ).topics.hand.card == card_for("allegro_v4")
    params = tmp_path / "params.yaml"
    params.write_text(f"/**:\n  ros__parameters:\n    hand_profile: allegro_v4\n"
                      f"    hand_model: {cards['allegro_v4']}\n")
    assert setup_of("--params-file", params).topics.hand.card.fusion.name == "fitted:test"
    assert run_cli("bag-eval", hand_bag, "--model", trained_model, "--hand-profile",
                   "allegro_v4", "--hand-model", cards["allegro_v4"], "--json",
                   "--no-progress") == 0
    events = json.loads(capsys.readouterr().out)["events"]
    assert {e["fusion"] for e in events} == {"fitted:test"}


def test_a_card_for_another_hand_is_one_line_and_exit_2(hand_bag, cards, capsys):
    err = expect_error(capsys, "bag-eval", hand_bag, "--model", "m.keras", "--hand-profile",
                       "allegro_v4", "--hand-model", cards["robotiq_2f85"])
    assert "hand card is for 'robotiq_2f85'" in err
    err = expect_error(capsys, "bag-eval", hand_bag, "--model", "m.keras", "--hand-model",
                       cards["allegro_v4"])
    assert "needs a hand_profile" in err


# --------------------------------------------------------------------- --hold-watch


def test_every_carry_slip_is_lost_soon_after_its_onset_and_no_other_hold(hand_bag):
    topics = BagTopics(hand=HandTopics.of(V4))
    results, _ = evaluate_bag(hand_bag, HIGH, PolicyConfig(), topics, settings=WATCH)
    slips = [r for r in results if r.slip_s is not None]
    assert len(slips) == sum(p.kind == "carry_slip" for p in plan_grasps(SEED, GRASPS)) > 0
    assert all(r.hold.status == "lost" and r.hold.sources == ("joints",) for r in slips)
    assert all(0.0 <= r.hold.stamp - r.slip_s < 0.1 for r in slips)
    held = [r for r in results if r.record.verdict and r.slip_s is None]
    assert held and all(r.hold.status == "released" for r in held)
    assert all(r.hold is None for r in results if not r.record.verdict)
    holds = summarize(results, 0.5)["holds"]
    assert holds["slips_lost_share"] == 1.0 and holds["false_lost"] == 0
    assert holds["latency_ms"]["max"] < 100.0
    text = format_report(summarize(results, 0.5), results, per_event=False)
    assert f"labelled carry slips reported LOST: {len(slips)} of {len(slips)}" in text


def test_the_records_are_the_same_with_or_without_the_hold_watch(hand_bag, trained_model):
    from grasp_success_ros.model.classifier import GraspClassifier

    scorer = GraspClassifier.from_path(trained_model)[0]
    topics = BagTopics(hand=HandTopics.of(V4))
    plain, _ = evaluate_bag(hand_bag, scorer, PolicyConfig(), topics)
    watched, _ = evaluate_bag(hand_bag, scorer, PolicyConfig(), topics, settings=WATCH)
    assert [asdict(r.record) for r in plain] == [asdict(r.record) for r in watched]
    assert any(r.hold is not None for r in watched) and all(r.hold is None for r in plain)


def test_a_bool_false_release_is_not_one(tmp_path):
    """Releases as Bool: true ends the hold RELEASED; the same bag with every release
    false ends each at the next SUCCESS (ENDED) or by its timeout, none RELEASED."""
    bag = tmp_path / "bool"
    write_session(bag, n_grasps=6, seed=SEED, hand_profile="allegro_v4", trigger_type="bool",
                  **SMALL)
    falsified = _with_false_releases(bag, tmp_path / "false")
    topics = BagTopics(trigger_type="bool", hand=HandTopics.of(V4))
    kept = ServiceSettings(hold=HoldConfig(enabled=True, camera_every=0, timeout_s=5.0))
    ended = {}
    for path in (bag, falsified):
        results, _ = evaluate_bag(path, HIGH, PolicyConfig(), topics, settings=kept)
        ended[path] = summarize(results, 0.5)["holds"]["ended"]
    assert ended[bag]["released"] > 0 and ended[bag]["ended"] == ended[bag]["timeout"] == 0
    assert ended[falsified]["released"] == 0 and ended[falsified]["timeout"] >= 1
    assert sum(ended[falsified].values()) == sum(ended[bag].values())


def _with_false_releases(src: Path, out: Path) -> Path:
    """A copy of the bag whose release events (/grasp_released, Bool) are all false."""
    from rosbags.rosbag2 import Reader, Writer

    ts = typestore()
    with Reader(src) as reader, Writer(out, version=9) as writer:
        conns = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=ts)
                 for c in reader.connections}
        for conn, log_ns, raw in reader.messages():
            release = conn.topic == "/grasp_released"
            writer.write(conns[conn.id], log_ns, bool_cdr(ts, False) if release else raw)
    return out


def test_the_release_topic_is_the_nodes_per_camera(tmp_path):
    assert setup_of().topics.release == "/grasp_released"
    assert setup_of("--hold-watch", "--hold-camera-every", 3).settings.hold == \
        HoldConfig(enabled=True, camera_every=3)
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    hold_watch: true\n"
                      "    hold_timeout_s: 9.0\n    cameras: [left, right]\n"
                      "    cameras.right.release_topic: /right_hand/released\n")
    setup = setup_of("--params-file", params)
    assert setup.settings.hold == HoldConfig(enabled=True, timeout_s=9.0)
    assert setup.topics["left"].release == "/left/grasp_released"
    assert setup.topics["right"].release == "/right_hand/released"
    assert setup_of("--params-file", params, "--no-hold-watch").settings.hold.enabled is False


def test_the_hold_summary_counts_slips_latency_and_false_alarms():
    lost = HoldEnd("lost", 10.05, 9.0, ("joints",))
    summary = hold_summary([(10.0, lost), (20.0, None), (None, HoldEnd("released", 31.0, 30.0)),
                            (None, HoldEnd("lost", 41.0, 40.0)), (None, None)])
    assert summary["slips"] == 2 and summary["slips_lost"] == 1
    assert summary["slips_lost_share"] == 0.5 and summary["slips_with_hold"] == 1
    assert summary["latency_ms"]["max"] == pytest.approx(50.0, abs=0.1)
    assert summary["holds_without_slip"] == 2 and summary["false_lost"] == 1
    assert summary["ended"] == {"lost": 2, "released": 1, "timeout": 0, "ended": 0}
