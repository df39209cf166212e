"""Impossible times, never used silently: one rule for the live node and bag-eval.

A frame cannot arrive before it was taken, so a frame stamped later than it arrived (on the
node's clock, or the bag's log time) by more than ``clock_tolerance_s`` says that the camera's
clock runs ahead of the node's: "the first frame after the event" was then taken before it,
and judging it would give a wrong verdict. Such an event gets a ``clock_skew`` failure record
(judge.py) and /diagnostics turns WARN (ERROR past ``FAR_FACTOR`` times the tolerance), unless
frames are timed by their arrival (``frame_stamp: arrival``, for a camera whose clock cannot be
synced). A Header trigger or a goal may rightly name a past moment, so one stamped long before
its arrival only warns; one stamped after it is as impossible as such a frame. Under
``use_sim_time`` with no ``/clock`` received the node's clock stands at 0: nothing can be timed
and every event gets a ``no_clock`` failure record.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

FRAME_STAMPS = ("header", "arrival")
# Past this multiple of clock_tolerance_s: a frame or trigger stamped ahead is an ERROR, a
# trigger stamped before its arrival and a frame delayed that long are worth a WARN.
FAR_FACTOR = 5.0
OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels
WINDOW_S = 5.0  # /diagnostics reads the frames of the last seconds: a fixed clock shows soon
SYNC_HINT = "sync the clocks (chrony) or set frame_stamp arrival"


def far_s(tolerance_s: float) -> float:
    """The second bound: an offset this large is far beyond the tolerance."""
    return FAR_FACTOR * tolerance_s


def ahead_level(ahead_s: float, tolerance_s: float) -> int:
    """OK within the tolerance, WARN beyond it, ERROR far beyond it."""
    if ahead_s > far_s(tolerance_s):
        return ERROR
    return WARN if ahead_s > tolerance_s else OK


def skew_reason(ahead_s: float, tolerance_s: float) -> str | None:
    """Why frames stamped ``ahead_s`` after they were received cannot judge an event (None:
    within the tolerance)."""
    if ahead_s <= tolerance_s:
        return None
    return (f"frame stamped {ahead_s:.3f} s after it was received (clock_tolerance_s "
            f"{tolerance_s:g}): the camera's clock runs ahead of this node's, so the frame was "
            f"taken before the time it names; {SYNC_HINT}")


def trigger_note(ahead_s: float, tolerance_s: float) -> tuple[int, str] | None:
    """(level, line) for a trigger or goal stamped ``ahead_s`` after its arrival (negative:
    before it); None when unremarkable. Stamped before only warns: it may name a past moment."""
    level = ahead_level(ahead_s, tolerance_s)
    if level != OK:
        return level, (f"event stamped {ahead_s * 1e3:.0f} ms after it arrived: the grasp "
                       f"manager's clock runs ahead of this node's; sync the clocks (chrony)")
    if -ahead_s > far_s(tolerance_s):
        return WARN, (f"event stamped {-ahead_s * 1e3:.0f} ms before it arrived: frames are "
                      f"chosen from that moment on; if it is not meant, sync the grasp "
                      f"manager's clock (chrony)")
    return None


def clock_unset(sim_time: bool, now_s: float) -> bool:
    """Under ``use_sim_time`` ROS time stands at 0 until the first ``/clock`` message."""
    return sim_time and now_s == 0.0


def no_clock_reason(newest_stamp_s: float | None) -> str:
    """The ``no_clock`` failure record's reason: the cause, and what the frames carry."""
    frames = (f"frames carry stamps near {newest_stamp_s:.3f} s" if newest_stamp_s
              else "no camera frame has come")
    return (f"use_sim_time is true and no /clock message has been received: the node's clock "
            f"stands at 0 while {frames}; play the bag with --clock, or set use_sim_time false")


@dataclass(frozen=True)
class ClockReading:
    """What /diagnostics says about time: a level, its message ("" when OK) and the values."""

    level: int
    message: str
    values: dict


class ClockWatch:
    """Frame and trigger offsets (stamp minus arrival) as the node receives them, for
    /diagnostics. Thread-safe: the camera and trigger callbacks write, the timer reads."""

    def __init__(self, window_s: float = WINDOW_S, maxlen: int = 600,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``clock``: the steady clock that times the recent window."""
        self._clock = clock
        self._window_s = window_s
        self._frames: deque[tuple[float, float]] = deque(maxlen=maxlen)  # (monotonic, ahead)
        self._trigger_ahead_s: float | None = None
        self._unclocked_frames = 0  # frames received while the clock stood at 0
        self._lock = threading.Lock()

    def frame(self, ahead_s: float) -> None:
        with self._lock:
            self._frames.append((self._clock(), ahead_s))

    def frame_without_clock(self) -> None:
        with self._lock:
            self._unclocked_frames += 1

    def trigger(self, ahead_s: float) -> None:
        with self._lock:
            self._trigger_ahead_s = ahead_s

    def _recent(self) -> np.ndarray:
        start = self._clock() - self._window_s
        with self._lock:
            return np.array([a for t, a in self._frames if t >= start], np.float64)

    def reading(self, sim_time: bool, now_s: float, frame_stamp: str, tolerance_s: float,
                deadline_s: float) -> ClockReading:
        """The level and message for the node's clock, its frames and its last trigger."""
        recent = self._recent()
        with self._lock:
            trigger, unclocked = self._trigger_ahead_s, self._unclocked_frames
        ahead = float(recent.max()) if recent.size else None
        delay = float(-np.median(recent)) if recent.size else None
        values = {"frame_stamp": frame_stamp, "clock_tolerance_s": tolerance_s,
                  "frame_ahead_ms_max": "" if ahead is None else round(ahead * 1e3, 1),
                  "trigger_ahead_ms": "" if trigger is None else round(trigger * 1e3, 1)}
        if clock_unset(sim_time, now_s):
            return ClockReading(ERROR if unclocked else WARN, "use_sim_time is true and no "
                                "/clock received: the node's clock stands at 0", values)
        notes = [_frames_note(ahead, delay, frame_stamp, tolerance_s, deadline_s)]
        if trigger is not None:
            notes.append(trigger_note(trigger, tolerance_s))
        notes = [n for n in notes if n is not None]
        level = max((lvl for lvl, _ in notes), default=OK)
        return ClockReading(level, "; ".join(text for _, text in notes), values)


def _frames_note(ahead: float | None, delay: float | None, frame_stamp: str,
                 tolerance_s: float, deadline_s: float) -> tuple[int, str] | None:
    """Frames stamped ahead (header timing only: arrival timing ignores the stamps), or
    arriving so long after their stamps that every verdict waits (or every event fails)."""
    if ahead is None or delay is None or frame_stamp == "arrival":
        return None
    level = ahead_level(ahead, tolerance_s)
    if level != OK:
        return level, (f"camera frames stamped up to {ahead * 1e3:.0f} ms after they arrived: "
                       f"events get clock_skew; {SYNC_HINT}")
    if delay > deadline_s:
        return ERROR, (f"camera frames arrive {delay * 1e3:.0f} ms after their stamps, later "
                       f"than deadline_s: events get no_fresh_frame")
    if delay > far_s(tolerance_s):
        return WARN, (f"camera frames arrive {delay * 1e3:.0f} ms after their stamps: every "
                      f"verdict waits as long")
    return None
