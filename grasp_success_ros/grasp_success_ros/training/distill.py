"""A small, fast student trained on a big teacher's P(success) (knowledge distillation).

The teacher is any model with a card (the seed's ``.h5`` too): its P(success) comes through
``GraspClassifier`` (its own input size and preprocessing, P(failure) turned around and its
calibration applied by the card), computed once per training image.  The student learns
binary cross-entropy against soft targets: ``alpha * label + (1 - alpha) * teacher`` where
an image has a label (its class folder), the teacher alone for images without one
(``unlabelled``: any folders of images, e.g. frames from ``extract``).  So the student can
learn from far more frames than were ever labelled, and from the teacher's doubt on the
hard ones, not only from its verdicts.

The student is picked, calibrated and judged on the labelled validation folder as
``train`` does it (best epoch by validation loss, temperature scaling into its card); its
card says it was distilled, from which teacher and with which ``alpha``.  The student is
trained in float32 on images (no feature cache, no fine-tuning phase, no mixed precision).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grasp_success_ros.core.errors import ConfigError, DatasetError
from grasp_success_ros.data.folders import decode_parallel, image_files, skip_entry
from grasp_success_ros.data.preprocessing import Preprocessing
from grasp_success_ros.evaluation.evaluate import CHUNK, Evaluation, evaluate_folder
from grasp_success_ros.model.builder import build_model
from grasp_success_ros.model.card import ModelCard
from grasp_success_ros.model.classifier import GraspClassifier
from grasp_success_ros.model.loading import save_model
from grasp_success_ros.training.config import TrainConfig
from grasp_success_ros.training.fitting import fit, metrics, optimizer
from grasp_success_ros.training.outputs import (
    fitted_calibration,
    output_paths,
    outputs_report,
    validation_outputs,
)
from grasp_success_ros.training.pipeline import (
    Decoded,
    decode_images,
    image_dataset,
    list_data,
)
from grasp_success_ros.training.recorder import Recorder


@dataclass
class Targets:
    """The student's training images (uint8, its input size), their soft targets, the
    teacher's P(success) and the labels (NaN: unlabelled)."""

    images: np.ndarray
    targets: np.ndarray
    teacher: np.ndarray
    labels: np.ndarray
    skipped: list[str] = field(default_factory=list)

    @property
    def labelled(self) -> int:
        return int(np.sum(~np.isnan(self.labels)))


@dataclass
class Distilled:
    """What ``distill`` made: the student's card and both models judged on VALID_DIR."""

    card: ModelCard
    teacher_card: ModelCard
    teacher: Evaluation
    student: Evaluation

    def agreement(self) -> float:
        """Share of the validation images on which student and teacher give the same
        success verdict (each at its own card's threshold)."""
        teacher = dict(zip(self.teacher.paths, self.teacher.predicted, strict=True))
        same = [teacher[p] == s for p, s in zip(self.student.paths, self.student.predicted,
                                                strict=True) if p in teacher]
        return float(np.mean(same)) if same else math.nan


def soft_targets(labels: np.ndarray, teacher: np.ndarray, alpha: float) -> np.ndarray:
    """``alpha * label + (1 - alpha) * teacher`` where there is a label (not NaN), the
    teacher's P(success) where there is none."""
    blended = alpha * np.nan_to_num(labels) + (1.0 - alpha) * teacher
    return np.where(np.isnan(labels), teacher, blended).astype(np.float32)


def unlabelled_files(folders: Sequence[str | Path]) -> list[Path]:
    """The image files of each unlabelled folder (searched recursively); an empty or
    missing folder is refused, since it was named to be used."""
    files: list[Path] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise DatasetError(f"unlabelled folder not found: {folder}")
        found = image_files(folder)
        if not found:
            raise DatasetError(f"unlabelled folder {folder} holds no images")
        files += found
    return files


