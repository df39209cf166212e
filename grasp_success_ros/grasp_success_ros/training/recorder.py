"""The epoch recorder: the history of every fit phase, the best weights by validation loss
(restored at the end, and written to a checkpoint as they come), one console line per
epoch, and the history CSV."""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grasp_success_ros.data.atomic import atomic_open


def per_class(logs: dict[str, float], prefix: str = "val_") -> tuple[float, float]:
    """Accuracy on the success and on the failure images, from Keras' tp/fn/tn/fp logs."""
    tp, fn = logs.get(prefix + "tp", 0.0), logs.get(prefix + "fn", 0.0)
    tn, fp = logs.get(prefix + "tn", 0.0), logs.get(prefix + "fp", 0.0)
    succ = tp / (tp + fn) if tp + fn else float("nan")
    fail = tn / (tn + fp) if tn + fp else float("nan")
    return succ, fail


class Recorder:
    """Keeps the history of every phase, the best weights by validation loss (written to
    a checkpoint too), and prints one line per epoch."""

    def __init__(self, model, total_epochs: int, checkpoint: Path | None,
                 log: Callable[[str], None]) -> None:
        self.model = model
        self.total = total_epochs
        self.checkpoint = checkpoint
        self.log = log
        self.rows: list[dict[str, Any]] = []
        self.best_loss = math.inf
        self.best_weights = None
        self.best_row: dict[str, Any] | None = None

    def callback(self, phase: str):
        """A Keras callback that hands each finished epoch of ``phase`` to ``epoch_end``."""
        import keras

        recorder = self

        class _Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self._t0 = time.monotonic()

            def on_epoch_end(self, epoch, logs=None):
                recorder.epoch_end(phase, epoch, dict(logs or {}),
                                   time.monotonic() - self._t0)

        return _Callback()

    def epoch_end(self, phase: str, epoch: int, logs: dict[str, float], seconds: float) -> None:
        succ, fail = per_class(logs)
        row = {"epoch": len(self.rows) + 1, "phase": phase,
               "loss": logs.get("loss"), "accuracy": logs.get("accuracy"),
               "val_loss": logs.get("val_loss"), "val_accuracy": logs.get("val_accuracy"),
               "val_accuracy_success": succ, "val_accuracy_failure": fail,
               "seconds": round(seconds, 2)}
        self.rows.append(row)
        improved = row["val_loss"] is not None and row["val_loss"] < self.best_loss
        if improved:  # one assignment: a signal between two would pair a loss and other weights
            weights = self.model.get_weights()
            self.best_loss, self.best_weights, self.best_row = row["val_loss"], weights, row
            if self.checkpoint is not None:
                self.model.save_weights(self.checkpoint)
        self.log(
            f"epoch {row['epoch']}/{self.total} {phase}: loss {row['loss']:.4f} "
            f"acc {row['accuracy']:.3f} | val loss {row['val_loss']:.4f} "
            f"acc {row['val_accuracy']:.3f} (success {succ:.3f}, failure {fail:.3f}) "
            f"{seconds:.1f} s{' *best' if improved else ''}")

    def restore_best(self) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    def write_csv(self, path: Path) -> Path:
        with atomic_open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(self.rows[0]))
            writer.writeheader()
            writer.writerows(self.rows)
        return path
