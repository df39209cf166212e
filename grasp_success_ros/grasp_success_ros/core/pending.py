"""The node's bookkeeping shared between its callback threads: events waiting for frames and
the counts of answers.  Every read and write goes through one lock per object, so the camera,
trigger, worker and diagnostics threads never see a half-updated list or counter."""

from __future__ import annotations

import threading

from grasp_success_ros.core.judge import GraspEvent, GraspRecord


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
