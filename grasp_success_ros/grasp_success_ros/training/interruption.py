"""A training cut off by SIGINT, SIGTERM or an OSError (a full disk): its best weights so
far are written with an uncalibrated card that says where it stopped, and
``TrainingInterrupted`` is raised.  While the outputs themselves are written, signals are
held back (``Signals.held``) so that model and card are never left half written."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grasp_success_ros.core.errors import TrainingInterrupted
from grasp_success_ros.model.card import ModelCard
from grasp_success_ros.training.config import TrainConfig
from grasp_success_ros.training.fitting import Fitting, float32_copy
from grasp_success_ros.training.outputs import save_outputs, training_facts


class Signalled(BaseException):
    """SIGINT or SIGTERM while training: a BaseException, as KeyboardInterrupt is, so that
    no ``except Exception`` inside Keras or TensorFlow swallows it."""


class Signals:
    """SIGINT and SIGTERM raised as ``Signalled`` while a training runs, or held back
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
        raise Signalled(signum)

    @contextlib.contextmanager
    def installed(self) -> Iterator[Signals]:
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


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


@dataclass
class Run:
    """What a training has built so far, for writing the best weights if it is cut off."""

    cfg: TrainConfig
    paths: dict[str, Path]
    log: Callable[[str], None]
    model: Any = None
    card: ModelCard | None = None
    fitting: Fitting | None = None
    classes: Any = None
    mixed: bool = False
    started: float = 0.0
    per_dir: dict[str, Any] = field(default_factory=dict)


def interrupted(run: Run, exc: BaseException, signum: int | None) -> BaseException:
    """Write the best weights so far with a card that says the training was cut off; the
    exception to raise: ``TrainingInterrupted`` (or an OSError before any epoch ended,
    as it came)."""
    signum = signum if isinstance(exc, Signalled) else None
    reason = signal_name(signum) if signum else f"{type(exc).__name__}: {exc}"
    rows = run.fitting.recorder.rows if run.fitting is not None else []
    if not rows:
        if signum is None:
            return exc
        return TrainingInterrupted(f"training interrupted by {reason} before its first epoch "
                                   "ended: nothing written", signum)
    model_path, at = run.paths["model"], len(rows)
    checkpoint = run.fitting.recorder.checkpoint
    run.fitting.recorder.restore_best()
    model = float32_copy(run.model, run.cfg) if run.mixed else run.model
    card = interrupted_card(run, reason)
    try:  # no plots: a user who pressed Ctrl-C wants the prompt back
        save_outputs(model, card, run.paths, run.fitting.recorder, run.cfg, run.log,
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


def interrupted_card(run: Run, reason: str) -> ModelCard:
    """The card of a training cut off at epoch k: uncalibrated (no time to fit it on a
    validation set that may be large), the cut-off in ``training`` and the notes."""
    f, at = run.fitting, len(run.fitting.recorder.rows)
    facts = training_facts(f, run.classes, train_dirs=run.per_dir,
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
