"""The model side of a training: the model built (under the strategy's scope, in mixed
precision where asked), compiled, and fitted in phases: the head (on cached backbone
features when the backbone is frozen and nothing is augmented) or the whole model, then
the optional fine-tuning of the backbone's top layers."""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.data.preprocessing import to_model_input
from grasp_success_ros.model.builder import build_model
from grasp_success_ros.model.card import ModelCard, Preprocessing
from grasp_success_ros.model.forward import compiled_forward
from grasp_success_ros.training.config import TrainConfig
from grasp_success_ros.training.pipeline import (
    Decoded,
    class_weights,
    feature_dataset,
    image_dataset,
    named_weights,
    weighted,
)
from grasp_success_ros.training.recorder import Recorder
from grasp_success_ros.training.strategy import ONE_DEVICE, Distribution

SEED_PREPROCESSING = Preprocessing(scale=1.0 / 255.0, offset=0.0, interpolation="area")


# --------------------------------------------------------------------------- model pieces


def backbone_of(model):
    """The nested backbone sub-model of a model made by ``build_model``."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            return layer
    raise ConfigError("model has no nested backbone")


def head_model(model, base):
    """The layers after the backbone, on a features input; they share the model's weights."""
    import keras

    layers = model.layers
    start = layers.index(base) + 1
    inputs = keras.Input(tuple(base.outputs[0].shape[1:]), name="features")
    x = inputs
    for layer in layers[start:]:
        x = layer(x)
    return keras.Model(inputs, x, name="head")


def features(base, data: Decoded, pre: Preprocessing, batch_size: int) -> np.ndarray:
    """The backbone's outputs for every image, computed once (the feature cache)."""
    fn = compiled_forward(base, data.images.shape[1])
    out = [fn(to_model_input(data.images[i:i + batch_size], pre))
           for i in range(0, len(data.images), batch_size)]
    return np.concatenate(out)


def unfreeze_top(base, n_layers: int) -> int:
    """Make the top ``n_layers`` weighted layers of the backbone trainable; BatchNorm layers
    stay frozen (in inference mode), as in Keras' fine-tuning guide."""
    import keras

    def tunable(layer):
        return bool(layer.weights) and not isinstance(layer, keras.layers.BatchNormalization)

    top = [layer for layer in base.layers if tunable(layer)][-n_layers:]
    base.trainable = True
    for layer in base.layers:
        layer.trainable = layer in top
    return len(top)


def optimizer(name: str, lr: float, decay_steps: int | None = None):
    """RMSprop or Adam; with ``decay_steps`` the rate follows a cosine down to zero (helps
    short from-scratch runs settle)."""
    import keras

    if decay_steps:
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps)
    return keras.optimizers.RMSprop(lr) if name == "rmsprop" else keras.optimizers.Adam(lr)


def metrics() -> list:
    """Accuracy and the per-class counts the recorder turns into per-class accuracy."""
    import keras

    return ["accuracy", keras.metrics.TruePositives(name="tp"),
            keras.metrics.FalseNegatives(name="fn"), keras.metrics.TrueNegatives(name="tn"),
            keras.metrics.FalsePositives(name="fp")]


def compile_model(model, opt) -> None:
    """Binary cross-entropy with the per-class counts; XLA stays off (Keras' default
    ``jit_compile="auto"`` would turn it on wherever a GPU is present)."""
    model.compile(optimizer=opt, loss="binary_crossentropy", metrics=metrics(),
                  jit_compile=False)


def gpu_present() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def build(cfg: TrainConfig, dist: Distribution) -> tuple[Any, ModelCard, bool]:
    """The model and its card, built under the strategy's scope and, where mixed precision
    is on, under Keras' mixed_float16 policy (set for the build only: it is process-wide)."""
    import keras

    mixed = cfg.mixed_precision == "on" or (cfg.mixed_precision == "auto" and gpu_present())
    policy = keras.mixed_precision.global_policy()
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with dist.scope():
            model, card = build_model(cfg.backbone, cfg.input_size, cfg.head, cfg.weights,
                                      dense_units=cfg.dense_units, dropout=cfg.dropout,
                                      freeze_backbone=cfg.frozen)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    if cfg.seed_preprocessing:
        card = card.replace(preprocessing=SEED_PREPROCESSING)
    return model, card, mixed


def float32_copy(model, cfg: TrainConfig):
    """The same weights in a float32 model, so CPUs on robots run it at full speed."""
    fresh, _ = build_model(cfg.backbone, cfg.input_size, cfg.head, None,
                           dense_units=cfg.dense_units, dropout=cfg.dropout,
                           freeze_backbone=cfg.frozen)
    fresh.set_weights(model.get_weights())
    return fresh


# --------------------------------------------------------------------------- fitting


