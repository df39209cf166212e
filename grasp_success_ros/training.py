"""Training a grasp classifier from labelled image folders (the seed's ``train.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grasp_success_ros.card import ModelCard
from grasp_success_ros.dataset import class_folders, load_folders
from grasp_success_ros.errors import ConfigError
from grasp_success_ros.model_builder import build_model
from grasp_success_ros.model_io import save_model
from grasp_success_ros.preprocessing import to_model_input


@dataclass(frozen=True)
class TrainConfig:
    """What to build and how to fit it; ``freeze_backbone`` None = freeze when pretrained."""

    backbone: str = "inception_resnet_v2"
    input_size: int = 350
    head: str = "gap"
    weights: str | None = "imagenet"
    epochs: int = 30
    batch_size: int = 20
    learning_rate: float = 1e-4
    optimizer: str = "rmsprop"
    freeze_backbone: bool | None = None
    augment: bool = True
    seed: int = 0
    success_class: str | None = None


def _augmenter(seed: int):
    import keras

    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed),
        keras.layers.RandomZoom(0.1, fill_mode="reflect", seed=seed),
    ], name="augment")


def _dataset(x: np.ndarray, y: np.ndarray, cfg: TrainConfig, card: ModelCard, train: bool):
    """Batches of model input; augmentation works on the resized uint8 frames."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if train:
        ds = ds.shuffle(len(x), seed=cfg.seed, reshuffle_each_iteration=True)
    ds = ds.batch(cfg.batch_size)
    pre = card.preprocessing
    if train and cfg.augment:
        aug = _augmenter(cfg.seed)
        ds = ds.map(lambda a, b: (tf.cast(aug(tf.cast(a, tf.float32), training=True), tf.uint8),
                                  b), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda a, b: (tf.numpy_function(lambda v: to_model_input(v, pre), [a],
                                                tf.float32), b))
    size = card.input_size
    ds = ds.map(lambda a, b: (tf.ensure_shape(a, (None, size, size, 3)), b))
    return ds.prefetch(tf.data.AUTOTUNE)


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Balanced weights, so the rare class counts as much as the common one."""
    n, pos = len(labels), float(labels.sum())
    if pos in (0.0, float(n)):
        raise ConfigError("training data holds only one class")
    return {0: n / (2 * (n - pos)), 1: n / (2 * pos)}


def train(train_dir: str | Path, valid_dir: str | Path, model_out: str | Path,
          cfg: TrainConfig, log: Callable[[str], None] = print) -> ModelCard:
    """Fit a model on TRAIN_DIR, pick the best epoch on VALID_DIR, save model + card."""
    import keras

    keras.utils.set_random_seed(cfg.seed)
    model, card = build_model(cfg.backbone, cfg.input_size, cfg.head, cfg.weights,
                              freeze_backbone=cfg.freeze_backbone if cfg.freeze_backbone
                              is not None else cfg.weights is not None)
    classes = class_folders(train_dir, cfg.success_class)
    tr = load_folders(train_dir, cfg.input_size, card.preprocessing, classes)
    va = load_folders(valid_dir, cfg.input_size, card.preprocessing,
                      class_folders(valid_dir, classes.success if cfg.success_class else None))
    for name, data in (("train", tr), ("valid", va)):
        log(f"{name}: {data.counts()}" + (f" skipped: {data.skipped[:3]}" if data.skipped else ""))
    opt = keras.optimizers.RMSprop(cfg.learning_rate) if cfg.optimizer == "rmsprop" \
        else keras.optimizers.Adam(cfg.learning_rate)
    model.compile(optimizer=opt, loss="binary_crossentropy", metrics=["accuracy"])
    started = time.monotonic()
    history = model.fit(
        _dataset(tr.images, tr.labels, cfg, card, train=True), epochs=cfg.epochs,
        validation_data=_dataset(va.images, va.labels, cfg, card, train=False),
        class_weight=class_weights(tr.labels), verbose=2, shuffle=False,
        callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", restore_best_weights=True,
                                                 patience=max(3, cfg.epochs // 3))])
    hist = history.history
    card = card.replace(
        success_class=classes.success, failure_class=classes.failure,
        training={
            "train_counts": tr.counts(), "valid_counts": va.counts(),
            "epochs_run": len(hist["loss"]), "best_val_loss": float(min(hist["val_loss"])),
            "val_accuracy": float(hist["val_accuracy"][int(np.argmin(hist["val_loss"]))]),
            "weights": str(cfg.weights), "optimizer": cfg.optimizer,
            "learning_rate": cfg.learning_rate, "batch_size": cfg.batch_size, "seed": cfg.seed,
            "train_seconds": round(time.monotonic() - started, 1),
        })
    save_model(model, model_out, card)
    log(f"saved {model_out} (val accuracy {card.training['val_accuracy']:.3f})")
    return card
