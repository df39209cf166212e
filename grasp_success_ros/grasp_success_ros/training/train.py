"""Training a grasp classifier from labelled image folders (the seed's ``train.py``, and more).

The seed recipe is a preset (``TrainConfig.preset("seed")``: frozen backbone, RMSprop 1e-4,
batch 20, its augmentation, RGB / 255).  Beyond it: fine-tuning the top of the backbone once
the head has converged, class weights or balanced sampling for unbalanced data, early
stopping with the best weights by validation loss, reproducible seeds, a tf.data pipeline
that decodes and augments in parallel and prefetches, cached backbone features when the
backbone is frozen and nothing is augmented, and mixed precision where a GPU is present.

On several GPUs or machines, ``distribute`` runs the same recipe under a tf.distribute
strategy (``mirrored``: the GPUs of one machine; ``multiworker``: several machines from
``TF_CONFIG``); ``batch_size`` is the global batch, split evenly over the replicas, and the
learning rate is used as given for it (no implicit scaling), so one device and N devices
run the same optimisation.

After training, temperature scaling is fitted on the validation set's outputs and stored in
the card (``model/calibration.py`` says why temperature scaling).

Everything is written beside the model: ``m.keras``, ``m.card.json``, ``m.history.csv``,
``m.accuracy.png``, ``m.loss.png`` and ``m.logs/`` (TensorBoard logs and the best
checkpoint).  Model and card are written atomically as a pair (``data/atomic.py``); a
training cut off by SIGINT, SIGTERM or an OSError (a full disk) writes its best weights so
far with an uncalibrated card that says where it stopped, and raises ``TrainingInterrupted``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import importlib.util
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grasp_success_ros.core.errors import (
    ConfigError,
    DatasetError,
    TrainingInterrupted,
    require,
)
from grasp_success_ros.core.policy import is_success
from grasp_success_ros.data.atomic import atomic_open
from grasp_success_ros.data.folders import (
    ImageList,
    class_counts,
    class_folders,
    list_folders,
    merge_lists,
    read_or_reason,
    read_resized,
    skip_entry,
)
from grasp_success_ros.data.preprocessing import to_model_input
from grasp_success_ros.evaluation.evaluate import fit_calibration
from grasp_success_ros.evaluation.metrics import seed_line, usefulness_warnings
from grasp_success_ros.model.builder import build_model
from grasp_success_ros.model.calibration import Calibration
from grasp_success_ros.model.card import ModelCard, Preprocessing
from grasp_success_ros.model.forward import compiled_forward
from grasp_success_ros.model.loading import save_model

BALANCES = ("weights", "sampling", "none")
DISTRIBUTIONS = ("none", "mirrored", "multiworker")
TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')
# Refused rather than unfrozen behind the user's back: a frozen random backbone never learns
# (the loss stays at 0.693), and unfreezing it would silently turn the recipe asked for
# (e.g. --preset seed) into a far slower from-scratch training of the whole network.
FROZEN_RANDOM_BACKBONE = (
    "a frozen backbone needs pretrained weights: with --weights none its random features "
    "never change and the model cannot learn; pass --weights imagenet or a weights file, "
    "or --freeze-backbone no to train the whole network from scratch")
SEED_PREPROCESSING = Preprocessing(scale=1.0 / 255.0, offset=0.0, interpolation="area")


@dataclass(frozen=True)
class Augmentation:
    """Random changes to training images (``ImageDataGenerator``'s ranges and units).

    ``rotation`` is in degrees, ``shift`` and ``zoom`` are fractions of the image, and
    ``shear`` is in degrees as ``ImageDataGenerator`` measured it (the seed's 0.2 is 0.2
    degrees).  ``fill`` says how the uncovered border is filled.
    """

    rotation: float = 0.0
    shift: float = 0.0
    shear: float = 0.0
    zoom: float = 0.0
    horizontal_flip: bool = False
    fill: str = "nearest"

    @property
    def active(self) -> bool:
        return bool(self.rotation or self.shift or self.shear or self.zoom
                    or self.horizontal_flip)


AUGMENTATIONS = {
    "seed": Augmentation(rotation=40, shift=0.2, shear=0.2, zoom=0.2, horizontal_flip=True),
    "light": Augmentation(shift=0.1, zoom=0.1, horizontal_flip=True, fill="reflect"),
    "none": Augmentation(),
}


@dataclass(frozen=True)
class TrainConfig:
    """What to build and how to fit it; ``freeze_backbone`` None = freeze when pretrained.

    ``balance``: ``weights`` (class weights, default), ``sampling`` (each batch drawn half
    from each class) or ``none``.  ``fine_tune_epochs`` > 0 unfreezes the top
    ``fine_tune_layers`` layers of a frozen backbone after the head has converged and trains
    on at ``fine_tune_learning_rate``.  ``seed_preprocessing`` feeds RGB / 255 (the seed's
    convention) instead of the backbone's usual scaling.  ``cache_features`` trains the head
    on the frozen backbone's features, computed once, when nothing is augmented.
    ``mixed_precision``: ``auto`` (on where a GPU is present), ``on`` or ``off``.
    ``distribute``: ``none``, ``mirrored`` (every GPU of this machine, or without GPUs its
    logical CPU devices) or ``multiworker`` (the machines of ``TF_CONFIG``); ``batch_size``
    is then the global batch and ``learning_rate`` is used as given for it.
    """

    backbone: str = "inception_resnet_v2"
    input_size: int = 350
    head: str = "gap"
    weights: str | None = "imagenet"
    epochs: int = 30
    batch_size: int = 20
    learning_rate: float = 1e-4
    optimizer: str = "rmsprop"
    lr_schedule: str = "constant"
    freeze_backbone: bool | None = None
    augment: bool = True
    augmentation: Augmentation = AUGMENTATIONS["light"]
    seed: int = 0
    success_class: str | None = None
    dense_units: int = 1024
    dropout: float = 0.2
    balance: str = "weights"
    early_stopping: bool = True
    patience: int | None = None
    fine_tune_epochs: int = 0
    fine_tune_layers: int = 30
    fine_tune_learning_rate: float = 1e-5
    cache_features: bool = True
    seed_preprocessing: bool = False
    mixed_precision: str = "auto"
    deterministic: bool = False
    threshold: float = 0.5
    tensorboard: bool = True
    plots: bool = True
    progress: bool | None = None
    preset: str | None = None
    distribute: str = "none"

    @classmethod
    def preset_config(cls, name: str, **overrides: Any) -> TrainConfig:
        """A named recipe (``seed``), with ``overrides`` applied on top."""
        if name != "seed":
            raise ConfigError(f"unknown preset {name!r}; the only preset is 'seed'")
        recipe = dict(freeze_backbone=True, optimizer="rmsprop", learning_rate=1e-4,
                      batch_size=20, augment=True, augmentation=AUGMENTATIONS["seed"],
                      seed_preprocessing=True, preset="seed")
        recipe.update(overrides)
        return cls(**recipe).validate()

    def validate(self) -> TrainConfig:
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch size must be >= 1"),
            (self.learning_rate > 0, "learning rate must be > 0"),
            (self.optimizer in ("rmsprop", "adam"), "optimizer must be rmsprop or adam"),
            (self.lr_schedule in ("constant", "cosine"), "lr_schedule must be constant or cosine"),
            (self.balance in BALANCES, f"balance must be one of {BALANCES}"),
            (self.fine_tune_epochs >= 0, "fine-tune epochs must be >= 0"),
            (self.fine_tune_layers >= 1, "fine-tune layers must be >= 1"),
            (self.mixed_precision in ("auto", "on", "off"), "mixed precision: auto, on or off"),
            (0.0 <= self.threshold <= 1.0, "threshold must be in [0, 1]"),
            (self.distribute in DISTRIBUTIONS, f"distribute must be one of {DISTRIBUTIONS}"),
            (self.pretrained or not self.freeze_backbone, FROZEN_RANDOM_BACKBONE),
        ]
        require(checks)
        return self

    @property
    def pretrained(self) -> bool:
        return self.weights is not None and str(self.weights).lower() != "none"

    @property
    def frozen(self) -> bool:
        return self.freeze_backbone if self.freeze_backbone is not None else self.pretrained

    @property
    def augmenting(self) -> bool:
        return self.augment and self.augmentation.active


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Balanced weights, so the rare class counts as much as the common one."""
    n, pos = len(labels), float(labels.sum())
    if pos in (0.0, float(n)):
        raise ConfigError("training data holds only one class")
    return {0: n / (2 * (n - pos)), 1: n / (2 * pos)}


# --------------------------------------------------------------------------- data


@dataclass
class Decoded:
    """Images decoded and resized to the model input (uint8), labels, and what was skipped."""

    images: np.ndarray
    labels: np.ndarray
    skipped: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return class_counts(self.labels, self.skipped)


def decode_images(listed: ImageList, size: int, pre: Preprocessing, root: Path) -> Decoded:
    """Decode and resize every file in a parallel tf.data map; unreadable files are skipped
    and counted (zero-byte ones were already left out by ``list_folders``)."""
    import tensorflow as tf

    def read(path: bytes):
        image = read_resized(path.decode(), size, pre)
        if image is None:
            return np.zeros((size, size, 3), np.uint8), False
        return image, True

    def load(path):
        image, ok = tf.numpy_function(read, [path], (tf.uint8, tf.bool), stateful=False)
        return tf.ensure_shape(image, (size, size, 3)), ok

    paths = [str(p) for p in listed.paths]
    ds = tf.data.Dataset.from_tensor_slices(paths).map(
        load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(64)
    images, oks = [], []
    for image, ok in ds.prefetch(2).as_numpy_iterator():
        images.append(image)
        oks.append(ok)
    ok = np.concatenate(oks) if oks else np.zeros(0, bool)
    skipped = list(listed.skipped) + [skip_entry(p, read_or_reason(p, size, pre))
                                      for p, good in zip(paths, ok, strict=True) if not good]
    labels = listed.labels[ok]
    for label, name in ((1, listed.classes.success), (0, listed.classes.failure)):
        if not np.any(labels == label):
            raise DatasetError(f"no readable images in {root / name}")
    return Decoded(np.concatenate(images)[ok], labels, skipped)


def _augmenter(aug: Augmentation, seed: int):
    import keras

    layers = []
    if aug.horizontal_flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if aug.rotation:
        layers.append(keras.layers.RandomRotation(aug.rotation / 360.0, fill_mode=aug.fill,
                                                  seed=seed + 1))
    if aug.shift:
        layers.append(keras.layers.RandomTranslation(aug.shift, aug.shift, fill_mode=aug.fill,
                                                     seed=seed + 2))
    if aug.shear:
        factor = math.tan(math.radians(aug.shear))
        fill = aug.fill if aug.fill in ("reflect", "wrap", "constant") else "reflect"
        layers.append(keras.layers.RandomShear(factor, factor, fill_mode=fill, seed=seed + 3))
    if aug.zoom:
        layers.append(keras.layers.RandomZoom((-aug.zoom, aug.zoom), (-aug.zoom, aug.zoom),
                                              fill_mode=aug.fill, seed=seed + 4))
    return keras.Sequential(layers, name="augment")


def _to_input(batch, pre: Preprocessing, size: int):
    """The one preprocessing path (``to_model_input``) inside the tf.data graph."""
    import tensorflow as tf

    x = tf.numpy_function(lambda v: to_model_input(v, pre), [batch], tf.float32,
                          stateful=False)
    return tf.ensure_shape(x, (None, size, size, 3))


def _balanced(ds_pos, ds_neg, seed: int):
    import tensorflow as tf

    return tf.data.Dataset.sample_from_datasets(
        [ds_pos.repeat(), ds_neg.repeat()], weights=[0.5, 0.5], seed=seed)


def image_dataset(data: Decoded, cfg: TrainConfig, pre: Preprocessing, train: bool):
    """Batches of model input: shuffle, balance, augment in parallel, prefetch."""
    import tensorflow as tf

    size = data.images.shape[1]
    x, y = data.images, data.labels
    if train and cfg.balance == "sampling":
        pos = tf.data.Dataset.from_tensor_slices((x[y == 1], y[y == 1]))
        neg = tf.data.Dataset.from_tensor_slices((x[y == 0], y[y == 0]))
        ds = _balanced(pos.shuffle(len(x), seed=cfg.seed), neg.shuffle(len(x), seed=cfg.seed),
                       cfg.seed)
    else:
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if train:
            ds = ds.shuffle(len(x), seed=cfg.seed, reshuffle_each_iteration=True)
    ds = ds.batch(cfg.batch_size)
    if train and cfg.augmenting:
        aug = _augmenter(cfg.augmentation, cfg.seed)
        ds = ds.map(lambda a, b: (tf.cast(tf.clip_by_value(
            tf.round(aug(tf.cast(a, tf.float32), training=True)), 0, 255), tf.uint8), b),
            num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda a, b: (_to_input(a, pre, size), b), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _feature_dataset(feats: np.ndarray, y: np.ndarray, cfg: TrainConfig, train: bool):
    import tensorflow as tf

    if train and cfg.balance == "sampling":
        ds = _balanced(tf.data.Dataset.from_tensor_slices((feats[y == 1], y[y == 1])),
                       tf.data.Dataset.from_tensor_slices((feats[y == 0], y[y == 0])), cfg.seed)
    else:
        ds = tf.data.Dataset.from_tensor_slices((feats, y))
        if train:
            ds = ds.shuffle(len(y), seed=cfg.seed, reshuffle_each_iteration=True)
    return ds.batch(cfg.batch_size).prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------- model pieces


def backbone_of(model):
    """The nested backbone sub-model of a model made by ``build_model``."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            return layer
    raise ConfigError("model has no nested backbone")


def _head_model(model, base):
    """The layers after the backbone, on a features input; they share the model's weights."""
    import keras

    layers = model.layers
    start = layers.index(base) + 1
    inputs = keras.Input(tuple(base.outputs[0].shape[1:]), name="features")
    x = inputs
    for layer in layers[start:]:
        x = layer(x)
    return keras.Model(inputs, x, name="head")


def _features(base, data: Decoded, pre: Preprocessing, batch_size: int) -> np.ndarray:
    fn = compiled_forward(base, data.images.shape[1])
    out = [fn(to_model_input(data.images[i:i + batch_size], pre))
           for i in range(0, len(data.images), batch_size)]
    return np.concatenate(out)


def _unfreeze_top(base, n_layers: int) -> int:
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


def _optimizer(name: str, lr: float, decay_steps: int | None = None):
    """RMSprop or Adam; with ``decay_steps`` the rate follows a cosine down to zero (helps
    short from-scratch runs settle)."""
    import keras

    if decay_steps:
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps)
    return keras.optimizers.RMSprop(lr) if name == "rmsprop" else keras.optimizers.Adam(lr)


def _metrics():
    import keras

    return ["accuracy", keras.metrics.TruePositives(name="tp"),
            keras.metrics.FalseNegatives(name="fn"), keras.metrics.TrueNegatives(name="tn"),
            keras.metrics.FalsePositives(name="fp")]


def _compile(model, optimizer) -> None:
    """Binary cross-entropy with the per-class counts; XLA stays off (Keras' default
    ``jit_compile="auto"`` would turn it on wherever a GPU is present)."""
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=_metrics(),
                  jit_compile=False)


def _gpu_present() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


# --------------------------------------------------------------------------- callbacks


def _per_class(logs: dict[str, float], prefix: str = "val_") -> tuple[float, float]:
    tp, fn = logs.get(prefix + "tp", 0.0), logs.get(prefix + "fn", 0.0)
    tn, fp = logs.get(prefix + "tn", 0.0), logs.get(prefix + "fp", 0.0)
    succ = tp / (tp + fn) if tp + fn else float("nan")
    fail = tn / (tn + fp) if tn + fp else float("nan")
    return succ, fail


class _Recorder:
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
        succ, fail = _per_class(logs)
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


# --------------------------------------------------------------------------- distribution


class DistributeError(ConfigError):
    """A tf.distribute strategy cannot be set up as asked (e.g. ``TF_CONFIG`` missing or
    invalid for ``multiworker``, or a batch that does not split over the replicas)."""


@dataclass(frozen=True)
class Distribution:
    """The strategy training runs under (None: plain Keras on one device), its replica
    count and whether this process is the chief, the one that writes the model."""

    name: str = "none"
    strategy: Any = None
    chief: bool = True
    workers: int = 1

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync if self.strategy is not None else 1

    def scope(self):
        """Where variables (model, optimizer) must be created to be mirrored."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def shard(self, ds):
        """In-memory datasets are sharded by element across workers (no files to shard by,
        so tf.data's AUTO policy would warn and fall back to this anyway)."""
        if self.strategy is None:
            return ds
        import tensorflow as tf

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.DATA
        return ds.with_options(options)

    def summary(self) -> dict[str, Any]:
        devices = self.strategy.extended.worker_devices
        return {"strategy": self.name, "replicas": self.replicas, "workers": self.workers,
                "devices": [str(d) for d in devices]}


def cluster_role() -> tuple[bool, int]:
    """(is this process the chief, how many machines) from ``TF_CONFIG``, read and checked
    so that a typo is one line here rather than a hang or a traceback inside TensorFlow.
    The chief is TF's: the ``chief`` task, else worker 0."""
    text = os.environ.get("TF_CONFIG", "")
    hint = f"multiworker needs TF_CONFIG set on every machine, e.g. {TF_CONFIG_EXAMPLE}"
    if not text.strip():
        raise DistributeError(f"TF_CONFIG is not set; {hint}")
    try:
        conf = json.loads(text)
        cluster, kind, index = conf["cluster"], conf["task"]["type"], int(conf["task"]["index"])
        members = cluster[kind]
        workers = sum(len(cluster.get(k, [])) for k in ("chief", "worker"))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise DistributeError(f"TF_CONFIG is invalid ({type(exc).__name__}: {exc}); "
                              f"{hint}") from None
    if not isinstance(members, list) or not 0 <= index < len(members):
        raise DistributeError(f"TF_CONFIG's task {kind} {index} is not in its cluster; {hint}")
    chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)
    return chief, workers


def distribution(name: str) -> Distribution:
    """The strategy for ``TrainConfig.distribute``.  ``mirrored`` uses every GPU, or
    without GPUs every logical CPU device (one, unless the process configured more: tests
    and CPU-only trials); ``multiworker`` the machines of ``TF_CONFIG``."""
    if name == "none":
        return Distribution()
    if name not in DISTRIBUTIONS:
        raise DistributeError(f"distribute must be one of {DISTRIBUTIONS}, not {name!r}")
    chief, workers = cluster_role() if name == "multiworker" else (True, 1)
    import tensorflow as tf

    if name == "multiworker":
        return Distribution(name, tf.distribute.MultiWorkerMirroredStrategy(), chief, workers)
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return Distribution(name, tf.distribute.MirroredStrategy([d.name for d in devices]))


@contextlib.contextmanager
def _written_by(dist: Distribution, model_out: Path) -> Iterator[Path]:
    """Where this process writes: MODEL_OUT on the chief; on the other workers of a
    multi-worker run a temporary folder, removed afterwards (they run the same training,
    and TF's guide has them write elsewhere so that they never clash with the chief)."""
    if dist.chief:
        yield model_out
        return
    scratch = Path(tempfile.mkdtemp(prefix="grasp-success-worker-"))
    try:
        yield scratch / model_out.name
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --------------------------------------------------------------------------- interruption


class _Signalled(BaseException):
    """SIGINT or SIGTERM while training: a BaseException, as KeyboardInterrupt is, so that
    no ``except Exception`` inside Keras or TensorFlow swallows it."""


class _Signals:
    """SIGINT and SIGTERM raised as ``_Signalled`` while a training runs, or held back
    (``pending``) while its outputs are written.  Signal handlers are process-wide: they
    are installed for the training only and the previous ones put back; outside the main
    thread (where Python allows none) nothing changes."""

    WATCHED = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.holding = False
        self.received: int | None = None
        self.pending: int | None = None

    def _handle(self, signum: int, frame) -> None:
        self.received = signum
        if self.holding:
            self.pending = signum
            return
        raise _Signalled(signum)

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Signals]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self._handle) for s in self.WATCHED}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, signal.SIG_DFL if handler is None else handler)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.holding = True
        try:
            yield
        finally:
            self.holding = False


