"""The review loop: a contact sheet of the mistakes, their export in class-folder layout for a
person to correct, training on several folders, and the whole loop removing the mistakes a
model makes on a kind of scene it was not trained on."""

import contextlib
import csv
import io
import json
import re

import cv2
import pytest
from tool_helpers import backbone_weights, colour_folders, red_minus_blue, solid, write_rgb

from grasp_success_ros.bags.writer import write_session
from grasp_success_ros.cli import main as cli
from grasp_success_ros.core.errors import DatasetError
from grasp_success_ros.data.folders import list_folders, merge_lists
from grasp_success_ros.data.synth import write_dataset
from grasp_success_ros.evaluation.review import (
    CAPTION_H,
    HEADER_H,
    THUMB_H,
    THUMB_W,
    contact_sheet,
    export_review,
    file_cases,
    review_kind,
)
from grasp_success_ros.model.card import ModelCard


def run(*argv) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli.main([str(a) for a in argv])
    return code, buf.getvalue()


@pytest.fixture
def mislabelled(tmp_path):
    """Reddish successes and bluish failures (right for the red-minus-blue model), plus one
    red image filed as a failure and one blue image filed as a success."""
    root = colour_folders(tmp_path / "test", n=4)
    write_rgb(root / "failure" / "red_in_failure.png", solid((230, 20, 20)))
    write_rgb(root / "success" / "blue_in_success.png", solid((20, 20, 230)))
    return root


@pytest.fixture
def rb_model(tmp_path):
    return red_minus_blue(tmp_path / "rb.keras")


def read_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------- what to review


@pytest.mark.parametrize("truth, verdict, kind", [
    (False, True, "false_success"), (True, False, "false_failure"),
    (True, None, "uncertain"), (False, None, "uncertain"), (True, True, None),
    (False, False, None)])
def test_review_kind_names_false_successes_false_failures_and_missing_verdicts(
        truth, verdict, kind):
    assert review_kind(truth, verdict) == kind


