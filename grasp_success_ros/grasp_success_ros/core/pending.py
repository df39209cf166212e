"""The node's bookkeeping shared between its callback threads: events waiting for frames, the
scores of frames classified while they wait (streaming n_after), the counts of answers and
the times of an answer's stages.
Every read and write goes through one lock per object, so the camera, trigger, worker and
diagnostics threads never see a half-updated list or counter."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from grasp_success_ros.core.judge import Frame, GraspEvent, GraspRecord, classify


class PendingEvents:
    """Events received and not yet answered, in arrival order."""

    def __init__(self) -> None:
        self._events: list[GraspEvent] = []
        self._lock = threading.Lock()

    def add(self, event: GraspEvent) -> None:
        with self._lock:
            self._events.append(event)

    def snapshot(self) -> list[GraspEvent]:
        """A copy to judge from: the list may grow while the worker judges."""
        with self._lock:
            return list(self._events)

    def remove(self, event: GraspEvent) -> bool:
        """Take an answered event out; False if it was not pending (answered already)."""
        with self._lock:
            for i, pending in enumerate(self._events):
                if pending is event:
                    del self._events[i]
                    return True
            return False

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

    def __bool__(self) -> bool:
        return len(self) > 0


class FrameScores:
    """P(success) of buffered frames, classified one at a time as they arrive for waiting
    ``n_after`` events (``policy.frames_so_far``), by frame stamp: when an event's n-th frame
    comes, only its forward pass is left (``judge_selected(known=...)``).  Scores belong to
    one model (a swap starts afresh) and are shared by events whose frames overlap.  A frame
    that cannot be decoded or classified is not retried here; the final judgement meets the
    error again and records it as the batched way does."""

    def __init__(self) -> None:
        self._model: object = None
        self._scores: dict[float, float | None] = {}  # None: decoding or the model failed
        self._lock = threading.Lock()

    def add(self, model: object, frames: Sequence[Frame], indices: Sequence[int],
            predict: Callable[[list[np.ndarray]], np.ndarray],
            decode: Callable[[Any], np.ndarray]) -> int:
        """Classify the frames at ``indices`` not tried yet with ``model``'s ``predict``, in
        one batch (one frame per call while the worker keeps up with the camera; those that
        piled up while it was busy, together); returns how many were tried."""
        with self._lock:
            if model is not self._model:
                self._model, self._scores = model, {}
            todo = [frames[i] for i in indices if frames[i].stamp not in self._scores]
        scores: dict[float, float | None] = {}
        images = []
        for frame in todo:
            try:
                images.append((frame.stamp, decode(frame.msg)))
            except Exception:  # judge_selected records it at the n-th frame
                scores[frame.stamp] = None
        try:
            p = classify(predict, [image for _, image in images])
            scores.update(zip((stamp for stamp, _ in images), map(float, p), strict=True))
        except Exception:  # likewise
            scores.update((stamp, None) for stamp, _ in images)
        with self._lock:
            if model is self._model:
                self._scores.update(scores)
        return len(todo)

    def known(self, model: object) -> dict[float, float]:
        """The scores ``model`` gave so far, by frame stamp (none for another model)."""
        with self._lock:
            if model is not self._model:
                return {}
            return {s: p for s, p in self._scores.items() if p is not None}

    def retain(self, stamps: Sequence[float]) -> None:
        """Forget the frames that left the buffer."""
        keep = set(stamps)
        with self._lock:
            self._scores = {s: p for s, p in self._scores.items() if s in keep}

    def __len__(self) -> int:
        with self._lock:
            return len(self._scores)


class AnswerStats:
    """Counts of the records published, for /diagnostics."""

    def __init__(self) -> None:
        self._verdicts = 0
        self._failures = 0
        self._last_latency_ms: float | None = float("nan")
        self._lock = threading.Lock()

    def count(self, record: GraspRecord) -> None:
        with self._lock:
            if record.ok:
                self._verdicts += 1
            else:
                self._failures += 1
            self._last_latency_ms = record.latency_ms

    def as_dict(self) -> dict[str, float | int | None]:
        """One consistent reading of all counters."""
        with self._lock:
            return {"verdicts": self._verdicts, "failures": self._failures,
                    "last_latency_ms": self._last_latency_ms}


STAGE_MEDIAN_SUFFIX = "_ms_p50"  # a stage's key in /diagnostics: forward -> forward_ms_p50


class StageTimes:
    """The recent durations of an answer's stages (frame delay, preprocessing, forward pass),
    for /diagnostics: where an event's milliseconds go, on the robot, not only in a bench."""

    def __init__(self, window: int = 100) -> None:
        self._window = window
        self._times: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, ms: float) -> None:
        with self._lock:
            self._times.setdefault(stage, deque(maxlen=self._window)).append(ms)

    def medians(self) -> dict[str, float]:
        """``<stage>_ms_p50`` over each stage's last ``window`` times."""
        with self._lock:
            return {stage + STAGE_MEDIAN_SUFFIX: round(float(np.median(times)), 2)
                    for stage, times in self._times.items()}