def _signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def _interrupted(run: _Run, exc: BaseException, signum: int | None) -> BaseException:
    """Write the best weights so far with a card that says the training was cut off; the
    exception to raise: ``TrainingInterrupted`` (or an OSError before any epoch ended,
    as it came)."""
    signum = signum if isinstance(exc, _Signalled) else None
    reason = _signal_name(signum) if signum else f"{type(exc).__name__}: {exc}"
    rows = run.fitting.recorder.rows if run.fitting is not None else []
    if not rows:
        if signum is None:
            return exc
        return TrainingInterrupted(f"training interrupted by {reason} before its first epoch "
                                   "ended: nothing written", signum)
    model_path, at = run.paths["model"], len(rows)
    checkpoint = run.fitting.recorder.checkpoint
    run.fitting.recorder.restore_best()
    model = _float32_copy(run.model, run.cfg) if run.mixed else run.model
    card = _interrupted_card(run, reason)
    try:  # no plots: a user who pressed Ctrl-C wants the prompt back
        _save_outputs(model, card, run.paths, run.fitting.recorder, run.cfg, run.log,
                      plots=False)
    except OSError as failed:
        return TrainingInterrupted(
            f"training interrupted at epoch {at} ({reason}); writing its best weights failed "
            f"too ({failed}): {model_path} is left as it was; {checkpoint} holds the best "
            "weights without a card", signum)
    return TrainingInterrupted(
        f"training interrupted at epoch {at} ({reason}): {model_path} holds the best weights "
        f"so far (epoch {card.training['best_epoch']}) with an uncalibrated card that says "
        "so", signum, str(model_path))


