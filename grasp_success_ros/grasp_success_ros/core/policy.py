"""The decision policy: which frames judge a grasp event, and how they become one verdict.

One implementation for the live node and every offline tool, so an offline evaluation
of a recording reproduces what the node would have said.  Times are seconds on the
clock the frames are stamped with (ROS time, or sim time during bag replay).

The verdict rule has one threshold (success at or above it, failure below it) or two:
success at or above ``threshold``, failure at or below ``threshold_failure``, and no
verdict between them (``error_code`` ``uncertain``), never a guess.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from grasp_success_ros.core.clocks import FRAME_STAMPS
from grasp_success_ros.core.errors import ConfigError, require

SELECTIONS = ("first_after", "latest", "n_after")
N_FRAMES_RANGE = (1, 30)  # the n_frames parameter's range, for goals and tools alike
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
    # None: one threshold (failure below ``threshold``); else failure at or below it, and no
    # verdict (``uncertain``) between the two
    threshold_failure: float | None = None
    # How frames are timed (clocks.py): "header" stamps, or "arrival" for a camera whose clock
    # cannot be synced; a chosen frame stamped after its arrival by more than the tolerance
    # makes a clock_skew record instead of a verdict.
    frame_stamp: str = "header"
    clock_tolerance_s: float = 0.2

    def validate(self) -> PolicyConfig:
        checks = [
            (self.selection in SELECTIONS, f"frame_selection must be one of {SELECTIONS}"),
            (self.combine in COMBINES, f"combine must be one of {COMBINES}"),
            (N_FRAMES_RANGE[0] <= self.n_frames <= N_FRAMES_RANGE[1],
             f"n_frames must be in [{N_FRAMES_RANGE[0]}, {N_FRAMES_RANGE[1]}]"),
            (self.settle_s >= 0.0, "settle_s must be >= 0"),
            (self.max_frame_age_s > 0.0, "max_frame_age_s must be > 0"),
            (self.deadline_s > self.settle_s, "deadline_s must be greater than settle_s"),
            (0.0 <= self.threshold <= 1.0, "threshold must be in [0, 1]"),
            (self.threshold_failure is None or 0.0 <= self.threshold_failure <= self.threshold,
             "threshold_failure must be in [0, threshold]"),
            (self.frame_stamp in FRAME_STAMPS, f"frame_stamp must be one of {FRAME_STAMPS}"),
            (self.clock_tolerance_s > 0.0, "clock_tolerance_s must be > 0"),
        ]
        require(checks)
        return self

    @property
    def frames_needed(self) -> int:
        return self.n_frames if self.selection == "n_after" else 1

    def deadline_at(self, event_t: float) -> float:
        """The last stamp a frame of the event may carry; once the clock is past it, a
        missing frame is a failure instead of a wait (the node's worker wakes for it)."""
        return event_t + self.deadline_s

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
    end = cfg.deadline_at(event_t)
    first, last = _window(stamps, event_t, cfg)
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


def _window(stamps: Sequence[float], event_t: float, cfg: PolicyConfig) -> tuple[int, int]:
    """The index range of the frames stamped within [settle_s, deadline_s] after the event."""
    first = bisect.bisect_left(stamps, event_t + cfg.settle_s)
    return first, max(first, bisect.bisect_right(stamps, cfg.deadline_at(event_t)))


def frames_so_far(stamps: Sequence[float], event_t: float, cfg: PolicyConfig
                  ) -> tuple[int, ...]:
    """The frames of an ``n_after`` event that have arrived while it waits for the rest:
    those ``select_frames`` will choose unless an earlier-stamped frame arrives late, so
    they can be classified one by one as they come (streaming n_after)."""
    if cfg.selection != "n_after":
        return ()
    first, last = _window(stamps, event_t, cfg)
    return tuple(range(first, min(last, first + cfg.frames_needed)))


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
    """One verdict; ``confidence`` is the probability given to the published verdict.

    ``verdict`` None is no verdict (P(success) inside the band between the two thresholds):
    ``confidence`` is then None and ``why`` says where the probabilities lay.
    """

    verdict: bool | None
    confidence: float | None
    p_success: float
    why: str = ""


def thresholds_for(threshold: float | None, threshold_failure: float | None,
                   card_threshold: float, card_threshold_failure: float | None = None
                   ) -> tuple[float, float | None]:
    """The (threshold, threshold_failure) pair in force: the card's unless overridden.

    Overrides (None or negative = not given) replace the card's pair as a whole: a
    ``threshold`` alone is one threshold, as before the band existed; a
    ``threshold_failure`` alone is refused, since it would pair with a threshold chosen for
    another rule.
    """
    given = threshold is not None and threshold >= 0.0
    given_failure = threshold_failure is not None and threshold_failure >= 0.0
    if given_failure and not given:
        raise ConfigError("threshold_failure needs threshold set too: the two replace the "
                          "model card's pair together")
    if given:
        pair = (float(threshold), float(threshold_failure) if given_failure else None)
    else:
        pair = (card_threshold, card_threshold_failure)
    if pair[1] is not None and not 0.0 <= pair[1] <= pair[0]:
        raise ConfigError(f"threshold_failure {pair[1]} must be in [0, threshold {pair[0]}]")
    return pair


def is_success(p, threshold: float):
    """The one per-frame rule: P(success) reaching the threshold is a success verdict.

    Works on a float (gives a bool) and on a numpy array (gives a bool array), so every
    tool that thresholds probabilities says success exactly when the node would.
    """
    return p >= threshold


def is_failure(p, threshold: float, threshold_failure: float | None = None):
    """The failure side of the same rule: below ``threshold`` (one threshold, as
    ``not is_success``) and, with a band, at or below ``threshold_failure`` too.  Where
    neither ``is_success`` nor ``is_failure`` holds there is no verdict."""
    below = p < threshold
    return below if threshold_failure is None else below & (p <= threshold_failure)


def verdicts(p, threshold: float, threshold_failure: float | None = None) -> list[bool | None]:
    """Per-probability verdicts: True, False, or None inside the band (no verdict)."""
    p = np.asarray(p, np.float64).reshape(-1)
    yes, no = is_success(p, threshold), is_failure(p, threshold, threshold_failure)
    return [True if y else False if n else None for y, n in zip(yes, no, strict=True)]


def _band(threshold: float, threshold_failure: float | None) -> str:
    return f"between threshold_failure {threshold_failure:.4g} and threshold {threshold:.4g}"


def _probabilities(p_success: Sequence[float]) -> np.ndarray:
    p = np.asarray(p_success, dtype=np.float64)
    if p.size == 0:
        raise ValueError("a decision needs at least one probability")
    return p


def mean_rule(p_success: Sequence[float], threshold: float,
              threshold_failure: float | None = None) -> Decision:
    """Success when the mean P(success) reaches the threshold, failure when it is below it
    (with a band: at or below ``threshold_failure``), else no verdict; confidence is the
    mean probability of the verdict (for one frame: that frame's probability of it)."""
    mean = float(_probabilities(p_success).mean())
    if is_success(mean, threshold):
        return Decision(True, mean, mean)
    if is_failure(mean, threshold, threshold_failure):
        return Decision(False, 1.0 - mean, mean)
    return Decision(None, None, mean,
                    f"P(success) {mean:.4f} lies {_band(threshold, threshold_failure)}")


def vote(p_success: Sequence[float], threshold: float, fraction: float = 0.5,
         threshold_failure: float | None = None) -> Decision:
    """Success when more than ``fraction`` of the frames reach the threshold (the video
    follow-up's rule); confidence is the share of frames that voted for the verdict.

    With a band, frames inside it are unsure: success needs more than ``fraction`` of the
    frames even if every unsure frame had said failure, failure needs the opposite even if
    every unsure frame had said success; otherwise no verdict.  Without unsure frames this
    is the rule above.
    """
    p = _probabilities(p_success)
    yes = int(np.count_nonzero(is_success(p, threshold)))
    no = int(np.count_nonzero(is_failure(p, threshold, threshold_failure)))
    mean = float(p.mean())
    if yes > fraction * p.size:
        return Decision(True, yes / p.size, mean)
    if p.size - no <= fraction * p.size:
        return Decision(False, no / p.size, mean)
    return Decision(None, None, mean,
                    f"{yes} of {p.size} frames say success, {no} failure and "
                    f"{p.size - yes - no} lie {_band(threshold, threshold_failure)}")


def decide(p_success: Sequence[float], cfg: PolicyConfig) -> Decision:
    """Combine per-frame P(success) into one verdict with ``cfg.combine``: ``mean``
    (``mean_rule``) or ``vote`` (``vote``, more than half of the frames), with the policy's
    threshold pair."""
    if cfg.combine == "vote":
        return vote(p_success, cfg.threshold, threshold_failure=cfg.threshold_failure)
    return mean_rule(p_success, cfg.threshold, cfg.threshold_failure)
