"""The one metrics module: truth against verdict (None = no verdict), scores of both classes,
the seed's line, and the ROC of P(success)."""

import math

import numpy as np
import pytest

from grasp_success_ros.evaluation.metrics import (
    Confusion,
    accuracy,
    brier_score,
    coverage_at_risk,
    expected_calibration_error,
    log_loss,
    reliability_bins,
    risk_coverage_curve,
    roc_auc,
    seed_line,
    shown,
    undefined_reasons,
    usefulness_warnings,
)

TRUTH = [True, True, True, False, False]
VERDICTS = [True, None, False, False, True]


def test_the_confusion_table_has_a_column_for_no_verdict():
    assert Confusion.count(TRUTH, VERDICTS).table == {
        "success": {"success": 1, "failure": 1, "none": 1},
        "failure": {"success": 1, "failure": 1, "none": 0}}


def test_a_missing_verdict_counts_against_recall_but_not_precision():
    scores = Confusion.count(TRUTH, VERDICTS).scores("success")
    assert scores["precision"] == pytest.approx(1 / 2)
    assert scores["recall"] == pytest.approx(1 / 3) == scores["accuracy"]
    assert scores["f1"] == pytest.approx(2 / 5)


def test_a_class_never_called_has_undefined_precision_and_zero_f1():
    scores = Confusion.count([True, False], [False, False]).scores("success")
    assert math.isnan(scores["precision"]) and scores["recall"] == 0.0 and scores["f1"] == 0.0


def test_the_seed_line_and_accuracy_count_a_missing_verdict_as_wrong():
    assert accuracy(TRUTH, VERDICTS) == pytest.approx(2 / 5)
    assert seed_line(TRUTH, VERDICTS, noun="grasps") == (
        "2 (1 successful + 1 unsuccessful) out of 5 grasps are correct (accuracy 0.40)")


def test_nothing_to_count_reads_accuracy_zero_in_the_seed_line_and_nan_in_the_table():
    assert seed_line([], []).endswith("out of 0 tests are correct (accuracy 0.00)")
    assert accuracy([], []) == 0.0 and math.isnan(Confusion.count([], []).accuracy())