def _interrupted_card(run: _Run, reason: str) -> ModelCard:
    """The card of a training cut off at epoch k: uncalibrated (no time to fit it on a
    validation set that may be large), the cut-off in ``training`` and the notes."""
    f, at = run.fitting, len(run.fitting.recorder.rows)
    facts = _training_facts(f, run.classes, train_dirs=run.per_dir,
                            mixed_precision=run.mixed, interrupted={
                                "at_epoch": at, "of_epochs": f.recorder.total,
                                "reason": reason},
                            train_seconds=round(time.monotonic() - run.started, 1))
    note = (f"Training interrupted at epoch {at} of {f.recorder.total} ({reason}): the "
            f"weights are the best of those epochs (epoch {facts['best_epoch']}), not "
            "calibrated.")
    return run.card.replace(
        success_class=run.classes.success, failure_class=run.classes.failure,
        threshold=run.cfg.threshold, calibration=None, training=facts,
        notes=(run.card.notes + " " if run.card.notes else "") + note)


# --------------------------------------------------------------------------- training


def output_paths(model_out: str | Path) -> dict[str, Path]:
    """Where training writes its outputs beside ``m.keras``."""
    model_out = Path(model_out)
    stem = model_out.with_suffix("")
    return {"model": model_out, "history": Path(f"{stem}.history.csv"),
            "accuracy_plot": Path(f"{stem}.accuracy.png"),
            "loss_plot": Path(f"{stem}.loss.png"), "logs": Path(f"{stem}.logs")}


