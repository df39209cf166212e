"""predict, evaluate and export: on the seed's sample photos, synthetic scenes and videos."""

import html
import json
import shutil
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from tool_helpers import (
    colour_folders,
    huge_header_image,
    red_minus_blue,
    seed_samples,
    solid,
    write_rgb,
)

from grasp_success_ros.cli import main as cli
from grasp_success_ros.core.errors import ConfigError, DatasetError
from grasp_success_ros.core.params import NodeConfig
from grasp_success_ros.core.policy import PolicyConfig, decide
from grasp_success_ros.evaluation.evaluate import (
    Evaluation,
    band_for_precision,
    evaluate_folder,
    report_text,
    threshold_for_precision,
)
from grasp_success_ros.evaluation.metrics import calibration_scores
from grasp_success_ros.evaluation.predict import predict_images, video_decision
from grasp_success_ros.model.calibration import Calibration
from grasp_success_ros.model.card import ModelCard, card_path_for
from grasp_success_ros.model.classifier import GraspClassifier
from grasp_success_ros.model.export import export_model
from grasp_success_ros.model.loading import load_model


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def rb_model(tmp_path):
    return red_minus_blue(tmp_path / "rb.keras")


# --------------------------------------------------------------------------- predict


def test_predict_lists_every_image_of_a_folder_recursively_with_verdict_and_confidence(
        capsys, rb_model):
    code, out, _ = run_cli(capsys, "predict", seed_samples(), rb_model, "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 14
    for row in rows:
        assert row["verdict"] is (row["p_success"] >= 0.5)
        assert row["confidence"] == pytest.approx(max(row["p_success"], 1 - row["p_success"]))


def test_predict_table_and_csv_name_the_columns(capsys, rb_model):
    image = next((seed_samples() / "success").iterdir())
    _, table, _ = run_cli(capsys, "predict", image, rb_model)
    assert table.splitlines()[0].split() == ["file", "verdict", "P(success)", "confidence"]
    _, csv_text, _ = run_cli(capsys, "predict", image, rb_model, "--csv")
    assert csv_text.splitlines()[0] == "file,verdict,p_success,confidence,error"


def test_an_unreadable_image_gets_a_row_with_the_reason(tmp_path, rb_model):
    write_rgb(tmp_path / "imgs" / "red.png", solid((255, 0, 0)))
    (tmp_path / "imgs" / "broken.jpg").write_bytes(b"not a jpeg")
    clf, _ = GraspClassifier.from_path(rb_model)
    rows = {r.file.split("/")[-1]: r for r in predict_images(tmp_path / "imgs", clf)}
    assert rows["red.png"].verdict is True and rows["broken.jpg"].error


@pytest.mark.parametrize("suffix", [".png", ".bmp"])
def test_an_image_declaring_a_huge_size_gets_a_row_and_the_others_are_judged(
        tmp_path, rb_model, suffix):
    write_rgb(tmp_path / "imgs" / "red.png", solid((255, 0, 0)))
    huge_header_image(tmp_path / "imgs" / f"huge{suffix}")
    clf, _ = GraspClassifier.from_path(rb_model)
    rows = {r.file.split("/")[-1]: r for r in predict_images(tmp_path / "imgs", clf)}
    assert rows["red.png"].verdict is True
    assert rows[f"huge{suffix}"].verdict is None and "50000x50000" in rows[f"huge{suffix}"].error


def test_an_empty_file_is_reported_as_empty(tmp_path, rb_model):
    (tmp_path / "zero.png").write_bytes(b"")
    clf, _ = GraspClassifier.from_path(rb_model)
    assert predict_images(tmp_path / "zero.png", clf)[0].error == "empty file"


def test_a_gif_passed_alone_is_not_judged_as_a_folder_would_skip_it(tmp_path, rb_model):
    write_rgb(tmp_path / "imgs" / "red.png", solid((255, 0, 0)))
    (tmp_path / "imgs" / "red.gif").write_bytes((tmp_path / "imgs" / "red.png").read_bytes())
    clf, _ = GraspClassifier.from_path(rb_model)
    assert [r.file for r in predict_images(tmp_path / "imgs", clf)] == \
        [str(tmp_path / "imgs" / "red.png")]
    alone = predict_images(tmp_path / "imgs" / "red.gif", clf)[0]
    assert alone.verdict is None and alone.error.startswith("not an image file (.gif")


@pytest.mark.parametrize("files, code", [(("red.png",), 0), (("red.png", "bad.png"), 1),
                                         (("bad.png",), 2)])
def test_predict_exit_code_says_whether_anything_was_judged(capsys, tmp_path, rb_model, files,
                                                             code):
    write_rgb(tmp_path / "all" / "red.png", solid((255, 0, 0)))
    (tmp_path / "all" / "bad.png").write_bytes(b"not a png")
    for name in files:
        (tmp_path / "imgs").mkdir(exist_ok=True)
        (tmp_path / "imgs" / name).write_bytes((tmp_path / "all" / name).read_bytes())
    assert run_cli(capsys, "predict", tmp_path / "imgs", rb_model)[0] == code


def test_predict_says_unknown_for_an_image_between_the_two_thresholds(capsys, tmp_path,
                                                                     rb_model):
    write_rgb(tmp_path / "imgs" / "red.png", solid((200, 40, 40)))
    p = 1 / (1 + np.exp(-4 * (200 - 40) / 255))  # 0.92
    code, table, _ = run_cli(capsys, "predict", tmp_path / "imgs", rb_model, "--threshold",
                             "0.95", "--threshold-failure", "0.05")
    row = table.splitlines()[1].split(None, 4)
    assert code == 0  # judged: it has its P(success), only no verdict
    assert row[1:3] == ["UNKNOWN", f"{p:.4f}"] and row[3] == "-"
    assert row[4] == (f"uncertain: P(success) {p:.4f} lies between threshold_failure 0.05 "
                      "and threshold 0.95")


def test_a_failure_threshold_without_the_threshold_is_refused_in_one_line(capsys, rb_model):
    code, _, err = run_cli(capsys, "predict", "x.png", rb_model, "--threshold-failure", "0.2")
    assert code == 2 and "threshold_failure needs threshold set too" in err
    assert err.count("\n") == 1


def write_video(path, colours, fps=30.0, size=(64, 48)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for rgb in colours:
        writer.write(cv2.cvtColor(solid(rgb, (size[1], size[0])), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.mark.parametrize("end, verdict", [((255, 0, 0), True), ((0, 0, 255), False)])
def test_a_video_is_decided_by_its_last_fifth_in_rgb_and_plotted(capsys, tmp_path, rb_model,
                                                                 end, verdict):
    start = (0, 0, 255) if verdict else (255, 0, 0)
    video = write_video(tmp_path / "grasp.avi", [start] * 40 + [end] * 10)
    code, out, _ = run_cli(capsys, "predict", video, rb_model, "--video", "--json",
                           "--plot", tmp_path / "frames.png")
    result = json.loads(out)
    assert code == 0 and result["frames"] == 50 and result["window_start"] == 40
    assert result["verdict"] is verdict  # BGR frames fed as-is would invert this
    assert (tmp_path / "frames.png").stat().st_size > 0


def test_the_video_rule_is_the_policy_vote_and_its_window_and_fraction_are_options():
    rng = np.random.default_rng(3)
    for _ in range(50):
        p = rng.random(int(rng.integers(5, 40)))
        decision, start = video_decision(p, 0.5)
        assert decision == decide(p[start:], PolicyConfig(combine="vote"))
    p = np.r_[np.ones(8), np.zeros(2)]  # 8 of 10 say success, the last two do not
    assert not video_decision(p, 0.5)[0].verdict
    assert video_decision(p, 0.5, window=1.0)[0].verdict
    assert not video_decision(p, 0.5, window=1.0, fraction=0.8)[0].verdict


# --------------------------------------------------------------------------- evaluate


def evaluation(p, truth, threshold=0.5):
    return Evaluation([f"{i}.png" for i in range(len(p))], np.asarray(truth, bool),
                      np.asarray(p, np.float64), threshold)


def test_metrics_of_both_classes_and_the_seed_line():
    ev = evaluation([0.9, 0.8, 0.3, 0.6, 0.2, 0.1], [1, 1, 1, 0, 0, 0])
    m = ev.metrics()
    assert m["confusion"] == {"tp": 2, "fn": 1, "tn": 2, "fp": 1}
    assert m["success"]["precision"] == pytest.approx(2 / 3)
    assert m["failure"]["recall"] == pytest.approx(2 / 3)
    assert m["success"]["f1"] == pytest.approx(2 / 3)
    assert m["roc_auc"] == pytest.approx(8 / 9)  # 8 of 9 (success, failure) pairs ordered
    assert ev.seed_line() == ("4 (2 successful + 2 unsuccessful) out of 6 tests are correct "
                              "(accuracy 0.67)")


def test_a_class_never_predicted_prints_precision_n_a_with_the_reason():
    text = report_text(evaluation([0.9, 0.8, 0.7], [1, 1, 0]))
    assert "precision n/a (no image judged failure)" in text and "nan" not in text


def test_target_precision_picks_the_lowest_threshold_that_reaches_it():
    ev = evaluation([0.95, 0.9, 0.8, 0.7, 0.6, 0.55, 0.3], [1, 1, 0, 1, 1, 0, 0])
    choice = threshold_for_precision(ev, 0.75)
    # at 0.6: 5 predicted successes, 4 true (0.8); at 0.55 the precision drops to 0.67
    assert choice.threshold == pytest.approx(0.6) and choice.precision == pytest.approx(0.8)
    assert (choice.accepted, choice.successes, choice.given_up) == (4, 4, 0)
    strict = threshold_for_precision(ev, 1.0)
    assert strict.threshold == pytest.approx(0.9) and strict.given_up == 2
    with pytest.raises(ConfigError, match="no threshold reaches"):
        threshold_for_precision(evaluation([0.9, 0.8], [0, 1]), 1.0)


def test_two_target_precisions_choose_the_failure_threshold_below_the_success_one():
    ev = evaluation([0.95, 0.9, 0.8, 0.7, 0.6, 0.55, 0.3, 0.2, 0.1], [1, 1, 0, 1, 1, 0, 1, 0, 0])
    strict = band_for_precision(ev, 1.0, 1.0)
    # successes: 0.95 and 0.9 are all right, 0.8 is not; failures: 0.1 and 0.2 right, 0.3 not
    assert strict.success.threshold == 0.9 and strict.threshold_failure == 0.2
    assert strict.recall_failure == 0.5 and strict.coverage == pytest.approx(4 / 9)
    assert strict.error_rate == 0.0
    loose = band_for_precision(ev, 1.0, 0.75)  # at or below 0.55: 3 of 4 are failures
    assert loose.threshold_failure == 0.55 and loose.precision_failure == 0.75
    assert loose.coverage == pytest.approx(6 / 9) and loose.error_rate == pytest.approx(1 / 6)
    with pytest.raises(ConfigError, match="no threshold_failure below"):
        band_for_precision(evaluation([0.9, 0.1, 0.2], [1, 1, 0]), 1.0, 1.0)  # 0.1: success


def test_the_evaluation_counts_images_in_the_band_as_no_verdict():
    ev = evaluation([0.9, 0.5, 0.1, 0.45], [1, 1, 0, 0]).at(0.8, 0.2)
    m = ev.metrics()
    assert ev.verdicts == [True, None, False, None]
    assert m["no_verdict"] == {"success": 1, "failure": 1} and m["coverage"] == 0.5
    assert m["error_rate"] == 0.0 and m["success"]["count"] == 2
    assert ev.seed_line().startswith("2 (1 successful + 1 unsuccessful) out of 4 tests")
    assert "coverage 0.500, error rate 0.000 among the verdicts" in report_text(ev)


def test_evaluate_reports_the_calibration_before_and_after_and_draws_the_reliability_diagram(
        capsys, tmp_path):
    model = red_minus_blue(tmp_path / "rb.keras", calibration=Calibration(temperature=2.0))
    colour_folders(tmp_path / "test", n=4)
    code, out, _ = run_cli(capsys, "evaluate", tmp_path / "test", model, "--out-dir",
                           tmp_path / "eval")
    lines = out.splitlines()
    assert code == 0
    assert any(line.startswith("  before calibration: ECE ") for line in lines)
    assert any(line.startswith("  after calibration:  ECE ") and line.endswith(
        "(temperature 2)") for line in lines)
    for name in ("reliability.png", "risk_coverage.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 0


def test_evaluate_json_scores_the_outputs_before_and_after_the_calibration(capsys, tmp_path):
    cal = Calibration(temperature=2.0)
    model = red_minus_blue(tmp_path / "rb.keras", calibration=cal)
    colour_folders(tmp_path / "test", n=4)
    write_rgb(tmp_path / "test" / "failure" / "reddish.png", solid((150, 40, 90)))
    _, out, _ = run_cli(capsys, "evaluate", tmp_path / "test", model, "--json", "--out-dir",
                        tmp_path / "eval")
    data = json.loads(out)
    truth = [img["truth"] for img in data["images"]]
    p = np.array([img["p_success"] for img in data["images"]])
    got = data["calibration"]
    assert got["calibrated"] == pytest.approx(calibration_scores(truth, p))
    assert got["uncalibrated"] == pytest.approx(calibration_scores(truth, cal.invert(p)))
    assert got["bins"] == 15 and got["temperature"] == 2.0


def write_purple_folders(folders):
    """Purple class folders the red-biased model ranks by red: four successes and three
    failures, one of which (red 150) ranks among the successes."""
    for i, red in enumerate((250, 200, 160, 140)):
        write_rgb(folders / "success" / f"{i}.png", solid((red, 0, 120)))
    for i, red in enumerate((150, 60, 20)):
        write_rgb(folders / "failure" / f"{i}.png", solid((red, 0, 120)))
    return folders


def test_two_target_precisions_write_the_band_into_the_card_and_predict_uses_it(
        capsys, tmp_path, rb_model):
    folders = write_purple_folders(tmp_path / "test")
    code, out, _ = run_cli(capsys, "evaluate", folders, rb_model, "--target-precision", "1.0",
                           "1.0", "--out-dir", tmp_path / "eval")
    assert code == 0 and "coverage 0.714" in out and "and threshold_failure" in out
    card = ModelCard.load(card_path_for(rb_model))
    p_red = {red: 1 / (1 + np.exp(-4 * (red - 120) / 255)) for red in (160, 60)}
    assert card.threshold == pytest.approx(p_red[160], abs=1e-3)
    assert card.threshold_failure == pytest.approx(p_red[60], abs=1e-3)
    clf, _ = GraspClassifier.from_path(rb_model)
    unsure = sorted(r.file.split("/")[-2] + "/" + r.file.split("/")[-1]
                    for r in predict_images(folders, clf) if r.verdict is None)
    assert unsure == ["failure/0.png", "success/3.png"]  # red 150 and 140: in the band


def test_evaluate_prints_the_seed_line_and_writes_the_plots_on_the_seed_samples(
        capsys, tmp_path, rb_model):
    code, out, _ = run_cli(capsys, "evaluate", seed_samples(), rb_model, "--out-dir",
                           tmp_path / "eval")
    assert code == 0
    assert out.splitlines()[0].endswith("out of 14 tests are correct (accuracy "
                                        f"{out.splitlines()[0][-5:-1]})")
    assert "confusion matrix" in out and "ROC AUC" in out
    for name in ("outputs.png", "roc.png", "precision_recall.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 0


def test_evaluate_json_is_strict_json_with_per_class_numbers(capsys, tmp_path, rb_model):
    colour_folders(tmp_path / "test", "pos", "neg", n=5)
    code, out, _ = run_cli(capsys, "evaluate", tmp_path / "test", rb_model, "--json",
                           "--out-dir", tmp_path / "eval")
    data = json.loads(out)
    assert code == 0 and data["accuracy"] == 1.0 and data["roc_auc"] == 1.0
    assert data["success"]["class"] == "pos" and data["failure"]["recall"] == 1.0
    assert data["seed_line"].startswith("10 (5 successful + 5 unsuccessful) out of 10")


def test_target_precision_writes_the_threshold_into_the_card_and_the_node_uses_it(
        capsys, tmp_path, rb_model):
    folders = write_purple_folders(tmp_path / "test")
    code, out, _ = run_cli(capsys, "evaluate", folders, rb_model, "--target-precision", "1.0",
                           "--out-dir", tmp_path / "eval")
    assert code == 0 and "1 are not" in out
    card = ModelCard.load(card_path_for(rb_model))
    p_160 = 1 / (1 + np.exp(-4 * (160 - 120) / 255))
    assert card.threshold == pytest.approx(p_160, abs=1e-3)  # 150 < 160: all above succeed
    clf, _ = GraspClassifier.from_path(rb_model)
    assert NodeConfig.from_values({"model_path": str(rb_model)}).policy(
        clf.card.threshold).threshold == card.threshold


def test_evaluate_warns_when_the_model_answers_the_same_for_every_image(
        capsys, tmp_path, rb_model):
    for i in range(8):  # grey scenes: red - blue = 0, P(success) 0.5 whatever the truth
        write_rgb(tmp_path / "test" / "success" / f"{i}.png", solid((100 + i, 50, 100 + i)))
    write_rgb(tmp_path / "test" / "failure" / "0.png", solid((90, 50, 90)))
    code, out, _ = run_cli(capsys, "evaluate", tmp_path / "test", rb_model, "--out-dir",
                           tmp_path / "eval")
    assert code == 0 and "(accuracy 0.89)" in out.splitlines()[0]
    warnings = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3 and "barely varies" in warnings[0]
    assert "no image is judged failure" in warnings[1]
    assert "no better than always answering success" in warnings[2]


def test_evaluate_skips_a_huge_declared_image_with_the_reason_and_reports_the_rest(
        capsys, tmp_path, rb_model):
    colour_folders(tmp_path / "test", n=3)
    huge_header_image(tmp_path / "test" / "success" / "huge.bmp")
    code, out, _ = run_cli(capsys, "evaluate", tmp_path / "test", rb_model, "--out-dir",
                           tmp_path / "eval")
    assert code == 0 and "out of 6 tests" in out.splitlines()[0]
    assert "1 unreadable files skipped" in out and "huge.bmp (header declares 50000x50000" in out


def test_evaluate_refuses_ambiguous_folders_in_one_line(capsys, tmp_path, rb_model):
    colour_folders(tmp_path / "test", "apples", "pears", n=1)
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "test", rb_model)
    assert code == 2 and "--success-class" in err and err.count("\n") == 1


def test_a_set_of_one_class_gives_no_precision_f1_or_roc_auc_and_says_why():
    """Successes only: success precision would be 1 and failure precision 0 whatever the
    model did; recall is still the share of successes called success."""
    m = evaluation([0.9, 0.8, 0.3, 0.7], [1, 1, 1, 1]).metrics()
    assert m["success"]["recall"] == 0.75 and m["confusion"]["fn"] == 1
    why = "needs both classes; the set holds success images only"
    assert m["undefined"] == {"success.precision": why, "success.f1": why,
                              "failure.precision": why, "failure.f1": why,
                              "failure.recall": "no failure images in the set",
                              "failure.accuracy": "no failure images in the set",
                              "roc_auc": "needs both classes in the set"}
    assert all(np.isnan(m[cls][key]) for cls, key in
               (k.split(".") for k in m["undefined"] if k != "roc_auc"))


def test_a_set_of_one_class_chooses_no_threshold_by_precision():
    with pytest.raises(DatasetError, match="holds success images only"):
        threshold_for_precision(evaluation([0.9, 0.8, 0.3], [1, 1, 1]), 0.9)


def test_evaluate_reports_recall_and_the_errors_of_a_folder_of_successes_only(
        capsys, tmp_path, rb_model):
    colour_folders(tmp_path / "test", "pos", "neg", n=5)
    shutil.rmtree(tmp_path / "test" / "neg")
    write_rgb(tmp_path / "test" / "pos" / "blue.png", solid((40, 40, 200)))  # judged failure
    code, out, _ = run_cli(capsys, "evaluate", tmp_path / "test", rb_model, "--out-dir",
                           tmp_path / "eval")
    why = "n/a (needs both classes; the set holds success images only)"
    assert code == 0 and out.splitlines()[0].startswith("5 (5 successful + 0 unsuccessful) "
                                                        "out of 6 tests")
    assert f"success  (pos): 5/6 correct (accuracy 0.833); precision {why} recall 0.833 " \
           f"F1 {why}" in out
    assert "ROC AUC n/a (needs both classes in the set)" in out and "nan" not in out
    assert "review: 1 false failure" in out
    assert not (tmp_path / "eval" / "roc.png").exists()
    page = (tmp_path / "eval" / "report.html").read_text()
    assert html.escape(f"precision {why}") in page and "blue.png" in page
    _, out, _ = run_cli(capsys, "evaluate", tmp_path / "test", rb_model, "--json",
                        "--out-dir", tmp_path / "eval")
    data = json.loads(out)
    assert data["success"]["recall"] == pytest.approx(5 / 6) and data["confusion"]["fn"] == 1
    assert data["success"]["precision"] is None and data["roc_auc"] is None
    assert data["undefined"]["success.precision"] == why[5:-1]


def test_evaluate_refuses_a_lone_folder_whose_class_its_name_does_not_say(
        capsys, tmp_path, rb_model):
    colour_folders(tmp_path / "test", "apples", "pears", n=1)
    shutil.rmtree(tmp_path / "test" / "pears")
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "test", rb_model)
    assert code == 2 and err.count("\n") == 1
    assert "one class folder, 'apples'" in err and "--success-class apples" in err


# --------------------------------------------------------------------------- export


@pytest.fixture(scope="module")
def exported(trained_exports):
    """The trained fixture exported to ONNX and TFLite (float), once for the run
    (conftest.py)."""
    return trained_exports


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_an_exported_model_gives_the_keras_verdicts_on_the_test_images(
        exported, trained_model, synth_data, fmt):
    result = exported[fmt]
    assert result.max_abs_diff < 1e-4 and result.verdicts_agree == result.samples
    keras_clf, _ = GraspClassifier.from_path(trained_model)
    clf, notes = GraspClassifier.from_path(result.path)
    assert clf.runtime == fmt and clf.card.threshold == keras_clf.card.threshold
    for folder in (synth_data["valid"], seed_samples()):
        a = evaluate_folder(folder, keras_clf)
        b = evaluate_folder(folder, clf)
        np.testing.assert_array_equal(a.predicted, b.predicted)
        np.testing.assert_allclose(a.p_success, b.p_success, atol=1e-4)


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_exported_models_serve_the_classifier_api_the_node_uses(exported, fmt):
    clf, notes = GraspClassifier.from_path(exported[fmt].path)
    clf.warm_up({1, 5})
    size = clf.input_size
    assert clf.predict_prepared(np.zeros((3, size, size, 3), np.float32)).shape == (3,)
    assert clf.predict([solid((10, 200, 30), (480, 640))]).shape == (1,) and notes


def test_two_exports_of_one_model_record_both_digests_and_the_source_s_in_their_card(
        exported, trained_model):
    from grasp_success_ros.model.digest import file_digest

    card = ModelCard.load(exported["onnx"].card_path)  # out/tiny.card.json, for both
    assert card.files == {Path(r.path).name: file_digest(r.path) for r in exported.values()}
    assert card.training["export"]["from_digest"] == file_digest(trained_model)


def test_a_float_export_beside_its_source_adds_itself_to_their_shared_card(tmp_path):
    from grasp_success_ros.model.digest import file_digest

    source = red_minus_blue(tmp_path / "rb.keras")
    result = export_model(source, "onnx", log=lambda s: None)
    card = ModelCard.load(card_path_for(source))
    assert result.card_path == str(card_path_for(source))
    assert card.files == {"rb.keras": file_digest(source),
                          "rb.onnx": file_digest(tmp_path / "rb.onnx")}
    assert load_model(source).notes == [] and GraspClassifier.from_path(result.path)[0]


def test_predict_and_evaluate_accept_an_exported_model(capsys, tmp_path, exported, synth_data):
    folder = synth_data["valid"] / "success"
    code, out, _ = run_cli(capsys, "predict", folder, exported["tflite"].path, "--csv")
    assert code == 0 and len(out.splitlines()) == 1 + len(list(folder.glob("*.png")))
    code, out, _ = run_cli(capsys, "evaluate", seed_samples(), exported["onnx"].path, "--json",
                           "--out-dir", tmp_path)
    assert code == 0 and json.loads(out)["images"][0]["file"]


def test_a_bf16_keras_export_computes_in_bfloat16_with_float32_outputs(
        trained_model, synth_data, tmp_path):
    result = export_model(trained_model, "keras", "bf16", out=tmp_path / "tiny.bf16.keras",
                          samples_dir=synth_data["valid"], log=lambda s: None)
    clf, _ = GraspClassifier.from_path(result.path)
    layers = clf.model.keras_model.layers[1].layers  # the backbone's own layers
    assert {layer.dtype_policy.name for layer in layers[1:]} == {"mixed_bfloat16"}
    assert clf.model.keras_model.layers[-1].dtype_policy.name == "float32"
    # bf16 keeps 8 bits of mantissa: close to the float model, the same verdicts here
    assert 0 < result.max_abs_diff < 0.05 and result.verdicts_agree == result.samples


@pytest.mark.parametrize("fmt, quantize, error", [
    ("keras", None, "keras export takes quantize bf16"),
    ("onnx", "bf16", "onnx export takes quantize fp16 or int8, not bf16")])
def test_bf16_is_the_keras_export_and_only_that(capsys, rb_model, fmt, quantize, error):
    args = ["--quantize", quantize] if quantize else []
    code, _, err = run_cli(capsys, "export", rb_model, "--format", fmt, *args)
    assert code == 2 and error in err and err.count("\n") == 1


def test_an_onnx_model_runs_on_the_best_available_provider_and_names_it(exported):
    import onnxruntime as ort

    from grasp_success_ros.model.runtimes import choose_providers

    clf, notes = GraspClassifier.from_path(exported["onnx"].path)
    best = choose_providers((), ort.get_available_providers())[0]
    assert clf.device == best and notes[-1].endswith(f"onnx runtime on {best}")


def test_a_keras_model_names_the_tensorflow_device_it_runs_on(trained_model):
    import tensorflow as tf

    clf, _ = GraspClassifier.from_path(trained_model)
    assert clf.device == ("GPU:0" if tf.config.list_logical_devices("GPU") else "CPU")


def test_an_unavailable_provider_is_a_one_line_error_naming_the_available_ones(
        capsys, exported, synth_data):
    import onnxruntime as ort

    available = ort.get_available_providers()
    missing = [p for p in ("tensorrt", "cuda") if f"{p}executionprovider" not in
               {a.lower() for a in available}]
    if not missing:
        pytest.skip("this onnxruntime offers every provider")
    code, _, err = run_cli(capsys, "predict", synth_data["valid"] / "success",
                           exported["onnx"].path, "--providers", missing[0])
    assert code == 2 and err.count("\n") == 1
    assert f"available: {', '.join(available)}" in err


def test_export_leaves_sys_stdout_alone_so_other_threads_keep_printing(capsys, rb_model,
                                                                     tmp_path):
    done = threading.Event()
    printed = []

    def chatter():
        while not done.is_set():
            printed.append(f"tick {len(printed)}")
            print(printed[-1], flush=True)
            time.sleep(0.002)

    thread = threading.Thread(target=chatter)
    thread.start()
    try:
        result = export_model(rb_model, "tflite", out=tmp_path / "rb.tflite", log=lambda s: None)
    finally:
        done.set()
        thread.join()
    out = capsys.readouterr().out.splitlines()
    assert len(printed) > 10 and [line for line in out if line.startswith("tick")] == printed
    assert result.max_abs_diff < 1e-5 and result.verdicts_agree == result.samples


@pytest.fixture(scope="module")
def int8_export(trained_model, tmp_path_factory) -> dict:
    """``grasp-success export --format tflite --quantize int8`` of the trained model,
    calibrated on 16 synthetic scenes: its exit code, --json output and log (stderr). One
    export for the two int8 tests (each made its own: 20-30 s apiece)."""
    import contextlib
    import io

    from grasp_success_ros.data.synth import write_dataset

    tmp = tmp_path_factory.mktemp("int8")
    write_dataset(tmp / "calibration", 16, seed=5)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in ("export", trained_model, "--format", "tflite",
                                          "--quantize", "int8", "--calibration",
                                          tmp / "calibration", "--out", tmp / "q.tflite",
                                          "--json")])
    return {"code": code, "result": json.loads(out.getvalue()) if code == 0 else None,
            "log": err.getvalue(), "dir": tmp}


def test_int8_needs_a_calibration_folder_and_then_runs(capsys, trained_model, int8_export):
    code, _, err = run_cli(capsys, "export", trained_model, "--format", "tflite",
                           "--quantize", "int8")
    assert code == 2 and "calibration" in err
    result = int8_export["result"]
    assert int8_export["code"] == 0, int8_export["log"][-2000:]
    assert result["size_bytes"] < result["keras_size_bytes"] / 3
    assert result["max_abs_diff"] < 0.5 and ModelCard.load(int8_export["dir"] / "q.card.json")


def test_a_tflite_int8_export_is_the_model_the_converter_makes_in_one_call(
        tmp_path, trained_model, int8_export):
    # the export calibrates and quantizes in separate processes (to hold less memory); the
    # reference is TFLiteConverter.convert() calibrating and quantizing in one call, on the
    # same calibration scenes
    from grasp_success_ros.data.synth import write_dataset
    from grasp_success_ros.model.export import (
        _convert_saved_model,
        _write_saved_model,
        sample_batch,
    )
    from grasp_success_ros.model.runtimes import open_exported

    assert int8_export["code"] == 0, int8_export["log"][-2000:]
    assert "one step" not in int8_export["log"]
    result = int8_export["result"]
    card = _write_saved_model(trained_model, False, tmp_path / "saved")
    np.save(tmp_path / "calibration.npy", sample_batch(int8_export["dir"] / "calibration", card))
    assert not _convert_saved_model(tmp_path / "saved", tmp_path / "one.tflite", "int8",
                                    tmp_path / "calibration.npy")
    apart, one = open_exported(result["path"]), open_exported(tmp_path / "one.tflite")
    write_dataset(tmp_path / "other", 8, seed=6)
    inputs = sample_batch(tmp_path / "other", card, seed=1)
    assert apart.interpreter.get_input_details()[0]["dtype"] == np.float32
    np.testing.assert_array_equal(apart.predict(inputs), one.predict(inputs))
    assert result["size_bytes"] == (tmp_path / "one.tflite").stat().st_size


def test_plots_leave_the_matplotlib_backend_as_it_was(tmp_path, svg_backend):
    import matplotlib

    from grasp_success_ros.evaluation.plots import (
        curve_plot,
        frames_plot,
        history_plots,
        outputs_plot,
    )

    rows = [{"epoch": e, "phase": phase, "accuracy": 0.5, "val_accuracy": 0.6, "loss": 0.7,
             "val_loss": 0.8} for e, phase in ((1, "head"), (2, "fine_tune"))]
    p, truth = np.array([0.2, 0.8, 0.6]), np.array([0, 1, 0])
    written = [*history_plots(rows, tmp_path / "accuracy.png", tmp_path / "loss.png"),
               outputs_plot(p, truth, 0.5, tmp_path / "outputs.png"),
               curve_plot(np.array([0.0, 1.0]), np.array([0.0, 1.0]), tmp_path / "roc.png",
                          "ROC", "false positive rate", "true positive rate", diagonal=True),
               frames_plot(p, 30.0, 0.5, tmp_path / "frames.png", window_start=1)]
    assert matplotlib.get_backend() == svg_backend
    assert all(f.read_bytes().startswith(b"\x89PNG") for f in written)
