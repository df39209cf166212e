"""PNG plots like the seed's, and bag-eval's. Drawn on ``matplotlib.figure.Figure`` objects
(the object-oriented API): no pyplot, no display and no backend switch, so the process's
matplotlib state stays as the caller set it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from grasp_success_ros.data.atomic import atomic_path


def _figure(figsize: tuple[float, float]):
    """A stand-alone figure and its axes (rendered by Agg when saved as PNG)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def _save(fig, path: str | Path, bbox_inches: str | None = "tight") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches=bbox_inches)
    return path


def history_plots(rows: Sequence[dict[str, Any]], accuracy_png: str | Path,
                  loss_png: str | Path) -> tuple[Path, Path]:
    """Training and validation accuracy, and loss, per epoch (the seed notebook's two plots)."""
    epochs = [r["epoch"] for r in rows]
    out = []
    for key, title, path in (("accuracy", "accuracy", accuracy_png),
                             ("loss", "loss", loss_png)):
        fig, ax = _figure((6, 4))
        ax.plot(epochs, [r[key] for r in rows], "bo-", label=f"training {title}")
        ax.plot(epochs, [r[f"val_{key}"] for r in rows], "r.-", label=f"validation {title}")
        starts = [r["epoch"] for r, prev in zip(rows[1:], rows[:-1], strict=False)
                  if r["phase"] != prev["phase"]]
        for start in starts:
            ax.axvline(start - 0.5, color="grey", linestyle=":", label="fine-tuning starts")
        ax.set_xlabel("epoch")
        ax.set_ylabel(title)
        ax.set_title(f"Training and validation {title}")
        ax.legend()
        out.append(_save(fig, path))
    return out[0], out[1]


def outputs_plot(p_success: np.ndarray, truth: np.ndarray, threshold: float,
                 path: str | Path) -> Path:
    """The seed's per-image output plot: one point per test image, by true class."""
    fig, ax = _figure((7, 4))
    idx = np.arange(len(p_success))
    for label, color, name in ((1, "tab:blue", "successful"), (0, "tab:red", "unsuccessful")):
        sel = truth == label
        ax.scatter(idx[sel], p_success[sel], s=12, c=color, label=f"truly {name}")
    ax.axhline(threshold, color="grey", linestyle="--", label=f"threshold {threshold:.3g}")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("test image")
    ax.set_ylabel("P(success)")
    ax.set_title("Output per test image")
    ax.legend(loc="center right", fontsize="small")
    return _save(fig, path)


def curve_plot(x: np.ndarray, y: np.ndarray, path: str | Path, title: str, xlabel: str,
               ylabel: str, diagonal: bool = False, mark: tuple[float, float] | None = None,
               mark_label: str = "") -> Path:
    """ROC or precision-recall curve."""
    fig, ax = _figure((5, 5))
    ax.plot(x, y, "b-")
    if diagonal:
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    if mark is not None:
        ax.plot([mark[0]], [mark[1]], "ro", label=mark_label)
        ax.legend(loc="lower left", fontsize="small")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _save(fig, path)


def frames_plot(p_success: np.ndarray, fps: float, threshold: float, path: str | Path,
                window_start: int | None = None, title: str = "") -> Path:
    """P(success) of every video frame over time: successes blue, failures red (the video
    follow-up's plot, drawn in P(success))."""
    fig, ax = _figure((8, 3.5))
    t = np.arange(len(p_success)) / (fps or 30.0)
    yes = p_success >= threshold
    ax.scatter(t[yes], p_success[yes], s=8, c="tab:blue", label="success")
    ax.scatter(t[~yes], p_success[~yes], s=8, c="tab:red", label="failure")
    ax.axhline(threshold, color="grey", linestyle="--")
    if window_start is not None and len(t):
        ax.axvspan(t[min(window_start, len(t) - 1)], t[-1], color="grey", alpha=0.15,
                   label="frames that decide")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("P(success)")
    ax.set_title(title or "P(success) per frame")
    ax.legend(loc="center left", fontsize="small")
    return _save(fig, path)