def _fit(model, train_ds, valid_ds, cfg: TrainConfig, recorder: _Recorder, phase: str,
         epochs: int, steps: int | None, logs_dir: Path | None, verbose: int,
         dist: Distribution = Distribution()):
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


def _list_data(train_dir, valid_dir, cfg: TrainConfig, extra_train: Sequence = ()):
    """The folders checked and listed (fast), before anything is built; the extra training
    folders (e.g. corrected review frames) join the first one's images and may leave a
    class empty.  Returns (classes, train list, valid list, per-folder train counts)."""
    classes = class_folders(train_dir, cfg.success_class)
    named = classes.success if cfg.success_class else None
    lists = [list_folders(train_dir, classes)]
    lists += [list_folders(d, class_folders(d, named), allow_empty=True) for d in extra_train]
    valid_classes = class_folders(valid_dir, named)
    per_dir = {str(d): lst.counts() for d, lst in zip([train_dir, *extra_train], lists,
                                                       strict=True)}
    return classes, merge_lists(lists), list_folders(valid_dir, valid_classes), per_dir


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


def train(train_dir: str | Path, valid_dir: str | Path, model_out: str | Path,
          cfg: TrainConfig, log: Callable[[str], None] = print,
          extra_train: Sequence[str | Path] = ()) -> ModelCard:
    """Fit a model on TRAIN_DIR (and the EXTRA_TRAIN folders, e.g. corrected review
    frames), keep the best epoch on VALID_DIR, save model, card, history, plots and
    TensorBoard logs beside MODEL_OUT."""
    cfg.validate()
    dist = distribution(cfg.distribute)  # first: multiworker wants it before other TF work
    with _op_determinism(cfg.deterministic), _written_by(dist, Path(model_out)) as out:
        return _train(train_dir, valid_dir, out, cfg, log, tuple(extra_train), dist)