def test_evaluate_draws_its_mistakes_on_one_captioned_contact_sheet(tmp_path, mislabelled,
                                                                    rb_model):
    code, out = run("evaluate", mislabelled, rb_model, "--out-dir", tmp_path / "ev")
    assert code == 0 and "review: 1 false success, 1 false failure" in out
    sheet = cv2.imread(str(tmp_path / "ev" / "contact_sheet.png"))
    assert sheet.shape[0] == HEADER_H + THUMB_H + CAPTION_H + 4  # one row of two cells
    assert sheet.shape[1] == 2 * (THUMB_W + 4)
    first = sheet[HEADER_H + THUMB_H // 2, THUMB_W // 2]  # BGR: false successes come first
    assert first[2] > 200 and first[0] < 50  # the red image filed as a failure


def test_no_mistakes_leave_no_contact_sheet(tmp_path, rb_model):
    colour_folders(tmp_path / "test", n=4)
    code, out = run("evaluate", tmp_path / "test", rb_model, "--out-dir", tmp_path / "ev")
    assert code == 0 and "nothing to review" in out
    assert not (tmp_path / "ev" / "contact_sheet.png").exists()


def test_review_dir_files_each_mistake_under_its_label_by_kind(tmp_path, mislabelled,
                                                               rb_model):
    review = tmp_path / "review"
    assert run("evaluate", mislabelled, rb_model, "--review-dir", review)[0] == 0
    assert sorted(p.relative_to(review).as_posix() for p in review.rglob("*.png")) == [
        "contact_sheet.png", "failure/false_success/red_in_failure.png",
        "success/false_failure/blue_in_success.png"]
    rows = {r["file"]: r for r in read_rows(review / "review.csv")}
    row = rows["failure/false_success/red_in_failure.png"]
    assert (row["label"], row["verdict"]) == ("failure", "success")
    assert float(row["p_success"]) > 0.5 and row["source"].endswith("red_in_failure.png")


def test_review_dir_refuses_a_folder_that_may_hold_corrections(tmp_path, mislabelled,
                                                               rb_model, capsys):
    (tmp_path / "review").mkdir()
    (tmp_path / "review" / "note.txt").write_text("corrected")
    code, _ = run("evaluate", mislabelled, rb_model, "--review-dir", tmp_path / "review")
    assert code == 2 and "not empty" in capsys.readouterr().err


def test_review_all_exports_the_right_verdicts_too_but_shows_only_mistakes(
        tmp_path, mislabelled, rb_model):
    review = tmp_path / "review"
    assert run("evaluate", mislabelled, rb_model, "--review-dir", review, "--review-all",
               "--out-dir", tmp_path / "ev")[0] == 0
    assert len(list((review / "success" / "correct").iterdir())) == 4
    assert len(list((review / "failure" / "correct").iterdir())) == 4
    sheet = cv2.imread(str(review / "contact_sheet.png"))
    assert sheet.shape[1] == 2 * (THUMB_W + 4)


def test_an_image_without_verdict_is_filed_as_uncertain_under_its_label(tmp_path):
    image = write_rgb(tmp_path / "a.png", solid((90, 90, 90)))
    cases = file_cases([image], [True], [None], [0.5])
    export_review(cases, tmp_path / "review", threshold=0.5, classes=("succ", "zon_desk"))
    assert (tmp_path / "review" / "succ" / "uncertain" / "a.png").is_file()
    assert (tmp_path / "review" / "zon_desk").is_dir()  # both classes, as train expects


def test_the_contact_sheet_shows_the_most_confident_mistakes_first_up_to_its_limit(tmp_path):
    files = [write_rgb(tmp_path / f"{v}.png", solid((v, v, v))) for v in (10, 120, 250)]
    cases = file_cases(files, [False] * 3, [True] * 3, [0.6, 0.99, 0.8])
    sheet = cv2.imread(str(contact_sheet(cases, tmp_path / "s.png", 0.5, limit=2)))
    assert sheet.shape[1] == 2 * (THUMB_W + 4)
    assert sheet[HEADER_H + THUMB_H // 2, THUMB_W // 2, 0] == 120  # P 0.99 first
    assert sheet[HEADER_H + THUMB_H // 2, THUMB_W + 4 + THUMB_W // 2, 0] == 250  # then 0.8


# --------------------------------------------------------------------------- bag-eval


def test_bag_eval_exports_the_frames_of_its_mistakes_named_by_bag_and_stamp(tmp_path):
    bag = tmp_path / "session"
    write_session(bag, n_grasps=8, seed=4, height=60, width=80)
    model = red_minus_blue(tmp_path / "rb.keras")  # judges synthetic scenes by colour only
    review, out = tmp_path / "review", tmp_path / "report"
    code, text = run("bag-eval", bag, "--model", model, "--out", out, "--review-dir", review,
                     "--no-progress", "--quiet")
    assert code == 0
    events = read_rows(out / "events.csv")
    wrong = {f"session_{int(round(float(e['frame_stamps']) * 1e6))}.png":
             "success" if e["truth"] == "1" else "failure"
             for e in events if e["correct"] == "0"}
    exported = {p.name: p.parent.parent.name for p in review.glob("*/*/*.png")}
    assert wrong and exported == wrong  # every mistake, in the folder of its label
    assert (out / "contact_sheet.png").is_file() and (review / "contact_sheet.png").is_file()
    frame = cv2.imread(str(next(review.glob("*/*/*.png"))))
    assert frame.shape == (60, 80, 3)
    assert [line for line in text.splitlines() if line.startswith("review: ")]


# --------------------------------------------------------------------------- training


def test_extra_training_folders_join_the_first_and_may_leave_a_class_empty(tmp_path):
    write_dataset(tmp_path / "train", 8, seed=1, height=24, width=32)
    extra = tmp_path / "review"
    write_dataset(extra, 6, seed=3, height=24, width=32)
    for f in (extra / "failure").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match="holds no images"):
        list_folders(extra)  # a first training folder needs both classes
    merged = merge_lists([list_folders(tmp_path / "train"),
                          list_folders(extra, allow_empty=True)])
    assert merged.counts() == {"success": 7, "failure": 4, "skipped": 0}
    assert len(merged.paths) == len(merged.labels) == 11


# --------------------------------------------------------------------------- the loop


@pytest.mark.slow
def test_retraining_on_a_reviewed_session_removes_most_mistakes_on_an_unseen_kind_of_scene(
        tmp_path, trained_model):
    """The deployed model (trained on colourful objects only) misjudges white objects; a
    reviewed session of them, trained on beside the old data, removes most of those
    mistakes and keeps the old kind of scene right."""
    size = {"height": 72, "width": 96}
    write_dataset(tmp_path / "old", 300, seed=11, **size)
    write_dataset(tmp_path / "valid", 100, seed=12, **size)
    write_dataset(tmp_path / "session", 400, seed=13, objects="white", **size)
    write_dataset(tmp_path / "later", 200, seed=14, objects="white", **size)
    review = tmp_path / "review"
    assert run("evaluate", tmp_path / "session", trained_model, "--out-dir", tmp_path / "ev",
               "--review-dir", review, "--review-all")[0] == 0
    weights = backbone_weights(trained_model, tmp_path / "backbone.weights.h5")
    retrained = tmp_path / "retrained.keras"
    assert run("train", tmp_path / "old", tmp_path / "valid", retrained, "--extra-train",
               review, "--backbone", "mobilenet_v3_small", "--input-size", 96, "--weights",
               weights, "--freeze-backbone", "no", "--epochs", 2, "--learning-rate", "1e-3",
               "--optimizer", "adam", "--augment", "none", "--no-early-stopping",
               "--no-tensorboard", "--quiet")[0] == 0
    card = ModelCard.load(tmp_path / "retrained.card.json")
    assert sum(card.training["train_dirs"][str(review)].values()) == 400

    def mistakes(model, folder):
        _, out = run("evaluate", folder, model, "--out-dir", tmp_path / "ev2", "--json")
        c = json.loads(out)["confusion"]
        return c["fn"] + c["fp"]

    before, after = mistakes(trained_model, tmp_path / "later"), mistakes(retrained,
                                                                         tmp_path / "later")
    assert before >= 60, f"the deployed model should misjudge white objects ({before}/200)"
    assert after <= before / 2, f"mistakes on white objects: {before} -> {after} of 200"
    assert mistakes(retrained, tmp_path / "valid") <= 12  # colourful objects still right


def test_bag_eval_review_names_match_extract_names(tmp_path):
    """A reviewed frame and the same frame extracted for training share their name."""
    bag = tmp_path / "s"
    write_session(bag, n_grasps=3, seed=5, height=60, width=80)
    model = red_minus_blue(tmp_path / "rb.keras")
    assert run("bag-eval", bag, "--model", model, "--review-dir", tmp_path / "review",
               "--review-all", "--no-progress", "--quiet")[0] == 0
    assert run("extract", bag, tmp_path / "ex", "--window", "0.05", "--dedup", "0")[0] == 0
    reviewed = {p.name for p in (tmp_path / "review").glob("*/*/*.png")}
    extracted = {p.name for p in (tmp_path / "ex").glob("*/*.png")}
    assert len(reviewed) == 3 and reviewed <= extracted
    assert all(re.fullmatch(r"s_\d+\.png", n) for n in reviewed)
