"""The one home of the numbers every evaluation reports: truth against verdict counted in a
confusion table, precision / recall / F1 of both classes, accuracy, coverage and the error
rate among verdicts, the seed's line, the ROC, precision-recall and risk-coverage curves of
P(success), its calibration (expected calibration error, Brier score, log loss, reliability
bins), how an undefined score is printed ("n/a" and why), and the warnings that a model
which scores well has learned nothing.

A verdict may be None (no verdict: the node published an error for that event, or P(success)
lay between the two thresholds); it lands in the ``none`` column, is never correct, and
counts against recall and coverage but not precision or the error rate among verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from grasp_success_ros.core.policy import is_success

CLASSES = ("success", "failure")
VERDICTS = ("success", "failure", "none")


def _column(verdict: bool | None) -> str:
    return "none" if verdict is None else "success" if verdict else "failure"


@dataclass(frozen=True)
class Confusion:
    """Counts by truth (rows: success, failure) and verdict (columns: success, failure,
    none)."""

    table: dict[str, dict[str, int]]

    @classmethod
    def count(cls, truth: Sequence[bool], verdicts: Sequence[bool | None]) -> Confusion:
        table = {t: dict.fromkeys(VERDICTS, 0) for t in CLASSES}
        for t, v in zip(truth, verdicts, strict=True):
            table["success" if t else "failure"][_column(v)] += 1
        return cls(table)

    @property
    def total(self) -> int:
        return sum(sum(row.values()) for row in self.table.values())

    @property
    def correct(self) -> int:
        return self.table["success"]["success"] + self.table["failure"]["failure"]

    def outcomes(self) -> dict[str, int]:
        """tp, fn, tn, fp with success as the positive class (no verdict is none of them)."""
        t = self.table
        return {"tp": t["success"]["success"], "fn": t["success"]["failure"],
                "tn": t["failure"]["failure"], "fp": t["failure"]["success"]}

    def accuracy(self) -> float:
        """Correct verdicts over all items; NaN when there are none."""
        return self.correct / self.total if self.total else float("nan")

    @property
    def judged(self) -> int:
        """Items with a verdict (not in the ``none`` column)."""
        return self.total - sum(row["none"] for row in self.table.values())

    def coverage(self) -> float:
        """The share of items that got a verdict; NaN when there are none."""
        return self.judged / self.total if self.total else float("nan")

    def error_rate(self) -> float:
        """Wrong verdicts over the items with a verdict (the selective risk); NaN when no
        item got one."""
        return (self.judged - self.correct) / self.judged if self.judged else float("nan")

    def scores(self, cls: str) -> dict[str, float]:
        """Precision, recall (= this class's accuracy) and F1 of one class; NaN where a
        ratio has nothing to count."""
        other = "failure" if cls == "success" else "success"
        hit = self.table[cls][cls]
        called = hit + self.table[other][cls]
        actual = sum(self.table[cls].values())
        precision = hit / called if called else float("nan")
        recall = hit / actual if actual else float("nan")
        f1 = 2 * precision * recall / (precision + recall) \
            if hit and not math.isnan(precision + recall) else 0.0
        return {"precision": precision, "recall": recall, "accuracy": recall, "f1": f1}


def _seed_accuracy(c: Confusion) -> float:
    return c.accuracy() if c.total else 0.0


def accuracy(truth: Sequence[bool], verdicts: Sequence[bool | None]) -> float:
    """The seed line's accuracy: a missing verdict counts as wrong; 0.0 for no items."""
    return _seed_accuracy(Confusion.count(truth, verdicts))


def seed_line(truth: Sequence[bool], verdicts: Sequence[bool | None], noun: str = "tests") -> str:
    """The seed's summary line, e.g. "138 (69 successful + 69 unsuccessful) out of 143 tests
    are correct (accuracy 0.96)"; a missing verdict (None) counts as wrong."""
    c = Confusion.count(truth, verdicts)
    succ, fail = c.table["success"]["success"], c.table["failure"]["failure"]
    return (f"{succ + fail} ({succ} successful + {fail} unsuccessful) out of {c.total} {noun} "
            f"are correct (accuracy {_seed_accuracy(c):.2f})")


def _ranked(truth: np.ndarray, p: np.ndarray):
    """P(success) descending, with true successes counted down to each distinct value."""
    order = np.argsort(-p, kind="stable")
    p_sorted, t_sorted = p[order], truth[order].astype(np.float64)
    last = np.r_[np.nonzero(np.diff(p_sorted))[0], len(p_sorted) - 1]
    return p_sorted, t_sorted, last, np.cumsum(t_sorted)[last]


def roc_curve(truth: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates (success = positive) at every distinct threshold."""
    p_sorted, t_sorted, last, tps = _ranked(truth, p)
    fps = (last + 1) - tps
    pos, neg = max(t_sorted.sum(), 1.0), max(len(t_sorted) - t_sorted.sum(), 1.0)
    return np.r_[0.0, fps / neg], np.r_[0.0, tps / pos], np.r_[np.inf, p_sorted[last]]


def roc_auc(truth: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN when one class is missing."""
    truth = np.asarray(truth, bool)
    if truth.all() or not truth.any():
        return float("nan")
    fpr, tpr, _ = roc_curve(truth, np.asarray(p, np.float64))
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def pr_curve(truth: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall of predicted successes at every distinct threshold (descending)."""
    p_sorted, t_sorted, last, tps = _ranked(truth, p)
    return tps / (last + 1), tps / max(t_sorted.sum(), 1.0), p_sorted[last]


def risk_coverage_curve(truth: np.ndarray, p: np.ndarray, threshold: float
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Coverage and error rate among verdicts when the least confident images are left
    without a verdict first (confidence: the probability of the verdict at ``threshold``,
    as the node's), at every distinct confidence (Geifman and El-Yaniv's risk-coverage)."""
    truth, p = np.asarray(truth, bool), np.asarray(p, np.float64)
    said = is_success(p, threshold)
    confidence = np.where(said, p, 1.0 - p)
    order = np.argsort(-confidence, kind="stable")
    wrong = (said != truth)[order].astype(np.float64)
    last = np.r_[np.nonzero(np.diff(confidence[order]))[0], len(p) - 1]
    kept = last + 1.0
    return kept / len(p), np.cumsum(wrong)[last] / kept


def coverage_at_risk(truth: np.ndarray, p: np.ndarray, threshold: float,
                     max_risk: float) -> float:
    """The largest share of verdicts whose error rate stays at or below ``max_risk`` when
    the least confident are left uncertain first (:func:`risk_coverage_curve`): e.g. the
    coverage at 99 % precision of the verdicts, ``max_risk`` 0.01. 0.0 when no share does."""
    coverage, risk = risk_coverage_curve(truth, p, threshold)
    ok = risk <= max_risk + 1e-12
    return float(coverage[ok].max()) if ok.any() else 0.0


# --------------------------------------------------------------------------- calibration

CALIBRATION_BINS = 15  # as Guo et al. 2017 measure the expected calibration error
LOG_LOSS_EPS = 1e-15  # a true class given P = 0 costs -log(1e-15) = 34.5, not infinity


def reliability_bins(truth: Sequence[bool], p_success: Sequence[float],
                     bins: int = CALIBRATION_BINS) -> dict[str, np.ndarray]:
    """P(success) in ``bins`` equal-width bins over [0, 1] (a value on an edge goes to the
    upper bin, 1.0 to the last): per bin the count, the mean P(success) and the share of
    true successes (NaN in empty bins), as a reliability diagram draws them."""
    truth, p = np.asarray(truth, np.float64), np.asarray(p_success, np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.searchsorted(edges[1:-1], p, side="right"), 0, bins - 1)
    count = np.bincount(idx, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore"):
        mean_p = np.bincount(idx, p, minlength=bins) / count
        observed = np.bincount(idx, truth, minlength=bins) / count
    return {"edges": edges, "count": count, "mean_p": mean_p, "observed": observed}


def expected_calibration_error(truth: Sequence[bool], p_success: Sequence[float],
                               bins: int = CALIBRATION_BINS) -> float:
    """Sum over the bins of (share of images in the bin) x |mean P(success) - share of
    successes|: how far P(success) is from the frequency it claims; NaN for no images."""
    b = reliability_bins(truth, p_success, bins)
    n = b["count"].sum()
    if not n:
        return float("nan")
    used = b["count"] > 0
    return float(np.sum(b["count"][used] / n * np.abs(b["mean_p"][used] - b["observed"][used])))


def brier_score(truth: Sequence[bool], p_success: Sequence[float]) -> float:
    """Mean squared difference between P(success) and the truth (1 success, 0 failure)."""
    truth, p = np.asarray(truth, np.float64), np.asarray(p_success, np.float64)
    return float(np.mean((p - truth) ** 2)) if p.size else float("nan")


def log_loss(truth: Sequence[bool], p_success: Sequence[float]) -> float:
    """Mean negative log-likelihood of the truth (natural log); the probability given to
    the true class is taken as at least LOG_LOSS_EPS."""
    truth, p = np.asarray(truth, bool), np.asarray(p_success, np.float64)
    if not p.size:
        return float("nan")
    given = np.where(truth, p, 1.0 - p)
    return float(-np.mean(np.log(np.maximum(given, LOG_LOSS_EPS))))


def calibration_scores(truth: Sequence[bool], p_success: Sequence[float]) -> dict[str, float]:
    """Expected calibration error (15 bins), Brier score and log loss: lower is better."""
    return {"ece": expected_calibration_error(truth, p_success),
            "brier": brier_score(truth, p_success), "log_loss": log_loss(truth, p_success)}


def calibration_line(scores: dict[str, float]) -> str:
    return (f"ECE {scores['ece']:.4f}  Brier {scores['brier']:.4f}  "
            f"log loss {scores['log_loss']:.4f}")


# --------------------------------------------------------------------------- undefined, useless

# P(success) "barely varies" when 90% of a set's outputs lie within this of each other (the
# issue's model: 0.7214-0.7216 on every test image, while accuracy read 0.89).
MIN_SPREAD = 0.02


def shown(value: float, reason: str, fmt: str = ".3f") -> str:
    """A score as printed: the number, or "n/a (reason)" when it is undefined (NaN)."""
    return f"n/a ({reason})" if not math.isfinite(value) else format(value, fmt)


def undefined_reasons(cls: str) -> dict[str, str]:
    """Why each of a class's scores may be undefined (``Confusion.scores`` gives NaN)."""
    return {"precision": f"no image judged {cls}", "recall": f"no {cls} images in the set",
            "accuracy": f"no {cls} images in the set"}


ROC_AUC_UNDEFINED = "needs both classes in the set"


def one_class(truth: Sequence[bool]) -> str | None:
    """The class a set holds alone ("success" or "failure"), or None when it holds both."""
    truth = np.asarray(truth, bool)
    if truth.size and truth.all():
        return "success"
    return "failure" if truth.size and not truth.any() else None


def one_class_reasons(present: str) -> dict[str, str]:
    """Why precision and F1 are not given for a set of one class: a success-only set makes
    every success verdict right (precision 1) and every failure verdict wrong (precision 0)
    whatever the model does, so neither number says anything about it."""
    why = f"needs both classes; the set holds {present} images only"
    return {"precision": why, "f1": why}


def usefulness_warnings(truth: Sequence[bool], p_success: Sequence[float],
                        threshold: float, noun: str = "image") -> list[str]:
    """Why a model whose accuracy looks fine may have learned nothing: its outputs barely
    vary over the set, a class is never predicted, or it does no better than always
    answering the set's majority class.  Empty when none of these holds.  ``noun`` names
    what was judged (evaluate's image, bag-eval's event): both warn from here."""
    truth, p = np.asarray(truth, bool), np.asarray(p_success, np.float64)
    if p.size == 0:
        return []
    verdicts = is_success(p, threshold)
    share = float(truth.mean())
    majority, name = (share, "success") if share >= 0.5 else (1.0 - share, "failure")
    if truth.all() or not truth.any():
        return [f"the set holds {name} {noun}s only: it cannot show whether the model tells "
                "the classes apart"]
    warnings = []
    low, high = np.percentile(p, [5, 95])
    if high - low < MIN_SPREAD:
        warnings.append(
            f"P(success) barely varies: 90% of the {p.size} {noun}s lie within "
            f"{low:.4f}-{high:.4f}; the model answers nearly the same whatever it sees")
    for cls, called in (("success", verdicts), ("failure", ~verdicts)):
        if not called.any():
            warnings.append(f"no {noun} is judged {cls} (threshold "
                            f"{threshold:.4g}): the model never predicts this class on this set")
    acc = float(np.mean(verdicts == truth))
    if acc <= majority:
        warnings.append(f"accuracy {acc:.3f} is no better than always answering {name} "
                        f"({majority:.3f} of this set)")
    return warnings
