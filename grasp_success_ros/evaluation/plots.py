"""PNG plots like the seed's (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def history_plots(rows: Sequence[dict[str, Any]], accuracy_png: str | Path,
                  loss_png: str | Path) -> tuple[Path, Path]:
    """Training and validation accuracy, and loss, per epoch (the seed notebook's two plots)."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in rows]
    out = []
    for key, title, path in (("accuracy", "accuracy", accuracy_png),
                             ("loss", "loss", loss_png)):
        fig, ax = plt.subplots(figsize=(6, 4))
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
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
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
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
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
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.5))
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
