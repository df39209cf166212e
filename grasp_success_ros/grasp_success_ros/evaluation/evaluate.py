"""Evaluating a classifier on a labelled test folder: the seed's line and beyond.

Per class counts and accuracy, the confusion matrix, precision / recall / F1 of both
classes, ROC AUC, a threshold sweep, the lowest threshold that reaches a target precision
on predicted successes (Dex-Net's "99% precision" way of using confidence) and, with a
second target, the failure threshold below it that reaches that precision on predicted
failures (the band between them gets no verdict: coverage and the error rate among the
verdicts say what it costs and buys), and the calibration of P(success) before and after
the card's calibration (fitted on another set by ``fit_calibration``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grasp_success_ros.core.errors import ConfigError, DatasetError
from grasp_success_ros.core.policy import is_success, thresholds_for, verdicts
from grasp_success_ros.data.folders import (
    class_folders,
    decode_parallel,
    list_folders,
    skip_entry,
)
from grasp_success_ros.evaluation.metrics import (
    CALIBRATION_BINS,
    ROC_AUC_UNDEFINED,
    Confusion,
    calibration_line,
    calibration_scores,
    one_class,
    one_class_reasons,
    pr_curve,
    reliability_bins,
    risk_coverage_curve,
    roc_auc,
    roc_curve,
    seed_line,
    shown,
    undefined_reasons,
    usefulness_warnings,
)
from grasp_success_ros.model.calibration import Calibration, fit_temperature

CHUNK = 64


@dataclass
class Evaluation:
    """Every test image's truth (True = success) and P(success), judged at ``threshold``
    (and ``threshold_failure``: no verdict between the two). ``p_uncalibrated`` is
    P(success) before the card's ``calibration`` (None: the same as ``p_success``)."""

    paths: list[str]
    truth: np.ndarray
    p_success: np.ndarray
    threshold: float
    success_class: str = "success"
    failure_class: str = "failure"
    skipped: list[str] = field(default_factory=list)
    threshold_failure: float | None = None
    p_uncalibrated: np.ndarray | None = None
    calibration: Calibration | None = None

    @property
    def predicted(self) -> np.ndarray:
        """Success verdicts (the success side of the rule)."""
        return is_success(self.p_success, self.threshold)

    @property
    def verdicts(self) -> list[bool | None]:
        """Every image's verdict by the node's rule; None inside the band."""
        return verdicts(self.p_success, self.threshold, self.threshold_failure)

    def at(self, threshold: float, threshold_failure: float | None = None) -> Evaluation:
        return dataclasses.replace(self, threshold=threshold,
                                   threshold_failure=threshold_failure)

    def seed_line(self) -> str:
        return seed_line([bool(t) for t in self.truth], self.verdicts)

    def _counted(self) -> Confusion:
        return Confusion.count(self.truth, self.verdicts)

    def warnings(self) -> list[str]:
        """Why these scores may flatter a model that learned nothing (``metrics``)."""
        return usefulness_warnings(self.truth, self.p_success, self.threshold)

    def single_class(self) -> str | None:
        """The class the set holds alone (a folder of one class), or None."""
        return one_class(self.truth)

    def reasons(self, cls: str) -> dict[str, str]:
        """Why each of a class's scores may be n/a on this set."""
        only = self.single_class()
        return {**undefined_reasons(cls), **(one_class_reasons(only) if only else {})}

    def _scores(self, counted: Confusion, cls: str) -> dict[str, float]:
        """A class's scores; precision and F1 NaN in a set of one class (they would be
        1 or 0 whatever the model did)."""
        scores = counted.scores(cls)
        if self.single_class():
            scores.update(precision=float("nan"), f1=float("nan"))
        return scores

    def _undefined(self, m: dict[str, Any]) -> dict[str, str]:
        """Every score the metrics give as NaN (null in JSON), with why."""
        out = {f"{cls}.{key}": why for cls in ("success", "failure")
               for key, why in self.reasons(cls).items() if not math.isfinite(m[cls][key])}
        if not math.isfinite(m["roc_auc"]):
            out["roc_auc"] = ROC_AUC_UNDEFINED
        return out

    def confusion(self) -> dict[str, int]:
        return self._counted().outcomes()

    def calibration_metrics(self) -> dict[str, Any]:
        """ECE (15 bins), Brier score and log loss before and after the card's calibration
        (``calibrated`` None when the card has none)."""
        raw = self.p_success if self.p_uncalibrated is None else self.p_uncalibrated
        return {"bins": CALIBRATION_BINS,
                "temperature": self.calibration.temperature if self.calibration else None,
                "uncalibrated": calibration_scores(self.truth, raw),
                "calibrated": calibration_scores(self.truth, self.p_success)
                if self.calibration else None}

    def metrics(self) -> dict[str, Any]:
        counted = self._counted()
        c = counted.outcomes()
        m = {
            "images": len(self.truth), "threshold": self.threshold,
            "threshold_failure": self.threshold_failure,
            "accuracy": counted.accuracy(),
            "confusion": c,
            "no_verdict": {cls: counted.table[cls]["none"] for cls in ("success", "failure")},
            "coverage": counted.coverage(), "error_rate": counted.error_rate(),
            "success": {"class": self.success_class,
                        "count": sum(counted.table["success"].values()),
                        "correct": c["tp"], **self._scores(counted, "success")},
            "failure": {"class": self.failure_class,
                        "count": sum(counted.table["failure"].values()),
                        "correct": c["tn"], **self._scores(counted, "failure")},
            "roc_auc": roc_auc(self.truth, self.p_success),
            "calibration": self.calibration_metrics(),
            "skipped": len(self.skipped),
        }
        return {**m, "undefined": self._undefined(m)}