def _split_batch(dist: Distribution, cfg: TrainConfig, log: Callable[[str], None]) -> None:
    """Refuse a global batch that does not split evenly over the replicas; say the split."""
    if dist.strategy is None:
        return
    if cfg.batch_size % dist.replicas:
        raise DistributeError(f"batch size {cfg.batch_size} (the global batch) does not split "
                              f"evenly over {dist.replicas} replicas; use a multiple of "
                              f"{dist.replicas}")
    log(f"distribute: {dist.name} over {dist.replicas} replicas on {dist.workers} "
        f"machine(s); global batch {cfg.batch_size} = {cfg.batch_size // dist.replicas} per "
        f"replica; learning rate {cfg.learning_rate:g} as given"
        f"{'' if dist.chief else '; not the chief: writing to a temporary folder'}")


def _train(train_dir: str | Path, valid_dir: str | Path, model_out: str | Path,
           cfg: TrainConfig, log: Callable[[str], None],
           extra_train: tuple[str | Path, ...] = (),
           dist: Distribution = Distribution()) -> ModelCard:
    """``train``'s work.  SIGINT, SIGTERM or an OSError (a full disk) while it fits stops it
    there: the best weights so far are written with an uncalibrated card that says so, and
    ``TrainingInterrupted`` is raised; the outputs themselves are written with signals held
    back, model and card as a pair (``save_model``)."""
    import keras

    paths = output_paths(model_out)
    if paths["model"].suffix != ".keras":
        raise ConfigError(f"the model is saved as a .keras file, not {paths['model'].name}")
    keras.utils.set_random_seed(cfg.seed)
    _split_batch(dist, cfg, log)
    run = _Run(cfg, paths, log)
    with _Signals().installed() as signals:
        try:
            model, card = _fitted(run, train_dir, valid_dir, extra_train, dist)
        except (_Signalled, OSError) as exc:
            with signals.held():
                raise _interrupted(run, exc, signals.received) from None
        with signals.held():
            _save_outputs(model, card, paths, run.fitting.recorder, cfg, log)
        if signals.pending is not None:
            log(f"{_signal_name(signals.pending)} came while the trained model was being "
                "written: it was written first")
    return card


