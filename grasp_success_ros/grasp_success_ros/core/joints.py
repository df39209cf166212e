"""The hand's own witness: joint messages on a timeline, their features at an event, and the
no-training rule that turns them into P(success).

The node and the bag tools put the hand's messages in (already in the profile's joint order,
``HandProfile.reorder``), stamped on the frames' clock; at an event the service asks for the
features over the profile's window after it. What tells "a finger is blocked by an object"
(REFERENCE: the Allegro v4 reports its commanded torque as effort): a closing joint that
stopped short of its target (the commanded position, or the closed limit when commands are
not published) while pushing (effort up) and settled (velocity near zero). A parallel gripper
without effort: stopped short of closed and settled. Tactile pads, where the hand has them,
add their load.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import takewhile

import numpy as np

from grasp_success_ros.core.hands import HandProfile

# Joint messages kept per kind: 20 s at 100 Hz, more than any window and a hold watch's look.
JOINT_BUFFER = 2000
# The features, in this order, in extract's features file and a joint model's card.
FEATURE_NAMES = ("closure", "closure_spread", "gap", "effort", "speed", "blocked", "tactile")
P_FLOOR = 0.02  # the rule never claims certainty: P in [P_FLOOR, 1 - P_FLOOR]


@dataclass(frozen=True)
class JointSample:
    """One message's arrays in the profile's joint order (NaN: not carried), at ``stamp``."""

    stamp: float
    position: np.ndarray
    velocity: np.ndarray | None = None
    effort: np.ndarray | None = None


@dataclass(frozen=True)
class HandFeatures:
    """The hand over an event's window; NaN where the hand does not report it."""

    closure: float  # mean closure of the closing joints (0 open, 1 closed)
    closure_spread: float  # their standard deviation (one finger blocked, others closed)
    gap: float  # mean shortfall from the target (command, else closed) in units of range
    effort: float  # mean |effort| / effort_limit of the closing joints
    speed: float  # the fastest closing joint's |velocity| over the window, rad/s
    blocked: float  # share of closing joints stopped short while pushing (see module doc)
    tactile: float  # summed pad load / the profile's tactile_contact
    samples: int  # joint messages in the window

    def vector(self) -> np.ndarray:
        return np.array([getattr(self, name) for name in FEATURE_NAMES], dtype=np.float64)

    def as_dict(self) -> dict[str, float]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in asdict(self).items()}


def joint_sample(profile: HandProfile, stamp: float, names: Sequence[str],
                 position: Sequence[float], velocity: Sequence[float] = (),
                 effort: Sequence[float] = ()) -> JointSample:
    """A JointState's arrays (``names`` order) as a sample in the profile's joint order; an
    empty velocity or effort (allowed by JointState) is None: not reported. The node and
    the bag tools both read joint states through this."""
    def ordered(values: Sequence[float]) -> np.ndarray | None:
        return profile.reorder(names, values) if len(values) else None

    return JointSample(stamp, profile.reorder(names, position), ordered(velocity),
                       ordered(effort))


class JointTimeline:
    """A hand's messages (states, commands, tactile) by stamp; thread-safe, bounded."""

    def __init__(self, profile: HandProfile, maxlen: int = JOINT_BUFFER) -> None:
        self.profile = profile
        self._states: deque[JointSample] = deque(maxlen=maxlen)
        self._commands: deque[tuple[float, np.ndarray]] = deque(maxlen=maxlen)
        self._tactile: deque[tuple[float, float]] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def state(self, sample: JointSample) -> None:
        with self._lock:
            self._states.append(sample)

    def command(self, stamp: float, position: np.ndarray) -> None:
        with self._lock:
            self._commands.append((stamp, position))

    def tactile(self, stamp: float, pads: Sequence[float]) -> None:
        with self._lock:
            self._tactile.append((stamp, float(np.nansum(np.abs(pads)))))

    def after(self, stamp: float) -> list[JointSample]:
        """The states stamped after ``stamp``, oldest first (a hold's new messages)."""
        with self._lock:  # from the newest back: a hold asks at every joint message
            states = list(takewhile(lambda s: s.stamp > stamp, reversed(self._states)))
        states.sort(key=lambda s: s.stamp)
        return states

    def newest(self) -> float | None:
        """The newest joint state's stamp (None: none yet)."""
        with self._lock:
            return max((s.stamp for s in self._states), default=None) if self._states else None

    def window(self, start: float, end: float) -> tuple[list[JointSample], np.ndarray | None,
                                                         list[float]]:
        """States stamped in [start, end], the newest command at or before ``end``, and
        the tactile loads in the window."""
        with self._lock:
            states = [s for s in self._states if start <= s.stamp <= end]
            commands = [c for t, c in self._commands if t <= end]
            loads = [v for t, v in self._tactile if start <= t <= end]
        states.sort(key=lambda s: s.stamp)
        return states, (commands[-1] if commands else None), loads

    def clear(self) -> None:
        with self._lock:
            self._states.clear()
            self._commands.clear()
            self._tactile.clear()


