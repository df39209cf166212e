"""Calibration: turning a model's P(success) into a probability that means what it says.

A network trained with cross-entropy is usually over- or under-confident: of the images it
gives 0.9, far fewer or more than 90 % succeed.  Temperature scaling (Guo et al., "On
Calibration of Modern Neural Networks", 2017) divides the output's logit by one number T,
fitted on held-out images by minimising their log loss: P' = sigmoid(logit(P) / T).

Why temperature scaling and not Platt scaling (sigmoid(a * logit(P) + b)): one parameter
cannot overfit the few hundred validation images a grasp data set has; and it keeps
P = 0.5 at 0.5 and the order of all outputs, so the default threshold's verdicts do not
change and a threshold chosen before calibration can be carried over exactly
(``ModelCard.with_calibration``).  Platt's offset b would move the decision boundary,
which is the thresholds' job, chosen explicitly (``evaluate --target-precision``).

The fit needs NumPy only: the log loss is convex in 1/T, so its derivative is bisected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grasp_success_ros.core.errors import ModelCardError

TEMPERATURE = "temperature"
# Outputs are clipped to float32's resolution around 0 and 1 for the fit: a saturated
# sigmoid (exactly 1.0) has an infinite logit, which no temperature could move.
FIT_EPS = 1e-7
# The fitted temperature stays within these (a perfectly separated validation set would
# drive it to 0: every output to exactly 0 or 1).
T_MIN, T_MAX = 0.05, 20.0


def _logit(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # exact 0 and 1 at -inf / inf, no overflow


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature and where it was fitted (``scores``: the fit set's ECE, Brier
    score and log loss before and after)."""

    method: str = TEMPERATURE
    temperature: float = 1.0
    fitted_on: str = ""
    images: int = 0
    scores: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> Calibration:
        if self.method != TEMPERATURE:
            raise ModelCardError(f"calibration method must be {TEMPERATURE!r}, not "
                                 f"{self.method!r}")
        if not (math.isfinite(self.temperature) and self.temperature > 0.0):
            raise ModelCardError(f"calibration temperature must be > 0, not {self.temperature}")
        return self

    def apply(self, p_success) -> np.ndarray:
        """Uncalibrated P(success) -> calibrated; strictly increasing, 0, 0.5 and 1 fixed."""
        p = np.asarray(p_success, np.float64)
        return _sigmoid(_logit(p) / self.temperature)

    def invert(self, p_success) -> np.ndarray:
        """Calibrated P(success) -> uncalibrated (``apply`` undone)."""
        p = np.asarray(p_success, np.float64)
        return _sigmoid(_logit(p) * self.temperature)

    @property
    def at_bound(self) -> bool:
        """The fit hit a limit: the set is (nearly) separated, or the model anti-correlated."""
        return self.temperature <= T_MIN * 1.0001 or self.temperature >= T_MAX * 0.9999


def _nll_slope(beta: float, signed: np.ndarray) -> float:
    """d/d(beta) of mean(log(1 + exp(-beta * signed))), signed = +-logit by the truth."""
    return float(np.mean(-signed * _sigmoid(-beta * signed)))


def fit_temperature(p_success, truth, fitted_on: str = "", iterations: int = 100
                    ) -> Calibration:
    """The temperature that minimises the log loss of uncalibrated ``p_success`` against
    ``truth`` (True = success), within [T_MIN, T_MAX]; both classes are needed."""
    p = np.clip(np.asarray(p_success, np.float64).reshape(-1), FIT_EPS, 1.0 - FIT_EPS)
    truth = np.asarray(truth, bool).reshape(-1)
    if p.size != truth.size or truth.all() or not truth.any():
        raise ValueError("calibration needs images of both classes, one probability each")
    signed = np.where(truth, 1.0, -1.0) * _logit(p)
    lo, hi = math.log(1.0 / T_MAX), math.log(1.0 / T_MIN)  # log(beta), beta = 1 / T
    if _nll_slope(math.exp(lo), signed) >= 0.0:
        hi = lo
    elif _nll_slope(math.exp(hi), signed) <= 0.0:
        lo = hi
    for _ in range(iterations):  # the slope increases with beta: bisect to its zero
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _nll_slope(math.exp(mid), signed) < 0.0 else (lo, mid)
    return Calibration(temperature=float(1.0 / math.exp(0.5 * (lo + hi))), fitted_on=fitted_on,
                       images=int(p.size))
