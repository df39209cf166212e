"""Training a grasp classifier from labelled image folders (the seed's ``train.py``, and more):
the orchestration of the training modules.

The seed recipe is a preset (``TrainConfig.preset_config("seed")``: frozen backbone, RMSprop
1e-4, batch 20, its augmentation, RGB / 255).  Beyond it: fine-tuning the top of the
backbone once the head has converged, class weights or balanced sampling for unbalanced
data, early stopping with the best weights by validation loss, reproducible seeds, a
tf.data pipeline that decodes and augments in parallel and prefetches, cached backbone
features when the backbone is frozen and nothing is augmented, mixed precision where a GPU
is present, and several GPUs or machines under a tf.distribute strategy.

The pieces: ``config`` (``TrainConfig``, every option declared once), ``pipeline`` (folders,
decoding, tf.data, augmentation), ``fitting`` (the model built, compiled and fitted in
phases), ``recorder`` (the epoch history and the best weights), ``strategy``
(tf.distribute), ``outputs`` (the card, the validation report, what is written) and
``interruption`` (a training cut off by a signal or a full disk).

Everything is written beside the model: ``m.keras``, ``m.card.json``, ``m.history.csv``,
``m.accuracy.png``, ``m.loss.png`` and ``m.logs/`` (TensorBoard logs and the best
checkpoint).  Model and card are written atomically as a pair (``data/atomic.py``); a
training cut off by SIGINT, SIGTERM or an OSError (a full disk) writes its best weights so
far with an uncalibrated card that says where it stopped, and raises ``TrainingInterrupted``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.model.card import ModelCard
from grasp_success_ros.training.config import TrainConfig
from grasp_success_ros.training.fitting import build, fit_phases, float32_copy, prepare_fitting
from grasp_success_ros.training.interruption import (
    Run,
    Signalled,
    Signals,
    interrupted,
    signal_name,
)
from grasp_success_ros.training.outputs import output_paths, save_outputs, trained_card
from grasp_success_ros.training.pipeline import decode_images, list_data
from grasp_success_ros.training.strategy import (
    ONE_DEVICE,
    Distribution,
    distribution,
    split_batch,
    written_by,
)

__all__ = ["TrainConfig", "train"]


def train(train_dir: str | Path, valid_dir: str | Path, model_out: str | Path,
          cfg: TrainConfig, log: Callable[[str], None] = print,
          extra_train: Sequence[str | Path] = ()) -> ModelCard:
    """Fit a model on TRAIN_DIR (and the EXTRA_TRAIN folders, e.g. corrected review
    frames), keep the best epoch on VALID_DIR, save model, card, history, plots and
    TensorBoard logs beside MODEL_OUT."""
    cfg.validate()
    dist = distribution(cfg.distribute)  # first: multiworker wants it before other TF work
    with _op_determinism(cfg.deterministic), written_by(dist, Path(model_out)) as out:
        return _train(train_dir, valid_dir, out, cfg, log, tuple(extra_train), dist)


@contextlib.contextmanager
def _op_determinism(enabled: bool) -> Iterator[None]:
    """Deterministic TF ops while training, as they were afterwards: the switch is
    process-wide.  TF's public API can only turn it on, so the previous state is read and
    restored through ``tensorflow.python.framework.config`` (TF >= 2.9); without it the
    switch stays on, as it always did before it was scoped."""
    if not enabled:
        yield
        return
    import tensorflow as tf

    try:
        from tensorflow.python.framework.config import (
            disable_op_determinism,
            is_op_determinism_enabled,
        )
    except ImportError:
        disable_op_determinism = is_op_determinism_enabled = None
    was_on = is_op_determinism_enabled() if is_op_determinism_enabled else True
    tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if not was_on:
            disable_op_determinism()


def _train(train_dir: str | Path, valid_dir: str | Path, model_out: str | Path,
           cfg: TrainConfig, log: Callable[[str], None],
           extra_train: tuple[str | Path, ...] = (),
           dist: Distribution = ONE_DEVICE) -> ModelCard:
    """``train``'s work.  SIGINT, SIGTERM or an OSError (a full disk) while it fits stops it
    there: the best weights so far are written with an uncalibrated card that says so, and
    ``TrainingInterrupted`` is raised; the outputs themselves are written with signals held
    back, model and card as a pair (``save_model``)."""
    import keras

    paths = output_paths(model_out)
    if paths["model"].suffix != ".keras":
        raise ConfigError(f"the model is saved as a .keras file, not {paths['model'].name}")
    keras.utils.set_random_seed(cfg.seed)
    split_batch(dist, cfg, log)
    run = Run(cfg, paths, log)
    with Signals().installed() as signals:
        try:
            model, card = _fitted(run, train_dir, valid_dir, extra_train, dist)
        except (Signalled, OSError) as exc:
            with signals.held():
                raise interrupted(run, exc, signals.received) from None
        with signals.held():
            save_outputs(model, card, paths, run.fitting.recorder, cfg, log)
        if signals.pending is not None:
            log(f"{signal_name(signals.pending)} came while the trained model was being "
                "written: it was written first")
    return card


def _fitted(run: Run, train_dir: str | Path, valid_dir: str | Path,
            extra_train: tuple[str | Path, ...], dist: Distribution) -> tuple[Any, ModelCard]:
    """Data, model, the fit phases with the best epoch restored, and the calibrated card;
    ``run`` holds each piece as soon as it exists."""
    cfg, log = run.cfg, run.log
    classes, tr_list, va_list, per_dir = list_data(train_dir, valid_dir, cfg, extra_train)
    if extra_train:
        log("train folders: " + "; ".join(f"{d} {c}" for d, c in per_dir.items()))
    model, card, mixed = build(cfg, dist)
    pre = card.preprocessing
    tr = decode_images(tr_list, cfg.input_size, pre, Path(train_dir))
    va = decode_images(va_list, cfg.input_size, pre, Path(valid_dir))
    for name, data in (("train", tr), ("valid", va)):
        more = " ..." if len(data.skipped) > 3 else ""
        skipped = f" (skipped: {', '.join(data.skipped[:3])}{more})" if data.skipped else ""
        log(f"{name}: {data.counts()}{skipped}")
    fitting = prepare_fitting(model, cfg, tr, va, pre, run.paths, classes, dist, log)
    run.model, run.card, run.fitting, run.classes, run.mixed = model, card, fitting, classes, mixed
    run.per_dir = per_dir
    run.started = time.monotonic()
    use_features, unfrozen = fit_phases(model, fitting, log)
    fitting.recorder.restore_best()
    if not fitting.recorder.rows:
        raise ConfigError("training ran no epoch")
    if mixed:
        model = float32_copy(model, cfg)
    card = trained_card(model, card, fitting, classes, valid_dir, log, train_dirs=per_dir,
                        cached_features=use_features, fine_tuned_layers=unfrozen,
                        mixed_precision=mixed,
                        train_seconds=round(time.monotonic() - run.started, 1))
    return model, card