@dataclass
class _Run:
    """What a training has built so far, for writing the best weights if it is cut off."""

    cfg: TrainConfig
    paths: dict[str, Path]
    log: Callable[[str], None]
    model: Any = None
    card: ModelCard | None = None
    fitting: _Fitting | None = None
    classes: Any = None
    mixed: bool = False
    started: float = 0.0
    per_dir: dict[str, Any] = field(default_factory=dict)


def _fitted(run: _Run, train_dir: str | Path, valid_dir: str | Path,
            extra_train: tuple[str | Path, ...], dist: Distribution) -> tuple[Any, ModelCard]:
    """Data, model, the fit phases with the best epoch restored, and the calibrated card;
    ``run`` holds each piece as soon as it exists."""
    cfg, log = run.cfg, run.log
    classes, tr_list, va_list, per_dir = _list_data(train_dir, valid_dir, cfg, extra_train)
    if extra_train:
        log("train folders: " + "; ".join(f"{d} {c}" for d, c in per_dir.items()))
    model, card, mixed = _build(cfg, dist)
    pre = card.preprocessing
    tr = decode_images(tr_list, cfg.input_size, pre, Path(train_dir))
    va = decode_images(va_list, cfg.input_size, pre, Path(valid_dir))
    for name, data in (("train", tr), ("valid", va)):
        more = " ..." if len(data.skipped) > 3 else ""
        skipped = f" (skipped: {', '.join(data.skipped[:3])}{more})" if data.skipped else ""
        log(f"{name}: {data.counts()}{skipped}")
    fitting = _fitting(model, cfg, tr, va, pre, run.paths, classes, dist, log)
    run.model, run.card, run.fitting, run.classes, run.mixed = model, card, fitting, classes, mixed
    run.per_dir = per_dir
    run.started = time.monotonic()
    use_features, unfrozen = _fit_phases(model, fitting, log)
    fitting.recorder.restore_best()
    if not fitting.recorder.rows:
        raise ConfigError("training ran no epoch")
    if mixed:
        model = _float32_copy(model, cfg)
    card = _trained_card(model, card, fitting, classes, valid_dir, log, train_dirs=per_dir,
                         cached_features=use_features, fine_tuned_layers=unfrozen,
                         mixed_precision=mixed,
                         train_seconds=round(time.monotonic() - run.started, 1))
    return model, card