def fit_calibration(truth: np.ndarray, p_uncalibrated: np.ndarray, fitted_on: str
                    ) -> Calibration:
    """Temperature scaling fitted on these images (``model/calibration``), with their ECE,
    Brier score and log loss before and after in ``scores``."""
    try:
        fitted = fit_temperature(p_uncalibrated, truth, fitted_on)
    except ValueError as exc:
        raise DatasetError(f"cannot calibrate on {fitted_on}: {exc}") from None
    scores = {"before": calibration_scores(truth, p_uncalibrated),
              "after": calibration_scores(truth, fitted.apply(p_uncalibrated))}
    return dataclasses.replace(fitted, scores=scores)


def calibration_lines(ev: Evaluation) -> list[str]:
    """What the calibration does on this set, before and after (or that there is none)."""
    cal = ev.calibration_metrics()
    lines = [f"calibration of P(success) ({cal['bins']}-bin ECE, Brier score, log loss; "
             "lower is better):",
             f"  before calibration: {calibration_line(cal['uncalibrated'])}"]
    if cal["calibrated"] is None:
        lines.append("  after calibration:  n/a (the card holds no calibration: "
                     "grasp-success calibrate MODEL VALID_DIR fits one)")
    else:
        lines.append(f"  after calibration:  {calibration_line(cal['calibrated'])} "
                     f"(temperature {cal['temperature']:.4g})")
    return lines


