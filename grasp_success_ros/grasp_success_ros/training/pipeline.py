"""The data side of a training: class folders listed, images decoded in parallel, and the
tf.data pipelines that shuffle, balance, augment and prefetch them (or cached features).

Augmentation runs inside the pipeline as Keras preprocessing layers, with
``ImageDataGenerator``'s ranges and units (``config.Augmentation``); every batch then goes
through the one preprocessing path (``data/preprocessing.to_model_input``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grasp_success_ros.core.errors import ConfigError, DatasetError
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
from grasp_success_ros.model.card import Preprocessing
from grasp_success_ros.training.config import Augmentation, TrainConfig


@dataclass
class Decoded:
    """Images decoded and resized to the model input (uint8), labels, and what was skipped."""

    images: np.ndarray
    labels: np.ndarray
    skipped: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return class_counts(self.labels, self.skipped)


def list_data(train_dir, valid_dir, cfg: TrainConfig, extra_train: Sequence = ()):
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


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Balanced weights, so the rare class counts as much as the common one."""
    n, pos = len(labels), float(labels.sum())
    if pos in (0.0, float(n)):
        raise ConfigError("training data holds only one class")
    return {0: n / (2 * (n - pos)), 1: n / (2 * pos)}


def named_weights(weights: dict[int, float], classes) -> dict[str, float]:
    """Class weights by class folder name, as the card and the console show them."""
    return {classes.success: float(weights[1]), classes.failure: float(weights[0])}


def augmenter(aug: Augmentation, seed: int):
    """``aug`` as Keras preprocessing layers (``ImageDataGenerator``'s units converted)."""
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


def to_input(batch, pre: Preprocessing, size: int):
    """The one preprocessing path (``to_model_input``) inside the tf.data graph."""
    import tensorflow as tf

    x = tf.numpy_function(lambda v: to_model_input(v, pre), [batch], tf.float32,
                          stateful=False)
    return tf.ensure_shape(x, (None, size, size, 3))


def balanced(ds_pos, ds_neg, seed: int):
    """Each element drawn from either class with equal chance (``--balance sampling``)."""
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
        ds = balanced(pos.shuffle(len(x), seed=cfg.seed), neg.shuffle(len(x), seed=cfg.seed),
                      cfg.seed)
    else:
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if train:
            ds = ds.shuffle(len(x), seed=cfg.seed, reshuffle_each_iteration=True)
    ds = ds.batch(cfg.batch_size)
    if train and cfg.augmenting:
        aug = augmenter(cfg.augmentation, cfg.seed)
        ds = ds.map(lambda a, b: (tf.cast(tf.clip_by_value(
            tf.round(aug(tf.cast(a, tf.float32), training=True)), 0, 255), tf.uint8), b),
            num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda a, b: (to_input(a, pre, size), b), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def feature_dataset(feats: np.ndarray, y: np.ndarray, cfg: TrainConfig, train: bool):
    """Batches of cached backbone features, shuffled and balanced as ``image_dataset``."""
    import tensorflow as tf

    if train and cfg.balance == "sampling":
        ds = balanced(tf.data.Dataset.from_tensor_slices((feats[y == 1], y[y == 1])),
                      tf.data.Dataset.from_tensor_slices((feats[y == 0], y[y == 0])), cfg.seed)
    else:
        ds = tf.data.Dataset.from_tensor_slices((feats, y))
        if train:
            ds = ds.shuffle(len(y), seed=cfg.seed, reshuffle_each_iteration=True)
    return ds.batch(cfg.batch_size).prefetch(tf.data.AUTOTUNE)


def weighted(weights: dict[int, float] | None):
    """A tf.data map adding per-sample weights from class weights (works with sampling and
    ``steps_per_epoch``, unlike ``fit(class_weight=...)`` on some datasets)."""
    import tensorflow as tf

    if weights is None:
        return lambda x, y: (x, y)
    w0, w1 = float(weights[0]), float(weights[1])
    return lambda x, y: (x, y, tf.where(y > 0.5, w1, w0))