def _build(cfg: TrainConfig, dist: Distribution) -> tuple[Any, ModelCard, bool]:
    """The model and its card, built under the strategy's scope and, where mixed precision
    is on, under Keras' mixed_float16 policy (set for the build only: it is process-wide)."""
    import keras

    mixed = cfg.mixed_precision == "on" or (cfg.mixed_precision == "auto" and _gpu_present())
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


@dataclass
class _Fitting:
    """What every fit phase of one training shares."""

    cfg: TrainConfig
    tr: Decoded
    va: Decoded
    pre: Preprocessing
    recorder: _Recorder
    weights: dict[int, float] | None
    steps: int | None
    logs_dir: Path | None
    verbose: int
    dist: Distribution

    def images(self, model, phase: str, epochs: int) -> None:
        """Fit ``model`` on the decoded images (augmented as configured)."""
        _fit(model, image_dataset(self.tr, self.cfg, self.pre, True).map(
            _weighted(self.weights)), image_dataset(self.va, self.cfg, self.pre, False),
            self.cfg, self.recorder, phase, epochs, self.steps, self.logs_dir, self.verbose,
            self.dist)


def _fitting(model, cfg: TrainConfig, tr: Decoded, va: Decoded, pre: Preprocessing,
             paths: dict[str, Path], classes, dist: Distribution,
             log: Callable[[str], None]) -> _Fitting:
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
    return _Fitting(cfg, tr, va, pre, _Recorder(model, total, checkpoint, log), weights, steps,
                    logs_dir, 1 if progress else 0, dist)


