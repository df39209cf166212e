"""``grasp-success train-hand`` end to end: synthetic sessions of three seeds (train,
holdout, evaluation) judged by the one engine, a hand card fitted and written, then served
by bag-eval --hand-model on the evaluation seed; bags it cannot learn from are refused in
one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_bag_params import expect_error

from grasp_success_ros.bags.writer import write_session
from grasp_success_ros.cli import main as cli
from grasp_success_ros.cli.hand import card_name
from grasp_success_ros.data.hand_cards import load_hand_card

SMALL = {"height": 96, "width": 96}
GRASPS = 30


def run_cli(*argv) -> int:
    return cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> dict[str, Path]:
    """Three seeds apart, the Allegro v4's joints; and two bags train-hand cannot use."""
    root = tmp_path_factory.mktemp("train_hand")
    out = {}
    for name, seed in (("train", 21), ("holdout", 22), ("eval", 23)):
        out[name] = root / name
        write_session(out[name], n_grasps=GRASPS, seed=seed, hand_profile="allegro_v4", **SMALL)
    out["unlabelled"] = root / "unlabelled"
    write_session(out["unlabelled"], n_grasps=4, seed=24, hand_profile="allegro_v4",
                  labels=False, **SMALL)
    out["no_hand"] = root / "no_hand"
    write_session(out["no_hand"], n_grasps=4, seed=25, **SMALL)
    out["few"] = root / "few"
    write_session(out["few"], n_grasps=6, seed=26, hand_profile="allegro_v4", **SMALL)
    return out


def train(bags, model, out) -> int:
    """The README's form: OUT after the holdout bags."""
    return run_cli("train-hand", "--hand-profile", "allegro_v4", "--model", model, "--train",
                   bags["train"], "--holdout", bags["holdout"], out)


def test_train_hand_writes_a_card_that_bag_eval_serves(bags, trained_model, tmp_path, capsys):
    out = tmp_path / "allegro.hand.json"
    assert train(bags, trained_model, out) == 0
    printed = capsys.readouterr().out
    assert f"{GRASPS} train / {GRASPS} holdout grasps; holdout accuracy: vision" in printed
    card = load_hand_card(out)
    assert card.hand == "allegro_v4" and card.fusion.name == "fitted:allegro"
    assert card.fitted_on["train"] == ["train"] and card.fitted_on["holdout"] == ["holdout"]
    assert set(card.metrics) >= {"holdout_accuracy_vision", "holdout_accuracy_joints",
                                 "holdout_accuracy_fused"}
    assert run_cli("bag-eval", bags["eval"], "--model", trained_model, "--hand-profile",
                   "allegro_v4", "--hand-model", out, "--json", "--no-progress") == 0
    report = json.loads(capsys.readouterr().out)
    assert {e["fusion"] for e in report["events"]} == {"fitted:allegro"}
    sources = report["summary"]["sources"]
    assert sources["fused"]["accuracy"] >= sources["vision"]["accuracy"]


@pytest.mark.parametrize("bag, why", [("unlabelled", "no ground truth"),
                                      ("no_hand", "no joint states topic"),
                                      ("few", "need 20")])
def test_bags_it_cannot_learn_from_are_refused_in_one_line(bags, trained_model, tmp_path,
                                                           capsys, bag, why):
    out = tmp_path / "refused.hand.json"
    err = expect_error(capsys, "train-hand", "--hand-profile", "allegro_v4", "--model",
                       trained_model, "--train", bags[bag], "--holdout", bags["holdout"], out)
    assert why in err and not out.exists()


def test_the_card_names_the_fused_result_after_its_file():
    assert card_name("models/allegro.hand.json") == "fitted:allegro"
    assert card_name("lab_hand.json") == "fitted:lab_hand"
