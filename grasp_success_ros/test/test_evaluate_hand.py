"""``evaluate --hand-features``: each image joined to its event in an extract's ``_joints``
CSV, and vision only, joints only and fused side by side; without the option nothing
changes."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from tool_helpers import red_minus_blue, solid, write_rgb

from grasp_success_ros.cli import main as cli
from grasp_success_ros.core.fusion import Fusion
from grasp_success_ros.core.hand_card import HandCard, JointModel
from grasp_success_ros.core.joints import FEATURE_NAMES
from grasp_success_ros.data.frame_names import frame_name, parse_frame_name
from grasp_success_ros.data.hand_cards import save_hand_card

RED, MILD, BLUE = (255, 0, 0), (160, 0, 96), (0, 0, 255)  # P(success) .982, .731, .018
# (folder, bag, stamp in s, colour, the event it belongs to: its id, or None)
IMAGES = [("success", "sess_1", 1.1, RED, 10),  # all three right
          ("failure", "sess_1", 2.1, MILD, 11),  # vision wrong; joints and fused right
          ("success", "sess_1", 3.0, RED, 12),  # stamped at its event: still its own
          ("failure", "sess_1", 4.1, BLUE, 13),  # joints wrong; vision and fused right
          ("success", "other", 5.0, RED, None),  # a bag without joints
          ("success", "sess_1", 0.5, RED, None)]  # before the bag's first event
# event id, stamp, label, blocked (the rule's P: 1 -> .992, 0 -> .039, .75 -> .943)
EVENTS = [(10, 1.0, 1, 1.0), (11, 2.0, 0, 0.0), (12, 3.0, 1, 1.0), (13, 4.0, 0, 0.75)]


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def extracted(tmp_path) -> Path:
    """An extract OUT written by hand: the images above and sess_1's joints CSV."""
    out = tmp_path / "out"
    for folder, bag, stamp, colour, _ in IMAGES:
        write_rgb(out / folder / frame_name(bag, stamp), solid(colour))
    (out / "_joints").mkdir()
    with open(out / "_joints" / "sess_1.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["bag", "event_id", "event_stamp", "label", "scene", *FEATURE_NAMES,
                         "samples"])
        for eid, stamp, label, blocked in EVENTS:
            feats = {"closure": 0.5, "closure_spread": 0.1, "gap": 0.2, "effort": "",
                     "speed": 0.0, "blocked": blocked, "tactile": ""}
            writer.writerow(["sess_1", eid, f"{stamp:.9f}", label, "",
                             *[feats[k] for k in FEATURE_NAMES], 40])
    return out


@pytest.fixture
def rb_model(tmp_path):
    return red_minus_blue(tmp_path / "rb.keras")


def test_a_frame_name_gives_back_its_bag_and_stamp():
    assert frame_name("sess_1", 1.5, "jpg") == "sess_1_1500000.jpg"
    assert parse_frame_name("/x/success/sess_1_1500000.png") == ("sess_1", 1500000)
    assert parse_frame_name("photo.png") is None and parse_frame_name("a_b.png") is None


def test_each_image_is_joined_to_its_event_and_the_sources_score_side_by_side(
        capsys, tmp_path, extracted, rb_model):
    code, out, _ = run_cli(capsys, "evaluate", extracted, rb_model, "--json", "--out-dir",
                           tmp_path / "eval", "--hand-features", extracted / "_joints",
                           "--hand-profile", "allegro_v4")
    assert code == 0
    data = json.loads(out)
    by_name = {Path(i["file"]).name: i for i in data["images"]}
    for folder, bag, stamp, _, event in IMAGES:
        row = by_name[frame_name(bag, stamp)]
        assert row["truth"] is (folder == "success")
        assert (row["event"] or {}).get("event_id") == event
        assert (row["p_joints"] is None) is (event is None)
        if event is None:
            assert row["p_fused"] == pytest.approx(row["p_success"])  # vision alone
    hand = data["hand"]
    assert (hand["images"], hand["matched"], hand["label_disagrees"]) == (6, 4, 0)
    assert hand["fusion"] == "default"
    s = hand["sources"]
    assert (s["vision"]["correct"], s["joints"]["correct"], s["fused"]["correct"]) == (5, 3, 6)
    assert s["vision"]["accuracy"] == pytest.approx(0.8333, abs=1e-4)
    assert (s["joints"]["coverage"], s["fused"]["accuracy"]) == (pytest.approx(0.6667, abs=1e-4),
                                                                 1.0)
    # the least confident verdict of each witness is its wrong one: leaving it out reaches
    # 95 % and 99 % precision
    assert s["vision"]["coverage_at_precision"] == {"0.95": 0.8333, "0.99": 0.8333}
    assert s["joints"]["coverage_at_precision"] == {"0.95": 0.5, "0.99": 0.5}
    assert s["fused"]["coverage_at_precision"] == {"0.95": 1.0, "0.99": 1.0}
    assert data["accuracy"] == pytest.approx(5 / 6)  # the vision report as before
    _, text, _ = run_cli(capsys, "evaluate", extracted, rb_model, "--out-dir",
                         tmp_path / "eval", "--hand-features", extracted,
                         "--hand-profile", "allegro_v4")
    assert "hand features: 4 of 6 images matched to an event" in text
    lines = text.splitlines()
    table = lines.index(next(line for line in lines if line.startswith("by source (images):")))
    assert lines[table].split()[-3:] == ["vision", "joints", "fused"]
    assert lines[table + 1].split() == ["accuracy", "0.83", "0.50", "1.00"]
    assert lines[table + 4].split() == ["coverage", "at", "95%", "precision", "0.83", "0.50",
                                        "1.00"]
    assert "by source (images):" in (tmp_path / "eval" / "report.html").read_text()


