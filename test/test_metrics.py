"""The one metrics module: truth against verdict (None = no verdict), scores of both classes,
the seed's line, and the ROC of P(success)."""

import math

import numpy as np
import pytest

from grasp_success_ros.evaluation.metrics import Confusion, accuracy, roc_auc, seed_line

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