def test_roc_auc_counts_ties_half_and_is_undefined_for_one_class():
    assert roc_auc(np.array([1, 0], bool), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert np.isnan(roc_auc(np.array([1, 1], bool), np.array([0.2, 0.9])))


# The issue's model: 40 successes and 5 failures, P(success) 0.7214-0.7216 for every image.
ISSUE_TRUTH = np.r_[np.ones(40, bool), np.zeros(5, bool)]
ISSUE_P = np.linspace(0.7214, 0.7216, 45)


def test_outputs_that_barely_vary_are_a_warning_though_accuracy_reads_0_89():
    assert accuracy(ISSUE_TRUTH, list(ISSUE_P >= 0.5)) == pytest.approx(40 / 45)
    warnings = usefulness_warnings(ISSUE_TRUTH, ISSUE_P, 0.5)
    assert "barely varies" in warnings[0] and "0.7214-0.7216" in warnings[0]


def test_a_class_never_predicted_is_a_warning():
    warnings = usefulness_warnings(ISSUE_TRUTH, ISSUE_P, 0.5)
    assert any("no image is judged failure" in w for w in warnings)
    assert not any("judged success" in w for w in warnings)


def test_accuracy_no_better_than_always_answering_the_majority_is_a_warning():
    # 37 of 40 successes and 2 of 5 failures right: 39 of 45, below 40 of 45 for "success"
    p = np.r_[np.linspace(0.6, 1.0, 37), [0.1] * 3, [0.2] * 2, [0.8] * 3]
    assert usefulness_warnings(ISSUE_TRUTH, p, 0.5) == [
        "accuracy 0.867 is no better than always answering success (0.889 of this set)"]


def test_a_model_that_separates_the_classes_gets_no_warning():
    p = np.r_[np.linspace(0.6, 1.0, 40), np.linspace(0.0, 0.4, 5)]
    assert usefulness_warnings(ISSUE_TRUTH, p, 0.5) == []


def test_a_one_class_set_says_it_cannot_show_anything():
    assert usefulness_warnings(np.ones(5, bool), np.full(5, 0.9), 0.5) == [
        "the set holds success images only: it cannot show whether the model tells the "
        "classes apart"]


def test_undefined_scores_print_as_n_a_with_the_reason():
    scores = Confusion.count([True, False], [True, True]).scores("failure")
    assert shown(scores["precision"], undefined_reasons("failure")["precision"]) == \
        "n/a (no image judged failure)"
    assert shown(scores["recall"], "unused") == "0.000"


def test_coverage_and_the_error_rate_leave_the_no_verdict_column_out():
    counted = Confusion.count(TRUTH, VERDICTS)  # 4 verdicts, 2 of them right
    assert counted.judged == 4
    assert counted.coverage() == pytest.approx(0.8) and counted.error_rate() == pytest.approx(0.5)
    assert math.isnan(Confusion.count([True], [None]).error_rate())


# P(success) 0.9 (a success) in bin 13 of 15, 0.1 (a failure) in bin 1, 0.62 (a success) and
# 0.64 (a failure) both in bin 9: mean 0.63 against half of them successes.
CAL_TRUTH = [True, False, True, False]
CAL_P = [0.9, 0.1, 0.62, 0.64]


def test_expected_calibration_error_weighs_each_bins_gap_by_its_share_of_images():
    bins = reliability_bins(CAL_TRUTH, CAL_P)
    assert bins["count"].tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0]
    assert bins["mean_p"][9] == pytest.approx(0.63) and bins["observed"][9] == 0.5
    # 1/4 * |0.9 - 1| + 1/4 * |0.1 - 0| + 2/4 * |0.63 - 0.5|
    assert expected_calibration_error(CAL_TRUTH, CAL_P) == pytest.approx(0.115)


def test_the_brier_score_is_the_mean_squared_gap_to_the_truth():
    # (0.1^2 + 0.1^2 + 0.38^2 + 0.64^2) / 4
    assert brier_score(CAL_TRUTH, CAL_P) == pytest.approx(0.574 / 4)


def test_the_log_loss_is_the_mean_negative_log_likelihood_of_the_truth():
    expected = -(2 * math.log(0.9) + math.log(0.62) + math.log(0.36)) / 4
    assert log_loss(CAL_TRUTH, CAL_P) == pytest.approx(expected) == pytest.approx(0.427602)
    assert log_loss([False], [1.0]) == pytest.approx(-math.log(1e-15))  # clipped, finite


def test_the_risk_coverage_curve_leaves_the_least_confident_verdicts_out_first():
    # verdicts at 0.5: success 0.95 (right), failure 0.3 (wrong, confidence 0.7),
    # success 0.8 (wrong), failure 0.1 (right, confidence 0.9)
    coverage, risk = risk_coverage_curve(np.array([True, True, False, False]),
                                         np.array([0.95, 0.3, 0.8, 0.1]), 0.5)
    assert coverage.tolist() == [0.25, 0.5, 0.75, 1.0]
    assert risk == pytest.approx([0.0, 0.0, 1 / 3, 0.5])


def test_the_coverage_at_a_precision_is_the_most_verdicts_that_keep_it():
    truth, p = np.array([True, True, False, False]), np.array([0.95, 0.3, 0.8, 0.1])
    assert coverage_at_risk(truth, p, 0.5, 0.01) == 0.5  # the two most confident are right
    assert coverage_at_risk(truth, p, 0.5, 0.5) == 1.0
    assert coverage_at_risk(truth, np.array([0.1, 0.3, 0.8, 0.9]), 0.5, 0.01) == 0.0