def events_plot(p_success: Sequence[float | None], truth: Sequence[bool | None],
                wrong: Sequence[bool], threshold: float, title: str, path: str | Path) -> Path:
    """bag-eval's P(success) of every event by its truth (blue success, red failure, grey
    unknown), wrong verdicts circled (events without a probability are left out)."""
    fig, ax = _figure((8, 3.5))
    xs = np.arange(1, len(p_success) + 1)
    p = [math.nan if x is None else x for x in p_success]
    colors = ["tab:blue" if t else "tab:red" if t is False else "tab:gray" for t in truth]
    ax.scatter(xs, p, c=colors, s=18)
    circled = [(x, y) for x, y, w in zip(xs, p, wrong, strict=True) if w]
    if circled:
        ax.scatter(*zip(*circled, strict=True), facecolors="none", edgecolors="k", s=60,
                   label="wrong")
        ax.legend(loc="lower right")
    ax.axhline(threshold, color="k", lw=0.8, ls="--")
    ax.set_xlabel("event (blue: truth success, red: truth failure)")
    ax.set_ylabel("P(success)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path, bbox_inches=None)  # bag-eval's plots keep their figure size


def confusion_plot(matrix: np.ndarray, path: str | Path,
                   truths: Sequence[str] = ("SUCCESS", "FAILURE"),
                   verdicts: Sequence[str] = ("SUCCESS", "FAILURE", "none")) -> Path:
    """A confusion matrix with its counts: rows truth, columns verdict."""
    fig, ax = _figure((4, 3))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center")
    ax.set_xticks(range(len(verdicts)), list(verdicts))
    ax.set_yticks(range(len(truths)), list(truths))
    ax.set_xlabel("verdict")
    ax.set_ylabel("truth")
    fig.tight_layout()
    return _save(fig, path, bbox_inches=None)  # bag-eval's plots keep their figure size


def reliability_plot(curves: dict[str, dict[str, np.ndarray]], path: str | Path) -> Path:
    """Reliability diagram: per P(success) bin (``metrics.reliability_bins``) the share of
    true successes against the mean P(success), one curve per label (before and after
    calibration); a calibrated model lies on the diagonal. Bars: images per bin."""
    fig, ax = _figure((5, 5.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for (label, bins), style in zip(curves.items(), ("rs-", "bo-"), strict=False):
        used = bins["count"] > 0
        ax.plot(bins["mean_p"][used], bins["observed"][used], style, label=label)
    first = next(iter(curves.values()))
    counts = ax.twinx()
    edges = first["edges"]
    counts.bar(edges[:-1], first["count"], width=np.diff(edges), align="edge", alpha=0.15,
               color="grey")
    counts.set_ylabel("images per bin")
    ax.set_zorder(counts.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("mean P(success) in the bin")
    ax.set_ylabel("share of true successes")
    ax.set_title("Reliability diagram")
    ax.legend(loc="upper left", fontsize="small")
    return _save(fig, path)


def risk_coverage_sources_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]],
                               path: str | Path, risks: Sequence[float] = ()) -> Path:
    """Several witnesses' risk-coverage curves on one axis ({name: (coverage, risk)}), the
    error rates of the precision targets as dotted lines: the further right a curve stays
    under a line, the more events that witness decides at that precision."""
    fig, ax = _figure((5.5, 4))
    for name, (coverage, risk) in curves.items():
        ax.plot(coverage, risk, marker=".", label=name)  # a point per distinct confidence
    for r in risks:
        ax.axhline(r, color="grey", linestyle=":", linewidth=1)
        ax.annotate(f"{1 - r:.0%} precision", (1.0, r), ha="right", va="bottom",
                    fontsize="x-small", color="grey")
    _risk_axes(ax, "labelled events", "Risk-coverage by source")
    return _save(fig, path)


def risk_coverage_plot(coverage: np.ndarray, risk: np.ndarray, path: str | Path,
                       at: tuple[float, float] | None = None, label: str = "") -> Path:
    """The error rate among verdicts against coverage (the share of images with a
    verdict) when the least confident images go without a verdict first; ``at`` marks
    an operating point (e.g. the chosen thresholds)."""
    fig, ax = _figure((5, 4))
    ax.plot(coverage, risk, "b-", label="least confident left out first")
    if at is not None and all(math.isfinite(v) for v in at):
        ax.plot([at[0]], [at[1]], "ro", label=label)
    _risk_axes(ax, "images", "Risk-coverage")
    return _save(fig, path)


def _risk_axes(ax, noun: str, title: str) -> None:
    """The axes every risk-coverage plot shares: coverage of ``noun`` against error rate."""
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel(f"coverage (share of {noun} with a verdict)")
    ax.set_ylabel("error rate among the verdicts")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
