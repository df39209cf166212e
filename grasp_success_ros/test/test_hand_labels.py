"""Labels from the hand: ``extract --label-from joints`` on an unlabelled recording files each
grasp's frames by the joints' verdict, sends the camera's disagreements to review in the
review loop's layout and writes a manifest of why; a bag without joint states is refused."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from grasp_success_ros.bags.hand_labels import (
    REVIEW,
    TO_REVIEW,
    LabelOptions,
    file_event,
    label_bags,
)
from grasp_success_ros.bags.reader import open_bag
from grasp_success_ros.bags.topics import BagTopics, HandTopics
from grasp_success_ros.bags.writer import write_session
from grasp_success_ros.cli import main as cli
from grasp_success_ros.data.folders import class_folders, list_folders
from grasp_success_ros.data.hand_profiles import load_profile
from grasp_success_ros.data.hand_synth import plan_grasps
from grasp_success_ros.model.classifier import GraspClassifier

SMALL = {"height": 96, "width": 96}
GRASPS, SEED = 30, 4
V4 = load_profile("allegro_v4")
TOPICS = BagTopics(hand=HandTopics.of(V4))
PLANS = plan_grasps(SEED, GRASPS)  # the generator's truth, event by event
JOINTS_RIGHT = ("hidden:confident", "out_of_frame:confident")  # the camera confidently wrong
CAMERA_RIGHT = ("stopped_empty:confident", "thin_soft:confident")  # the joints confidently wrong


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory) -> Path:
    """30 grasps with the Allegro v4's joints and no ground truth at all."""
    path = tmp_path_factory.mktemp("unlabelled") / "session"
    write_session(path, n_grasps=GRASPS, seed=SEED, hand_profile=V4, labels=False, **SMALL)
    return path