def teacher_targets(teacher: GraspClassifier, paths: Sequence[Path], labels: np.ndarray,
                    size: int, pre: Preprocessing, alpha: float) -> Targets:
    """Each readable file decoded twice: at the teacher's input for its P(success), at
    the student's for training; unreadable files are skipped and counted."""
    images, p, kept, skipped = [], [], [], []
    for start in range(0, len(paths), CHUNK):
        chunk = list(paths[start:start + CHUNK])
        big = decode_parallel(chunk, teacher.input_size, teacher.card.preprocessing)
        small = decode_parallel(chunk, size, pre)
        good = [i for i in range(len(chunk))
                if not isinstance(big[i], str) and not isinstance(small[i], str)]
        skipped += [skip_entry(chunk[i], big[i] if isinstance(big[i], str) else small[i])
                    for i in range(len(chunk)) if i not in good]
        if good:
            p.append(teacher.predict([big[i] for i in good]))
            images += [small[i] for i in good]
            kept += [start + i for i in good]
    if not kept:
        raise DatasetError("no readable training images")
    teacher_p = np.concatenate(p).astype(np.float32)
    labels = np.asarray(labels, np.float32)[kept]
    return Targets(np.stack(images), soft_targets(labels, teacher_p, alpha), teacher_p,
                   labels, skipped)


def distill(teacher: str | Path, train_dir: str | Path, valid_dir: str | Path,
            student_out: str | Path, cfg: TrainConfig, alpha: float = 0.5,
            unlabelled: Sequence[str | Path] = (), allow_custom_code: bool = False,
            log: Callable[[str], None] = print, accept_card_mismatch: bool = False) -> Distilled:
    """Train the student STUDENT_OUT (.keras, card beside it) on TEACHER's P(success) for
    TRAIN_DIR's class folders (blended with their labels by ``alpha``) and the
    ``unlabelled`` folders; both models are then evaluated on VALID_DIR."""
    import keras

    cfg.validate()
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be in [0, 1], not {alpha}")
    paths = output_paths(student_out)
    if paths["model"].suffix != ".keras":
        raise ConfigError(f"the student is saved as a .keras file, not {paths['model'].name}")
    classes, tr_list, va_list, _ = list_data(train_dir, valid_dir, cfg)
    extra = unlabelled_files(unlabelled)
    clf, notes = GraspClassifier.from_path(teacher, allow_custom_code=allow_custom_code,
                                           accept_card_mismatch=accept_card_mismatch)
    for note in notes:
        log(f"note: {note}")
    keras.utils.set_random_seed(cfg.seed)
    model, card = build_model(cfg.backbone, cfg.input_size, cfg.head, cfg.weights,
                              dense_units=cfg.dense_units, dropout=cfg.dropout,
                              freeze_backbone=cfg.frozen)
    pre = card.preprocessing
    labels = np.concatenate([tr_list.labels, np.full(len(extra), np.nan, np.float32)])
    started = time.monotonic()
    tr = teacher_targets(clf, [*tr_list.paths, *extra], labels, cfg.input_size, pre, alpha)
    tr.skipped = tr_list.skipped + tr.skipped  # zero-byte files, left out when listed
    log(f"teacher targets for {len(tr.targets)} images ({tr.labelled} labelled, "
        f"{len(tr.targets) - tr.labelled} unlabelled, {len(tr.skipped)} skipped) in "
        f"{time.monotonic() - started:.1f} s")
    va = decode_images(va_list, cfg.input_size, pre, Path(valid_dir))
    recorder = _fit_student(model, tr, va, cfg, pre, log)
    card = _student_card(model, card, cfg, recorder, va, pre, str(valid_dir), log)
    card = card.replace(success_class=classes.success, failure_class=classes.failure,
                        training={**card.training, **_distill_facts(clf, tr, alpha, va)})
    save_model(model, paths["model"], card)
    recorder.write_csv(paths["history"])
    log(f"saved {paths['model']}")
    student = GraspClassifier(model, card, source=str(paths["model"]))
    return Distilled(card, clf.card, evaluate_folder(valid_dir, clf, cfg.success_class),
                     evaluate_folder(valid_dir, student, cfg.success_class))