def features(timeline: JointTimeline, start: float, end: float) -> HandFeatures | None:
    """The hand's features over [start, end]; None when no joint state was stamped there."""
    states, command, loads = timeline.window(start, end)
    return features_of(timeline.profile, states, command, loads) if states else None


def features_of(profile: HandProfile, states: Sequence[JointSample],
                command: np.ndarray | None = None, loads: Sequence[float] = ()) -> HandFeatures:
    """The features of joint states (at least one), the command in force and pad loads."""
    index = profile.closing_index
    position = _median_by_joint(np.stack([s.position[index] for s in states]))
    closure = np.array([j.closure(p) for j, p in zip(profile.closing, position, strict=True)])
    target = np.ones_like(closure)
    if command is not None and np.all(np.isfinite(command[index])):
        target = np.array([j.closure(c) for j, c in zip(profile.closing, command[index],
                                                         strict=True)])
    gap = np.clip(target - closure, 0.0, None)
    effort = _mean_abs(states, "effort", index) / (profile.effort_limit or math.nan)
    speed = _max_abs(states, "velocity", index)
    margins = profile.margins
    stopped = (gap > margins.short) & (speed < margins.settled_speed
                                       if math.isfinite(speed) else True)
    pushing = (np.abs(effort) > margins.push) if np.all(np.isfinite(effort)) else True
    tactile = (float(np.mean(loads)) / margins.tactile_contact) if loads else math.nan
    return HandFeatures(
        closure=_nanmean(closure), closure_spread=float(np.nanstd(closure)),
        gap=_nanmean(gap), effort=_nanmean(effort), speed=speed,
        blocked=float(np.mean(stopped & pushing)), tactile=tactile, samples=len(states))


def _median_by_joint(rows: np.ndarray) -> np.ndarray:
    """Each column's median over its finite values (NaN: a joint no message carried)."""
    return np.array([np.median(c[np.isfinite(c)]) if np.isfinite(c).any() else np.nan
                     for c in rows.T])


def _nanmean(values: np.ndarray) -> float:
    """The mean of the finite values; NaN when there is none (a hand without effort)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def _mean_abs(states: Sequence[JointSample], name: str, index: np.ndarray) -> np.ndarray:
    """Each joint's mean |value| over the states that carry it (NaN: none does)."""
    rows = [getattr(s, name)[index] for s in states if getattr(s, name) is not None]
    if not rows:
        return np.full(len(index), np.nan)
    values = np.abs(np.stack(rows))
    finite = np.isfinite(values)
    counts = finite.sum(axis=0)
    sums = np.where(finite, values, 0.0).sum(axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _max_abs(states: Sequence[JointSample], name: str, index: np.ndarray) -> float:
    rows = [getattr(s, name)[index] for s in states if getattr(s, name) is not None]
    values = np.abs(np.stack(rows)) if rows else np.empty(0)
    return float(np.nanmax(values)) if values.size and np.isfinite(values).any() else math.nan


def rule_p_success(f: HandFeatures) -> float:
    """The no-training rule (README, "Hand profiles"): the share of closing joints blocked
    by something, plus the pads' load where there are pads, as P(success). Half the joints
    blocked is even odds; every joint blocked (or none) is as sure as the rule gets."""
    z = 8.0 * (f.blocked - 0.4)
    if math.isfinite(f.tactile):
        z += 4.0 * (min(f.tactile, 2.0) - 0.5)
    p = 1.0 / (1.0 + math.exp(-z))
    return min(max(p, P_FLOOR), 1.0 - P_FLOOR)