def test_a_hand_card_scores_the_joints_and_fuses_with_its_own_fusion(
        capsys, tmp_path, extracted, rb_model):
    zero = (0.0,) * len(FEATURE_NAMES)
    model = JointModel(zero, zero, (1.0,) * len(FEATURE_NAMES), zero, math.log(4.0))  # P .8
    card = save_hand_card(HandCard("allegro_v4", model, Fusion(name="held-out")),
                          tmp_path / "v4.hand.json")
    code, out, _ = run_cli(capsys, "evaluate", extracted, rb_model, "--json", "--out-dir",
                           tmp_path / "eval", "--hand-features", extracted,
                           "--hand-profile", "allegro_v4", "--hand-model", card)
    data = json.loads(out)
    assert code == 0 and data["hand"]["fusion"] == "held-out"
    assert [i["p_joints"] for i in data["images"] if i["event"]] == [pytest.approx(0.8)] * 4
    other = save_hand_card(HandCard("robotiq_2f85", model, Fusion()), tmp_path / "r.hand.json")
    code, _, err = run_cli(capsys, "evaluate", extracted, rb_model, "--hand-features",
                           extracted, "--hand-profile", "allegro_v4", "--hand-model", other)
    assert code != 0 and "hand card is for 'robotiq_2f85'" in err
    assert len(err.strip().splitlines()) == 1


def test_hand_features_without_a_profile_are_refused_in_one_line(capsys, extracted, rb_model):
    code, out, err = run_cli(capsys, "evaluate", extracted, rb_model, "--hand-features",
                             extracted)
    assert code != 0 and out == "" and len(err.strip().splitlines()) == 1
    assert "--hand-features needs --hand-profile" in err
    code, _, err = run_cli(capsys, "evaluate", extracted, rb_model, "--hand-features",
                           extracted / "success", "--hand-profile", "allegro_v4")
    assert code != 0 and "no _joints/*.csv" in err


def test_without_hand_features_evaluate_reports_what_it_always_did(
        capsys, tmp_path, extracted, rb_model):
    _, plain, _ = run_cli(capsys, "evaluate", extracted, rb_model, "--out-dir", tmp_path / "e")
    _, hand, _ = run_cli(capsys, "evaluate", extracted, rb_model, "--out-dir", tmp_path / "e",
                         "--hand-features", extracted, "--hand-profile", "allegro_v4")
    assert "by source" not in plain and "hand features" not in plain
    report = plain.split("\nplots: ")[0]
    assert hand.startswith(report + "\n\nhand features: ")  # the same report, then the table
    _, out, _ = run_cli(capsys, "evaluate", extracted, rb_model, "--json", "--out-dir",
                        tmp_path / "e")
    data = json.loads(out)
    assert "hand" not in data
    assert all(set(i) == {"file", "truth", "p_success"} for i in data["images"])


def test_synth_and_extract_frames_each_find_their_event(capsys, tmp_path, rb_model):
    bag, out = tmp_path / "v4", tmp_path / "out"
    assert run_cli(capsys, "synth", "--bag", bag, "--grasps", 4, "--seed", 2, "--width", 96,
                   "--height", 96, "--hand-profile", "allegro_v4")[0] == 0
    assert run_cli(capsys, "extract", bag, out, "--hand-profile", "allegro_v4")[0] == 0
    code, text, _ = run_cli(capsys, "evaluate", out, rb_model, "--json", "--out-dir",
                            tmp_path / "eval", "--hand-features", out,
                            "--hand-profile", "allegro_v4")
    data = json.loads(text)
    with open(out / "_joints" / "v4.csv", newline="") as fh:
        stamps = {int(r["event_id"]): float(r["event_stamp"]) for r in csv.DictReader(fh)}
    assert code == 0 and data["hand"]["matched"] == data["hand"]["images"] > 0
    assert data["hand"]["label_disagrees"] == 0  # each frame in its own event's class
    for image in data["images"]:
        stamp = parse_frame_name(image["file"])[1] / 1e6
        ev = image["event"]["event_id"]
        assert stamps[ev] <= stamp + 1e-6 and not any(
            stamps[ev] < s <= stamp for s in stamps.values())