def fit(model, train_ds, valid_ds, cfg: TrainConfig, recorder: Recorder, phase: str,
        epochs: int, steps: int | None, logs_dir: Path | None, verbose: int,
        dist: Distribution = ONE_DEVICE):
    """One fit phase: the recorder's callback, early stopping and TensorBoard as asked."""
    import keras

    callbacks = [recorder.callback(phase)]
    if cfg.early_stopping:
        patience = cfg.patience if cfg.patience is not None else max(3, cfg.epochs // 3)
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience))
    if logs_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(str(logs_dir / phase), write_graph=False))
    return model.fit(dist.shard(train_ds), epochs=epochs, steps_per_epoch=steps,
                     validation_data=dist.shard(valid_ds), callbacks=callbacks,
                     verbose=verbose, shuffle=False)


@dataclass
class Fitting:
    """What every fit phase of one training shares."""

    cfg: TrainConfig
    tr: Decoded
    va: Decoded
    pre: Preprocessing
    recorder: Recorder
    weights: dict[int, float] | None
    steps: int | None
    logs_dir: Path | None
    verbose: int
    dist: Distribution

    def images(self, model, phase: str, epochs: int) -> None:
        """Fit ``model`` on the decoded images (augmented as configured)."""
        fit(model, image_dataset(self.tr, self.cfg, self.pre, True).map(
            weighted(self.weights)), image_dataset(self.va, self.cfg, self.pre, False),
            self.cfg, self.recorder, phase, epochs, self.steps, self.logs_dir, self.verbose,
            self.dist)


def prepare_fitting(model, cfg: TrainConfig, tr: Decoded, va: Decoded, pre: Preprocessing,
                    paths: dict[str, Path], classes, dist: Distribution,
                    log: Callable[[str], None]) -> Fitting:
    """The shared state of the fit phases: logs folder, best-epoch recorder, class weights
    (a single-class set is refused either way), steps when batches are sampled."""
    paths["model"].parent.mkdir(parents=True, exist_ok=True)
    logs_dir = paths["logs"] if cfg.tensorboard else None
    if logs_dir is not None and importlib.util.find_spec("tensorboard") is None:
        log("TensorBoard logs skipped: the tensorboard package is not installed")
        logs_dir = None
    if logs_dir is not None:
        logs_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = paths["logs"] / "best.weights.h5"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    total = cfg.epochs + (cfg.fine_tune_epochs if cfg.frozen else 0)
    progress = cfg.progress if cfg.progress is not None else sys.stdout.isatty()
    weights = class_weights(tr.labels) if cfg.balance == "weights" else None
    if weights is None:
        class_weights(tr.labels)  # still refuse a single-class set
    else:
        log("class weights: " + ", ".join(
            f"{name} {w:.3f}" for name, w in named_weights(weights, classes).items()))
    steps = math.ceil(len(tr.labels) / cfg.batch_size) if cfg.balance == "sampling" else None
    return Fitting(cfg, tr, va, pre, Recorder(model, total, checkpoint, log), weights, steps,
                   logs_dir, 1 if progress else 0, dist)


def fit_phases(model, f: Fitting, log: Callable[[str], None]) -> tuple[bool, int]:
    """The head (on cached features when the backbone is frozen and nothing is augmented)
    or the whole model, then the optional fine-tuning; returns (features cached, layers
    unfrozen)."""
    cfg, base = f.cfg, backbone_of(model)
    use_features = cfg.frozen and not cfg.augmenting and cfg.cache_features
    if use_features:
        log("backbone frozen and nothing augmented: training the head on cached features")
        with f.dist.scope():
            head = head_model(model, base)
            compile_model(head, optimizer(cfg.optimizer, cfg.learning_rate))
        ftr = features(base, f.tr, f.pre, max(cfg.batch_size, 32))
        fva = features(base, f.va, f.pre, max(cfg.batch_size, 32))
        fit(head, feature_dataset(ftr, f.tr.labels, cfg, True).map(weighted(f.weights)),
            feature_dataset(fva, f.va.labels, cfg, False), cfg, f.recorder, "head",
            cfg.epochs, f.steps, f.logs_dir, f.verbose, f.dist)
    else:
        decay = cfg.epochs * (f.steps or math.ceil(len(f.tr.labels) / cfg.batch_size)) \
            if cfg.lr_schedule == "cosine" else None
        with f.dist.scope():
            compile_model(model, optimizer(cfg.optimizer, cfg.learning_rate, decay))
        f.images(model, "head" if cfg.frozen else "full", cfg.epochs)
    unfrozen = 0
    if cfg.frozen and cfg.fine_tune_epochs:
        f.recorder.restore_best()
        unfrozen = unfreeze_top(base, cfg.fine_tune_layers)
        log(f"fine-tuning the top {unfrozen} weighted layers of the backbone "
            f"at learning rate {cfg.fine_tune_learning_rate:g}")
        with f.dist.scope():
            compile_model(model, optimizer(cfg.optimizer, cfg.fine_tune_learning_rate))
        f.images(model, "fine_tune", cfg.fine_tune_epochs)
    return use_features, unfrozen