@pytest.fixture(scope="module")
def with_camera(unlabelled, trained_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("proposals")
    camera = GraspClassifier.from_path(trained_model)[0]
    label_bags([unlabelled], out, TOPICS, LabelOptions(), camera=camera)
    return out


def manifest(out: Path) -> list[dict]:
    with open(out / "proposals.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_the_bag_has_no_labels_and_the_joints_label_the_plain_scenes_right(unlabelled,
                                                                           tmp_path):
    with open_bag(unlabelled) as bag:
        assert "/grasp_success/ground_truth" not in bag.topics
    per_bag, errors = label_bags([unlabelled], tmp_path, TOPICS, LabelOptions())
    assert not errors
    rows = manifest(tmp_path)
    assert len(rows) == GRASPS and all(r["truth"] == "" for r in rows)
    plain = [(r, p) for r, p in zip(rows, PLANS, strict=True) if p.kind == "plain"]
    assert len(plain) >= 10
    assert all(r["filed"] == r["proposed"] == ("success" if p.label else "failure")
               for r, p in plain)
    for r, _ in plain:  # the event's frames in its class folder, named as extract names
        assert int(r["frames"]) > 0
        assert len(list((tmp_path / r["filed"]).glob("session_*.png"))) > 0
    # without a camera model nothing is a disagreement; the joints' unsure ones are sorted
    assert not (tmp_path / REVIEW).exists() or not any((tmp_path / REVIEW).rglob("*.png"))
    unsure = [p.tag for r, p in zip(rows, PLANS, strict=True) if r["filed"] == "to_review"]
    assert unsure and set(unsure) <= {"stopped_empty:unsure", "thin_soft:unsure"}
    assert len(list((tmp_path / TO_REVIEW).glob("*.png"))) == \
        per_bag["session"]["to_review_frames"]
    classes = class_folders(tmp_path)  # the underscore folders leave OUT a training set
    assert (classes.success, classes.failure) == ("success", "failure")


def test_the_disagreements_of_the_hard_kinds_go_to_review(with_camera):
    rows = manifest(with_camera)
    filed = {p.tag: set() for p in PLANS}
    for r, p in zip(rows, PLANS, strict=True):
        filed[p.tag].add(r["filed"])
    for tag in (*JOINTS_RIGHT, *CAMERA_RIGHT):
        assert filed.get(tag, {"review"}) == {"review"}, tag
    assert any(tag in filed for tag in JOINTS_RIGHT) and any(tag in filed for tag in CAMERA_RIGHT)
    plain = [r for r, p in zip(rows, PLANS, strict=True) if p.kind == "plain"]
    assert sum(r["filed"] == "review" for r in plain) <= len(plain) // 10
    review = [r for r in rows if r["filed"] == "review"]
    assert all(r["proposed"] != r["camera"] and r["p_vision"] and r["p_joints"] and
               "camera says" in r["reason"] for r in review)
    summary = json.loads((with_camera / "proposals.json").read_text())
    assert summary["counts"]["session"]["review"] == len(review)


def test_the_review_folder_is_the_review_loops_and_its_corrections_are_read_back(with_camera,
                                                                                  tmp_path):
    folder = with_camera / REVIEW / "session"
    with open(folder / "review.csv", newline="") as fh:
        listed = list(csv.DictReader(fh))
    assert (folder / "contact_sheet.png").is_file() and listed
    assert {r["kind"] for r in listed} <= {"false_success", "false_failure"}
    assert all(r["label"] != r["verdict"] for r in listed)  # label: joints; verdict: camera
    assert not any(p.name.startswith(".") for p in (with_camera / REVIEW).iterdir())
    # the person finds the joints wrong on one frame: moved into the other class folder
    copy = tmp_path / "checked"
    shutil.copytree(folder, copy)
    moved = Path(listed[0]["file"])
    other = "success" if moved.parts[0] == "failure" else "failure"
    (copy / other / moved.name).write_bytes((copy / moved).read_bytes())
    (copy / moved).unlink()
    images = list_folders(copy, class_folders(copy), allow_empty=True)
    label = dict(zip((Path(p).name for p in images.paths), images.labels, strict=True))
    assert label[moved.name] == (other == "success")


def test_a_bag_without_joint_states_is_refused_in_one_line(tmp_path, capsys):
    bag = tmp_path / "no_hand"
    write_session(bag, n_grasps=2, seed=1, labels=False, **SMALL)
    code = cli.main(["extract", str(bag), str(tmp_path / "out"), "--label-from", "joints",
                     "--hand-profile", "allegro_v4"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "joint states" in err
    assert not (tmp_path / "out" / "proposals.csv").exists()
    assert cli.main(["extract", str(bag), str(tmp_path / "out"), "--label-from",
                     "joints"]) == 2
    assert "--hand-profile" in capsys.readouterr().err


def test_the_cli_proposes_labels_for_an_unlabelled_bag(unlabelled, tmp_path, capsys):
    code = cli.main(["extract", str(unlabelled), str(tmp_path), "--label-from", "joints",
                     "--hand-profile", "allegro_v4", "--threshold", "0.9",
                     "--threshold-failure", "0.1"])
    out = capsys.readouterr().out
    assert code == 0 and "to_review" in out and "proposals.csv" in out
    rows = manifest(tmp_path)
    assert len(rows) == GRASPS
    # the band is the options': the rule's even-odds grasps (P 0.43, 0.61) are unsure
    assert all(r["filed"] == "to_review" for r in rows if 0.1 < float(r["p_joints"]) < 0.9)


@pytest.mark.parametrize("p_joints, p_vision, camera, filed", [
    (0.98, 0.02, True, "review"), (0.04, 0.95, True, "review"), (0.98, 0.5, True, "success"),
    (0.98, 0.99, True, "success"), (0.04, None, False, "failure"), (0.5, 0.99, True,
                                                                    "to_review"),
    (None, 0.99, True, "to_review")])
def test_the_joints_decide_and_the_camera_only_disagrees(p_joints, p_vision, camera, filed):
    assert file_event(p_joints, p_vision, LabelOptions(), camera)[0] == filed
