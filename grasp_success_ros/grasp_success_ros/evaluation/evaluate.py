"""Evaluating a classifier on a labelled test folder: the seed's line and beyond.

Per class counts and accuracy, the confusion matrix, precision / recall / F1 of both
classes, ROC AUC, a threshold sweep, and the lowest threshold that reaches a target
precision on predicted successes (Dex-Net's "99% precision" way of using confidence).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grasp_success_ros.core.errors import ConfigError, DatasetError
from grasp_success_ros.core.policy import is_success
from grasp_success_ros.data.folders import (
    class_folders,
    decode_parallel,
    list_folders,
    skip_entry,
)
from grasp_success_ros.evaluation.metrics import (
    ROC_AUC_UNDEFINED,
    Confusion,
    pr_curve,
    roc_auc,
    roc_curve,
    seed_line,
    shown,
    undefined_reasons,
    usefulness_warnings,
)

CHUNK = 64


@dataclass
class Evaluation:
    """Every test image's truth (True = success) and P(success), judged at ``threshold``."""

    paths: list[str]
    truth: np.ndarray
    p_success: np.ndarray
    threshold: float
    success_class: str = "success"
    failure_class: str = "failure"
    skipped: list[str] = field(default_factory=list)

    @property
    def predicted(self) -> np.ndarray:
        return is_success(self.p_success, self.threshold)

    def at(self, threshold: float) -> Evaluation:
        return Evaluation(self.paths, self.truth, self.p_success, threshold, self.success_class,
                          self.failure_class, self.skipped)

    def seed_line(self) -> str:
        return seed_line([bool(t) for t in self.truth], [bool(p) for p in self.predicted])

    def _counted(self) -> Confusion:
        return Confusion.count(self.truth, self.predicted)

    def warnings(self) -> list[str]:
        """Why these scores may flatter a model that learned nothing (``metrics``)."""
        return usefulness_warnings(self.truth, self.p_success, self.threshold)

    def confusion(self) -> dict[str, int]:
        return self._counted().outcomes()

    def metrics(self) -> dict[str, Any]:
        counted = self._counted()
        c = counted.outcomes()
        return {
            "images": len(self.truth), "threshold": self.threshold,
            "accuracy": counted.accuracy(),
            "confusion": c,
            "success": {"class": self.success_class, "count": c["tp"] + c["fn"],
                        "correct": c["tp"], **counted.scores("success")},
            "failure": {"class": self.failure_class, "count": c["tn"] + c["fp"],
                        "correct": c["tn"], **counted.scores("failure")},
            "roc_auc": roc_auc(self.truth, self.p_success),
            "skipped": len(self.skipped),
        }


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
    if not ev.truth.any():
        raise DatasetError("the test set holds no successes: precision is undefined")
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


def evaluate_folder(test_dir: str | Path, classifier, success_class: str | None = None,
                    threshold: float | None = None,
                    log: Callable[[str], None] | None = None) -> Evaluation:
    """P(success) of every image under TEST_DIR's two class folders."""
    classes = class_folders(test_dir, success_class)
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
            probs.append(classifier.predict([images[i] for i in good]))
            paths += [str(chunk[i]) for i in good]
            truth += [bool(labels[i]) for i in good]
        if log:
            log(f"{min(start + CHUNK, len(listed.paths))}/{len(listed.paths)} images")
    if not paths:
        raise DatasetError(f"no readable images in {test_dir}")
    return Evaluation(paths, np.asarray(truth, bool), np.concatenate(probs),
                      card.threshold if threshold is None else threshold,
                      classes.success, classes.failure, skipped)


def write_plots(ev: Evaluation, out_dir: str | Path,
                choice: ThresholdChoice | None = None) -> dict[str, Path]:
    """The seed-style per-image output plot, the ROC and the precision-recall curves."""
    from grasp_success_ros.evaluation.plots import curve_plot, outputs_plot

    out_dir = Path(out_dir)
    paths = {"outputs": outputs_plot(ev.p_success, ev.truth, ev.threshold,
                                     out_dir / "outputs.png")}
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


def _class_line(key: str, k: dict[str, Any]) -> str:
    why = undefined_reasons(key)
    return (f"{key:8s} ({k['class']}): {k['correct']}/{k['count']} correct "
            f"(accuracy {shown(k['accuracy'], why['accuracy'])}); precision "
            f"{shown(k['precision'], why['precision'])} recall {shown(k['recall'], why['recall'])}"
            f" F1 {k['f1']:.3f}")


def _cell(value: float) -> str:
    return f"{value:.3f}" if np.isfinite(value) else "n/a"


def _sweep_lines(sweep: list[dict]) -> list[str]:
    lines = ["", f"{'threshold':>9s} {'accuracy':>8s} {'precision':>9s} {'recall':>6s} "
                 f"{'predicted successes':>19s}"]
    lines += [f"{r['threshold']:>9.2f} {r['accuracy']:>8.3f} {_cell(r['precision']):>9s} "
              f"{_cell(r['recall']):>6s} {r['predicted_successes']:>19d}" for r in sweep]
    if any(not np.isfinite(r["precision"]) for r in sweep):
        lines.append(f"precision n/a: {undefined_reasons('success')['precision']} at that "
                     "threshold")
    return lines


def report_text(ev: Evaluation, sweep: list[dict] | None = None) -> str:
    """A human-readable report; the seed's line first, then what makes it untrustworthy."""
    m = ev.metrics()
    c = m["confusion"]
    lines = [ev.seed_line()] + [f"warning: {w}" for w in ev.warnings()] + [""]
    lines += [_class_line(key, m[key]) for key in ("success", "failure")]
    lines += [
        "",
        "confusion matrix (rows: truth, columns: verdict)",
        f"{'':>10s} {'success':>8s} {'failure':>8s}",
        f"{'success':>10s} {c['tp']:>8d} {c['fn']:>8d}",
        f"{'failure':>10s} {c['fp']:>8d} {c['tn']:>8d}",
        "",
        f"ROC AUC {shown(m['roc_auc'], ROC_AUC_UNDEFINED)}; threshold {ev.threshold:.4g}"
        + (f"; {m['skipped']} unreadable files skipped" if m["skipped"] else ""),
    ]
    if m["skipped"]:
        lines += [f"  skipped: {entry}" for entry in ev.skipped]
    if sweep:
        lines += _sweep_lines(sweep)
    return "\n".join(lines)
