"""The decision policy: which frames judge a grasp event, and how they become one verdict.

One implementation for the live node and every offline tool, so an offline evaluation
of a recording reproduces what the node would have said.  Times are seconds on the
clock the frames are stamped with (ROS time, or sim time during bag replay).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from grasp_success_ros.core.errors import require

SELECTIONS = ("first_after", "latest", "n_after")
COMBINES = ("mean", "vote")


@dataclass(frozen=True)
class PolicyConfig:
    """How to choose frames after an event and combine their probabilities."""

    selection: str = "first_after"
    n_frames: int = 5
    combine: str = "mean"
    settle_s: float = 0.0
    max_frame_age_s: float = 0.5
    deadline_s: float = 2.0
    threshold: float = 0.5

    def validate(self) -> PolicyConfig:
        checks = [
            (self.selection in SELECTIONS, f"frame_selection must be one of {SELECTIONS}"),
            (self.combine in COMBINES, f"combine must be one of {COMBINES}"),
            (1 <= self.n_frames <= 100, "n_frames must be in [1, 100]"),
            (self.settle_s >= 0.0, "settle_s must be >= 0"),
            (self.max_frame_age_s > 0.0, "max_frame_age_s must be > 0"),
            (self.deadline_s > self.settle_s, "deadline_s must be greater than settle_s"),
            (0.0 <= self.threshold <= 1.0, "threshold must be in [0, 1]"),
        ]
        require(checks)
        return self

    @property
    def frames_needed(self) -> int:
        return self.n_frames if self.selection == "n_after" else 1

    def replace(self, **changes) -> PolicyConfig:
        return dataclasses.replace(self, **changes).validate()


@dataclass(frozen=True)
class Selection:
    """Frames chosen for an event: ``ready`` with indices, ``wait`` for more, or ``fail``."""

    status: str
    indices: tuple[int, ...] = ()
    code: str | None = None
    reason: str | None = None

    @property
    def ready(self) -> bool:
        return self.status == "ready"


WAIT = Selection("wait")


def _fail(code: str, reason: str) -> Selection:
    return Selection("fail", code=code, reason=reason)


def select_frames(stamps: Sequence[float], event_t: float, cfg: PolicyConfig,
                  now: float | None = None) -> Selection:
    """Choose frames for an event from ascending frame stamps.

    ``now`` is the time on the frames' clock at which the choice is made (None offline,
    where every frame that will ever exist is already in ``stamps``): once ``now`` has
    passed ``event_t + deadline_s`` a missing frame becomes a failure instead of a wait.
    """
    if cfg.selection == "latest":
        return _select_latest(stamps, event_t, cfg)
    start = event_t + cfg.settle_s
    end = event_t + cfg.deadline_s
    first = bisect.bisect_left(stamps, start)
    last = bisect.bisect_right(stamps, end)
    need = cfg.frames_needed
    if last - first >= need:
        return Selection("ready", tuple(range(first, first + need)))
    if now is not None and now <= end:
        return WAIT
    got = max(0, last - first)
    newest = f"; newest frame {event_t - stamps[-1]:.3f} s before the event" if stamps and \
        stamps[-1] < start else ""
    return _fail(
        "no_fresh_frame",
        f"{got} of {need} frames stamped within [{cfg.settle_s:.3f}, {cfg.deadline_s:.3f}] s "
        f"after the event{newest}",
    )


def _select_latest(stamps: Sequence[float], event_t: float, cfg: PolicyConfig) -> Selection:
    idx = bisect.bisect_right(stamps, event_t) - 1
    if idx < 0:
        return _fail("no_frame", "no camera frame stamped at or before the event")
    age = event_t - stamps[idx]
    if age > cfg.max_frame_age_s:
        return _fail("stale_frame",
                     f"newest frame is {age:.3f} s old at the event (max {cfg.max_frame_age_s} s)")
    return Selection("ready", (idx,))


@dataclass(frozen=True)
class Decision:
    """One verdict; ``confidence`` is the probability given to the published verdict."""

    verdict: bool
    confidence: float
    p_success: float


def is_success(p, threshold: float):
    """The one per-frame rule: P(success) reaching the threshold is a success verdict.

    Works on a float (gives a bool) and on a numpy array (gives a bool array), so every
    tool that thresholds probabilities says success exactly when the node would.
    """
    return p >= threshold


def _probabilities(p_success: Sequence[float]) -> np.ndarray:
    p = np.asarray(p_success, dtype=np.float64)
    if p.size == 0:
        raise ValueError("a decision needs at least one probability")
    return p


def mean_rule(p_success: Sequence[float], threshold: float) -> Decision:
    """Success when the mean P(success) reaches the threshold; confidence is the mean
    probability of the verdict (for one frame: that frame's probability of the verdict)."""
    mean = float(_probabilities(p_success).mean())
    verdict = bool(is_success(mean, threshold))
    return Decision(verdict, mean if verdict else 1.0 - mean, mean)


def vote(p_success: Sequence[float], threshold: float, fraction: float = 0.5) -> Decision:
    """Success when more than ``fraction`` of the frames reach the threshold (the video
    follow-up's rule); confidence is the share of frames that voted for the verdict."""
    p = _probabilities(p_success)
    yes = int(np.count_nonzero(is_success(p, threshold)))
    verdict = yes > fraction * p.size
    agree = yes if verdict else p.size - yes
    return Decision(verdict, agree / p.size, float(p.mean()))


def decide(p_success: Sequence[float], cfg: PolicyConfig) -> Decision:
    """Combine per-frame P(success) into one verdict with ``cfg.combine``: ``mean``
    (``mean_rule``) or ``vote`` (``vote``, more than half of the frames)."""
    if cfg.combine == "vote":
        return vote(p_success, cfg.threshold)
    return mean_rule(p_success, cfg.threshold)