def _fit_student(model, tr: Targets, va: Decoded, cfg: TrainConfig, pre: Preprocessing,
                 log: Callable[[str], None]) -> Recorder:
    """Fit on the soft targets, validate on VALID_DIR's labels; the best epoch by
    validation loss is restored."""
    steps = math.ceil(len(tr.targets) / cfg.batch_size)
    decay = cfg.epochs * steps if cfg.lr_schedule == "cosine" else None
    _compile_soft(model, optimizer(cfg.optimizer, cfg.learning_rate, decay))
    recorder = Recorder(model, cfg.epochs, None, log)
    progress = cfg.progress if cfg.progress is not None else sys.stdout.isatty()
    fit(model, image_dataset(Decoded(tr.images, tr.targets), cfg, pre, True),
         image_dataset(va, cfg, pre, False), cfg, recorder, "distill", cfg.epochs, None,
         None, 1 if progress else 0)
    recorder.restore_best()
    if not recorder.rows:
        raise ConfigError("distillation ran no epoch")
    return recorder


def _compile_soft(model, opt) -> None:
    """``train``'s compile, with the training accuracy counted against the rounded soft
    targets (Keras' ``accuracy`` wants a target of exactly 0 or 1 and would say 0)."""
    import keras

    def hard_accuracy(y_true, y_pred):
        return keras.metrics.binary_accuracy(keras.ops.round(y_true), y_pred)

    accuracy = keras.metrics.MeanMetricWrapper(hard_accuracy, name="accuracy")
    model.compile(optimizer=opt, loss="binary_crossentropy",
                  metrics=[accuracy, *metrics()[1:]], jit_compile=False)


def _student_card(model, card: ModelCard, cfg: TrainConfig, recorder: Recorder,
                  va: Decoded, pre: Preprocessing, valid_dir: str,
                  log: Callable[[str], None]) -> ModelCard:
    """The student's card as ``train`` writes one: calibration fitted on the validation
    outputs, the threshold, and the run's facts."""
    best = recorder.best_row or recorder.rows[-1]
    truth, p_valid = va.labels > 0.5, validation_outputs(model, va, pre)
    calibration = fitted_calibration(truth, p_valid, f"{valid_dir} (validation set)", log)
    warnings = outputs_report(truth, p_valid if calibration is None
                              else calibration.apply(p_valid), cfg.threshold, log)
    return card.replace(threshold=cfg.threshold, calibration=calibration, training={
        "valid_counts": va.counts(), "epochs_run": len(recorder.rows),
        "best_epoch": best["epoch"], "best_val_loss": float(best["val_loss"]),
        "val_accuracy": float(best["val_accuracy"]), "weights": str(cfg.weights),
        "optimizer": cfg.optimizer, "learning_rate": cfg.learning_rate,
        "batch_size": cfg.batch_size, "seed": cfg.seed, "validation_warnings": warnings})


def _distill_facts(teacher: GraspClassifier, tr: Targets, alpha: float,
                   va: Decoded) -> dict:
    """What the card records of the distillation: the teacher and how targets were made."""
    return {
        "train_counts": {"labelled": tr.labelled, "unlabelled": len(tr.labels) - tr.labelled,
                         "skipped": len(tr.skipped)},
        "skipped_files": tr.skipped[:20] + va.skipped[:20],
        "distilled_from": {
            "teacher": teacher.source, "backbone": teacher.card.backbone,
            "input_size": teacher.input_size, "output": teacher.card.output,
            "calibrated": teacher.card.calibration is not None, "alpha": alpha,
            "targets": "alpha * label + (1 - alpha) * teacher P(success); teacher alone "
                       "where there is no label"},
    }