def _fit_phases(model, f: _Fitting, log: Callable[[str], None]) -> tuple[bool, int]:
    """The head (on cached features when the backbone is frozen and nothing is augmented)
    or the whole model, then the optional fine-tuning; returns (features cached, layers
    unfrozen)."""
    cfg, base = f.cfg, backbone_of(model)
    use_features = cfg.frozen and not cfg.augmenting and cfg.cache_features
    if use_features:
        log("backbone frozen and nothing augmented: training the head on cached features")
        with f.dist.scope():
            head = _head_model(model, base)
            _compile(head, _optimizer(cfg.optimizer, cfg.learning_rate))
        ftr = _features(base, f.tr, f.pre, max(cfg.batch_size, 32))
        fva = _features(base, f.va, f.pre, max(cfg.batch_size, 32))
        _fit(head, _feature_dataset(ftr, f.tr.labels, cfg, True).map(_weighted(f.weights)),
             _feature_dataset(fva, f.va.labels, cfg, False), cfg, f.recorder, "head",
             cfg.epochs, f.steps, f.logs_dir, f.verbose, f.dist)
    else:
        decay = cfg.epochs * (f.steps or math.ceil(len(f.tr.labels) / cfg.batch_size)) \
            if cfg.lr_schedule == "cosine" else None
        with f.dist.scope():
            _compile(model, _optimizer(cfg.optimizer, cfg.learning_rate, decay))
        f.images(model, "head" if cfg.frozen else "full", cfg.epochs)
    unfrozen = 0
    if cfg.frozen and cfg.fine_tune_epochs:
        f.recorder.restore_best()
        unfrozen = _unfreeze_top(base, cfg.fine_tune_layers)
        log(f"fine-tuning the top {unfrozen} weighted layers of the backbone "
            f"at learning rate {cfg.fine_tune_learning_rate:g}")
        with f.dist.scope():
            _compile(model, _optimizer(cfg.optimizer, cfg.fine_tune_learning_rate))
        f.images(model, "fine_tune", cfg.fine_tune_epochs)
    return use_features, unfrozen


def _trained_card(model, card: ModelCard, f: _Fitting, classes, valid_dir: str | Path,
                  log: Callable[[str], None], **facts: Any) -> ModelCard:
    """The card of the trained model: classes, threshold, the temperature fitted on the
    validation set, and what the training did (``facts`` adds to it)."""
    truth, p_valid = f.va.labels > 0.5, validation_outputs(model, f.va, f.pre)
    calibration = _calibration(truth, p_valid, f"{valid_dir} (validation set)", log)
    warnings = outputs_report(truth, p_valid if calibration is None
                              else calibration.apply(p_valid), f.cfg.threshold, log)
    return card.replace(
        success_class=classes.success, failure_class=classes.failure,
        threshold=f.cfg.threshold, calibration=calibration,
        training=_training_facts(f, classes, validation_warnings=warnings, **facts))


def _training_facts(f: _Fitting, classes, **facts: Any) -> dict[str, Any]:
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


def _save_outputs(model, card: ModelCard, paths: dict[str, Path], recorder: _Recorder,
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


def named_weights(weights: dict[int, float], classes) -> dict[str, float]:
    """Class weights by class folder name, as the card and the console show them."""
    return {classes.success: float(weights[1]), classes.failure: float(weights[0])}


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


def _calibration(truth: np.ndarray, p: np.ndarray, fitted_on: str,
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


def _weighted(weights: dict[int, float] | None):
    """A tf.data map adding per-sample weights from class weights (works with sampling and
    ``steps_per_epoch``, unlike ``fit(class_weight=...)`` on some datasets)."""
    import tensorflow as tf

    if weights is None:
        return lambda x, y: (x, y)
    w0, w1 = float(weights[0]), float(weights[1])
    return lambda x, y: (x, y, tf.where(y > 0.5, w1, w0))


def _float32_copy(model, cfg: TrainConfig):
    """The same weights in a float32 model, so CPUs on robots run it at full speed."""
    fresh, _ = build_model(cfg.backbone, cfg.input_size, cfg.head, None,
                           dense_units=cfg.dense_units, dropout=cfg.dropout,
                           freeze_backbone=cfg.frozen)
    fresh.set_weights(model.get_weights())
    return fresh