def threshold_sweep(ev: Evaluation, thresholds: Sequence[float] | None = None) -> list[dict]:
    """Accuracy, precision and recall of successes, and counts, at each threshold."""
    if thresholds is None:
        thresholds = np.round(np.linspace(0.05, 0.95, 19), 2)
    rows = []
    for t in thresholds:
        m = ev.at(float(t)).metrics()
        rows.append({"threshold": float(t), "accuracy": m["accuracy"],
                     "precision": m["success"]["precision"], "recall": m["success"]["recall"],
                     "failure_recall": m["failure"]["recall"],
                     "predicted_successes": m["confusion"]["tp"] + m["confusion"]["fp"]})
    return rows


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold reaching a target precision, and what it costs in successes."""

    threshold: float
    target: float
    precision: float
    recall: float
    accepted: int  # true successes still called success
    successes: int  # true successes in the set
    given_up: int  # true successes the previous threshold accepted and this one rejects
    previous: float

    def describe(self) -> str:
        return (f"threshold {self.threshold:.4f} reaches precision {self.precision:.3f} "
                f"(target {self.target}) on predicted successes; recall "
                f"{self.recall:.3f}: {self.accepted} of {self.successes} successes are still "
                f"called success, {self.successes - self.accepted} are not "
                f"({self.given_up} given up compared with the previous threshold "
                f"{self.previous:.4g})")


def threshold_for_precision(ev: Evaluation, target: float) -> ThresholdChoice:
    """The lowest threshold whose precision on predicted successes reaches ``target``."""
    if not 0.0 < target <= 1.0:
        raise ConfigError(f"target precision must be in (0, 1], not {target}")
    if ev.single_class():
        raise DatasetError(f"the test set holds {ev.single_class()} images only: precision on "
                           "predicted successes needs both classes; the card is unchanged")
    precision, recall, thresholds = pr_curve(ev.truth, ev.p_success)
    ok = np.nonzero(precision >= target)[0]
    if ok.size == 0:
        best = int(np.nanargmax(precision))
        raise ConfigError(
            f"no threshold reaches precision {target} on this set (best {precision[best]:.3f} "
            f"at threshold {thresholds[best]:.4f}); the card is unchanged")
    i = int(ok[-1])  # thresholds descend: the last that reaches the target is the lowest
    t = float(thresholds[i])
    accepted = int(np.sum(ev.truth & is_success(ev.p_success, t)))
    before = int(np.sum(ev.truth & is_success(ev.p_success, ev.threshold)))
    return ThresholdChoice(threshold=t, target=target, precision=float(precision[i]),
                           recall=float(recall[i]), accepted=accepted,
                           successes=int(ev.truth.sum()), given_up=max(0, before - accepted),
                           previous=ev.threshold)


@dataclass(frozen=True)
class BandChoice:
    """Two thresholds from two precision targets: ``success`` (the success threshold's
    choice) and the failure threshold below it, with what the band costs (coverage: the
    share of images that still get a verdict) and buys (the error rate among them)."""

    success: ThresholdChoice
    threshold_failure: float
    target_failure: float
    precision_failure: float
    recall_failure: float
    coverage: float
    error_rate: float

    def describe(self) -> str:
        return (f"{self.success.describe()}\nthreshold_failure {self.threshold_failure:.4f} "
                f"reaches precision {self.precision_failure:.3f} (target "
                f"{self.target_failure}) on predicted failures; recall "
                f"{self.recall_failure:.3f}\ncoverage {self.coverage:.3f} (the share of "
                f"images with a verdict; the others are uncertain), error rate "
                f"{self.error_rate:.3f} among the verdicts")


def failure_threshold_for_precision(ev: Evaluation, target: float, below: float
                                    ) -> tuple[float, float, float]:
    """The highest threshold_failure under ``below`` (the success threshold) whose
    precision on predicted failures (P(success) at or below it) reaches ``target``;
    returns (threshold_failure, precision, recall)."""
    if not 0.0 < target <= 1.0:
        raise ConfigError(f"target precision must be in (0, 1], not {target}")
    if ev.truth.all():
        raise DatasetError("the test set holds no failures: precision is undefined")
    # failures are the positives of -P(success): negation is exact, so the thresholds
    # found are P(success) values of the set
    precision, recall, negated = pr_curve(~ev.truth, -ev.p_success)
    ok = np.nonzero((precision >= target) & (-negated < below))[0]
    if ok.size == 0:
        raise ConfigError(f"no threshold_failure below threshold {below:.4f} reaches "
                          f"precision {target} on predicted failures; the card is unchanged")
    i = int(ok[-1])  # the thresholds come in ascending P(success): the last is the highest
    return float(-negated[i]), float(precision[i]), float(recall[i])


def band_for_precision(ev: Evaluation, target_success: float, target_failure: float
                       ) -> BandChoice:
    """Both thresholds: success at the lowest threshold reaching ``target_success`` on
    predicted successes, failure at the highest one below it reaching ``target_failure``
    on predicted failures; between them no verdict."""
    success = threshold_for_precision(ev, target_success)
    t_fail, precision, recall = failure_threshold_for_precision(ev, target_failure,
                                                                success.threshold)
    counted = ev.at(success.threshold, t_fail)._counted()
    return BandChoice(success, t_fail, target_failure, precision, recall,
                      counted.coverage(), counted.error_rate())


def evaluate_folder(test_dir: str | Path, classifier, success_class: str | None = None,
                    threshold: float | None = None,
                    log: Callable[[str], None] | None = None,
                    threshold_failure: float | None = None,
                    one_class: bool = False) -> Evaluation:
    """P(success) of every image under TEST_DIR's two class folders (or, with
    ``one_class``, its one), before and after the card's calibration, judged by the card's
    thresholds unless given."""
    classes = class_folders(test_dir, success_class, one_class=one_class)
    listed = list_folders(test_dir, classes)
    card = classifier.card
    paths, truth, probs = [], [], []
    skipped = list(listed.skipped)
    for start in range(0, len(listed.paths), CHUNK):
        chunk = listed.paths[start:start + CHUNK]
        labels = listed.labels[start:start + CHUNK]
        images = decode_parallel(chunk, card.input_size, card.preprocessing)
        good = [i for i, img in enumerate(images) if not isinstance(img, str)]
        skipped += [skip_entry(chunk[i], img) for i, img in enumerate(images)
                    if isinstance(img, str)]
        if good:
            probs.append(classifier.predict([images[i] for i in good], calibrated=False))
            paths += [str(chunk[i]) for i in good]
            truth += [bool(labels[i]) for i in good]
        if log:
            log(f"{min(start + CHUNK, len(listed.paths))}/{len(listed.paths)} images")
    if not paths:
        raise DatasetError(f"no readable images in {test_dir}")
    raw = np.concatenate(probs)
    pair = thresholds_for(threshold, threshold_failure, card.threshold, card.threshold_failure)
    return Evaluation(paths, np.asarray(truth, bool), card.calibrated(raw), pair[0],
                      classes.success or card.success_class,
                      classes.failure or card.failure_class, skipped, pair[1], raw,
                      card.calibration)


def write_plots(ev: Evaluation, out_dir: str | Path, choice: ThresholdChoice | None = None,
                band: BandChoice | None = None) -> dict[str, Path]:
    """The seed-style per-image output plot, the ROC and precision-recall curves (not for a
    set of one class: they need both), the reliability diagram (before and after
    calibration) and the risk-coverage curve."""
    from grasp_success_ros.evaluation.plots import outputs_plot

    out_dir = Path(out_dir)
    paths = {"outputs": outputs_plot(ev.p_success, ev.truth, ev.threshold,
                                     out_dir / "outputs.png")}
    for name in ("roc", "precision_recall"):
        (out_dir / f"{name}.png").unlink(missing_ok=True)  # never an earlier run's curve
    if not ev.single_class():
        paths.update(_ranking_plots(ev, out_dir, band.success if band else choice))
    return {**paths, **_selective_plots(ev, out_dir, band)}


def _ranking_plots(ev: Evaluation, out_dir: Path, choice: ThresholdChoice | None
                   ) -> dict[str, Path]:
    """The ROC and precision-recall curves, the thresholds in use marked."""
    from grasp_success_ros.evaluation.plots import curve_plot

    paths = {}
    auc = roc_auc(ev.truth, ev.p_success)
    fpr, tpr, _ = roc_curve(ev.truth, ev.p_success)
    m = ev.metrics()
    paths["roc"] = curve_plot(fpr, tpr, out_dir / "roc.png", f"ROC (AUC {auc:.3f})",
                              "false positive rate", "true positive rate (success recall)",
                              diagonal=True,
                              mark=(1 - m["failure"]["recall"], m["success"]["recall"]),
                              mark_label=f"threshold {ev.threshold:.3g}")
    precision, recall, _ = pr_curve(ev.truth, ev.p_success)
    mark = (choice.recall, choice.precision) if choice else \
        (m["success"]["recall"], m["success"]["precision"])
    paths["precision_recall"] = curve_plot(
        recall, precision, out_dir / "precision_recall.png",
        "Precision-recall of predicted successes", "recall", "precision", mark=mark,
        mark_label=f"threshold {(choice.threshold if choice else ev.threshold):.3g}")
    return paths


def _selective_plots(ev: Evaluation, out_dir: Path, band: BandChoice | None
                     ) -> dict[str, Path]:
    """Reliability diagram and risk-coverage curve (the band's point marked)."""
    from grasp_success_ros.evaluation.plots import reliability_plot, risk_coverage_plot

    cal = ev.calibration_metrics()
    curves = {f"before calibration (ECE {cal['uncalibrated']['ece']:.3f})": reliability_bins(
        ev.truth, ev.p_success if ev.p_uncalibrated is None else ev.p_uncalibrated)}
    if cal["calibrated"] is not None:
        curves[f"after calibration (ECE {cal['calibrated']['ece']:.3f})"] = \
            reliability_bins(ev.truth, ev.p_success)
    coverage, risk = risk_coverage_curve(ev.truth, ev.p_success, ev.threshold)
    if band is not None:
        at, label = (band.coverage, band.error_rate), (
            f"band {band.threshold_failure:.3g}-{band.success.threshold:.3g}")
    else:
        counted = ev._counted()
        at, label = (counted.coverage(), counted.error_rate()), "the card's thresholds"
    return {"reliability": reliability_plot(curves, out_dir / "reliability.png"),
            "risk_coverage": risk_coverage_plot(coverage, risk, out_dir / "risk_coverage.png",
                                                at, label)}


def _class_line(key: str, k: dict[str, Any], why: dict[str, str]) -> str:
    return (f"{key:8s} ({k['class']}): {k['correct']}/{k['count']} correct "
            f"(accuracy {shown(k['accuracy'], why['accuracy'])}); precision "
            f"{shown(k['precision'], why['precision'])} recall {shown(k['recall'], why['recall'])}"
            f" F1 {shown(k['f1'], why.get('f1', ''))}")


def _cell(value: float) -> str:
    return f"{value:.3f}" if np.isfinite(value) else "n/a"


def _sweep_lines(sweep: list[dict], precision_na: str) -> list[str]:
    lines = ["", f"{'threshold':>9s} {'accuracy':>8s} {'precision':>9s} {'recall':>6s} "
                 f"{'predicted successes':>19s}"]
    lines += [f"{r['threshold']:>9.2f} {r['accuracy']:>8.3f} {_cell(r['precision']):>9s} "
              f"{_cell(r['recall']):>6s} {r['predicted_successes']:>19d}" for r in sweep]
    if any(not np.isfinite(r["precision"]) for r in sweep):
        lines.append(f"precision n/a: {precision_na}")
    if any(not np.isfinite(r["recall"]) for r in sweep):
        lines.append(f"recall n/a: {undefined_reasons('success')['recall']}")
    return lines


def _confusion_lines(ev: Evaluation, m: dict[str, Any]) -> list[str]:
    """The confusion matrix; with a band, its no-verdict column, coverage and error rate."""
    c, none = m["confusion"], m["no_verdict"]
    band = ev.threshold_failure is not None
    head = f"{'':>10s} {'success':>8s} {'failure':>8s}" + (f" {'none':>8s}" if band else "")
    rows = [f"{'success':>10s} {c['tp']:>8d} {c['fn']:>8d}"
            + (f" {none['success']:>8d}" if band else ""),
            f"{'failure':>10s} {c['fp']:>8d} {c['tn']:>8d}"
            + (f" {none['failure']:>8d}" if band else "")]
    lines = ["confusion matrix (rows: truth, columns: verdict)", head, *rows]
    if band:
        lines.append(f"no verdict (uncertain) between threshold_failure "
                     f"{ev.threshold_failure:.4g} and threshold {ev.threshold:.4g}: coverage "
                     f"{shown(m['coverage'], 'no images')}, error rate "
                     f"{shown(m['error_rate'], 'no verdicts')} among the verdicts")
    return lines


def report_text(ev: Evaluation, sweep: list[dict] | None = None) -> str:
    """A human-readable report; the seed's line first, then what makes it untrustworthy."""
    m = ev.metrics()
    lines = [ev.seed_line()] + [f"warning: {w}" for w in ev.warnings()] + [""]
    lines += [_class_line(key, m[key], ev.reasons(key)) for key in ("success", "failure")]
    lines += ["", *_confusion_lines(ev, m), "",
              f"ROC AUC {shown(m['roc_auc'], ROC_AUC_UNDEFINED)}; threshold {ev.threshold:.4g}"
              + (f"; {m['skipped']} unreadable files skipped" if m["skipped"] else "")]
    if m["skipped"]:
        lines += [f"  skipped: {entry}" for entry in ev.skipped]
    lines += ["", *calibration_lines(ev)]
    if sweep:
        na = ev.reasons("success")["precision"] if ev.single_class() else \
            f"{undefined_reasons('success')['precision']} at that threshold"
        lines += _sweep_lines(sweep, na)
    return "\n".join(lines)
