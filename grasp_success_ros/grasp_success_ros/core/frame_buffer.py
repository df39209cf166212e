"""A bounded, thread-safe buffer of undecoded camera frames, ordered by stamp."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from grasp_success_ros.core.judge import Frame


class FrameBuffer:
    """Keeps the newest ``maxlen`` frames; appending is O(1) and decodes nothing."""

    def __init__(self, maxlen: int, clock: Callable[[], float] = time.monotonic) -> None:
        """``clock``: the steady clock arrivals are timed by (for the camera rate)."""
        self._clock = clock
        self._frames: deque[Frame] = deque(maxlen=maxlen)
        self._arrivals: deque[float] = deque(maxlen=60)
        self._lock = threading.Lock()

    def append(self, frame: Frame) -> None:
        with self._lock:
            self._frames.append(frame)
            self._arrivals.append(self._clock())

    def clear(self) -> None:
        """Forget every frame (their times were taken another way)."""
        with self._lock:
            self._frames.clear()

    def snapshot(self) -> list[Frame]:
        """The buffered frames sorted by stamp (cameras may deliver out of order)."""
        with self._lock:
            frames = list(self._frames)
        frames.sort(key=lambda f: f.stamp)
        return frames

    def newest(self) -> Frame | None:
        with self._lock:
            return self._frames[-1] if self._frames else None

    def rate_hz(self) -> float:
        """Arrival rate over the last frames; 0 when the camera has been silent for 2 s."""
        with self._lock:
            arrivals = list(self._arrivals)
        if len(arrivals) < 2 or self._clock() - arrivals[-1] > 2.0:
            return 0.0
        return (len(arrivals) - 1) / max(arrivals[-1] - arrivals[0], 1e-9)
