"""What a training leaves beside ``m.keras``: where each output goes, the card of the
trained model (classes, threshold, the temperature fitted on the validation set, what the
training did), the validation report, and the model, card, history and plots written.

Temperature scaling is fitted on the validation set's outputs (``model/calibration.py``
says why temperature scaling); model and card are written atomically as a pair
(``data/atomic.py``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from grasp_success_ros.core.errors import DatasetError
from grasp_success_ros.core.policy import is_success
from grasp_success_ros.data.preprocessing import to_model_input
from grasp_success_ros.evaluation.evaluate import fit_calibration
from grasp_success_ros.evaluation.metrics import seed_line, usefulness_warnings
from grasp_success_ros.model.calibration import Calibration
from grasp_success_ros.model.card import ModelCard, Preprocessing
from grasp_success_ros.model.forward import compiled_forward
from grasp_success_ros.model.loading import save_model
from grasp_success_ros.training.config import TrainConfig
from grasp_success_ros.training.fitting import Fitting
from grasp_success_ros.training.pipeline import Decoded, named_weights
from grasp_success_ros.training.recorder import Recorder


def output_paths(model_out: str | Path) -> dict[str, Path]:
    """Where training writes its outputs beside ``m.keras``."""
    model_out = Path(model_out)
    stem = model_out.with_suffix("")
    return {"model": model_out, "history": Path(f"{stem}.history.csv"),
            "accuracy_plot": Path(f"{stem}.accuracy.png"),
            "loss_plot": Path(f"{stem}.loss.png"), "logs": Path(f"{stem}.logs")}


def validation_outputs(model, va: Decoded, pre: Preprocessing) -> np.ndarray:
    """The trained model's P(success) on the validation set (before calibration)."""
    fn = compiled_forward(model, va.images.shape[1])
    return np.concatenate([np.asarray(fn(to_model_input(va.images[i:i + 64], pre)),
                                      np.float64).reshape(-1)
                           for i in range(0, len(va.images), 64)])


def outputs_report(truth: np.ndarray, p: np.ndarray, threshold: float,
                   log: Callable[[str], None]) -> list[str]:
    """The seed's line for these outputs, and a warning for each sign that the model
    learned nothing (``metrics.usefulness_warnings``); returns those warnings."""
    log("validation: " + seed_line(truth, list(is_success(p, threshold)),
                                   noun="validation images"))
    warnings = usefulness_warnings(truth, p, threshold)
    for warning in warnings:
        log(f"warning: {warning}")
    return warnings


def validation_report(model, va: Decoded, pre: Preprocessing, threshold: float,
                      log: Callable[[str], None]) -> list[str]:
    """The final model on the validation set: ``outputs_report`` of its outputs."""
    return outputs_report(va.labels > 0.5, validation_outputs(model, va, pre), threshold, log)


def fitted_calibration(truth: np.ndarray, p: np.ndarray, fitted_on: str,
                       log: Callable[[str], None]) -> Calibration | None:
    """Temperature scaling fitted on the validation outputs (``evaluate.fit_calibration``:
    why temperature scaling is in ``model/calibration.py``); None, said in the log, when
    the set cannot support a fit."""
    try:
        fitted = fit_calibration(truth, p, fitted_on)
    except DatasetError as exc:
        log(f"calibration skipped: {exc}")
        return None
    before, after = fitted.scores["before"], fitted.scores["after"]
    log(f"calibration: temperature {fitted.temperature:.4g} on {fitted.images} validation "
        f"images: ECE {before['ece']:.4f} -> {after['ece']:.4f}, log loss "
        f"{before['log_loss']:.4f} -> {after['log_loss']:.4f}")
    if fitted.at_bound:
        log("warning: the calibration's temperature is at its limit: the validation set is "
            "(nearly) perfectly separated; run grasp-success calibrate on more images")
    return fitted


def trained_card(model, card: ModelCard, f: Fitting, classes, valid_dir: str | Path,
                 log: Callable[[str], None], **facts: Any) -> ModelCard:
    """The card of the trained model: classes, threshold, the temperature fitted on the
    validation set, and what the training did (``facts`` adds to it)."""
    truth, p_valid = f.va.labels > 0.5, validation_outputs(model, f.va, f.pre)
    calibration = fitted_calibration(truth, p_valid, f"{valid_dir} (validation set)", log)
    warnings = outputs_report(truth, p_valid if calibration is None
                              else calibration.apply(p_valid), f.cfg.threshold, log)
    return card.replace(
        success_class=classes.success, failure_class=classes.failure,
        threshold=f.cfg.threshold, calibration=calibration,
        training=training_facts(f, classes, validation_warnings=warnings, **facts))


def training_facts(f: Fitting, classes, **facts: Any) -> dict[str, Any]:
    """What the training did, for the card's ``training`` field (``facts`` added)."""
    cfg, best = f.cfg, f.recorder.best_row or f.recorder.rows[-1]
    return {
        "train_counts": f.tr.counts(), "valid_counts": f.va.counts(),
        "skipped_files": f.tr.skipped[:20] + f.va.skipped[:20],
        "epochs_run": len(f.recorder.rows), "best_epoch": best["epoch"],
        "best_val_loss": float(best["val_loss"]),
        "val_accuracy": float(best["val_accuracy"]),
        "val_accuracy_success": float(best["val_accuracy_success"]),
        "val_accuracy_failure": float(best["val_accuracy_failure"]),
        "preset": cfg.preset, "weights": str(cfg.weights), "frozen_backbone": cfg.frozen,
        "fine_tune_epochs": cfg.fine_tune_epochs if cfg.frozen else 0,
        "optimizer": cfg.optimizer,
        "learning_rate": cfg.learning_rate, "batch_size": cfg.batch_size,
        "balance": cfg.balance,
        "class_weights": named_weights(f.weights, classes) if f.weights else None,
        "augmentation": dataclasses.asdict(cfg.augmentation) if cfg.augmenting else None,
        "seed": cfg.seed, **facts,
        **({"distribute": f.dist.summary()} if f.dist.strategy is not None else {}),
    }


def save_outputs(model, card: ModelCard, paths: dict[str, Path], recorder: Recorder,
                 cfg: TrainConfig, log: Callable[[str], None], plots: bool = True) -> None:
    """Model and card, the history CSV and, unless switched off, the history plots."""
    save_model(model, paths["model"], card)
    recorder.write_csv(paths["history"])
    if cfg.plots and plots:
        from grasp_success_ros.evaluation.plots import history_plots

        history_plots(recorder.rows, paths["accuracy_plot"], paths["loss_plot"])
    best = recorder.best_row or recorder.rows[-1]
    log(f"saved {paths['model']} (best epoch {best['epoch']}: val loss {best['val_loss']:.4f}, "
        f"val accuracy {best['val_accuracy']:.3f})")
