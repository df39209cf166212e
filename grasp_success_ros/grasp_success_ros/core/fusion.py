"""Fusion: several witnesses' calibrated P(success) into one, with the reason.

The rule is a weighted product of odds: logit P = bias + sum of weight_s x logit P_s over the
sources that judged. With weights 1 and bias 0 it is naive Bayes with even priors (each
witness's odds multiply); fitted on held-out grasps (``training/fusion.py``) it is logistic
regression on the sources' logits (stacking), which learns how far to trust each one. A
missing source drops its term, which is what a P of 0.5 (no evidence either way) would add.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from grasp_success_ros.core.errors import ConfigError

SOURCES = ("vision", "joints")
LOGIT_CLIP = 1e-4  # P is clipped to [this, 1 - this] before its logit: no infinite odds


def logit(p: float) -> float:
    p = min(max(float(p), LOGIT_CLIP), 1.0 - LOGIT_CLIP)
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class Fusion:
    """Weights per source and a bias on the logit scale; ``name`` goes into each verdict
    (``default`` before a fusion is fitted, else the fit's card)."""

    weights: Mapping[str, float] = field(default_factory=lambda: dict.fromkeys(SOURCES, 1.0))
    bias: float = 0.0
    name: str = "default"

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(SOURCES)
        if unknown or not all(math.isfinite(w) for w in self.weights.values()):
            raise ConfigError(f"fusion weights must be finite and for {SOURCES}, not "
                              f"{dict(self.weights)}")

    def p_success(self, sources: Mapping[str, float]) -> float:
        """The fused P(success) of the sources that judged (none: ConfigError)."""
        if not sources:
            raise ConfigError("fusion needs at least one source")
        z = self.bias + sum(self.weights.get(s, 1.0) * logit(p) for s, p in sources.items())
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def to_dict(self) -> dict:
        return {"weights": dict(self.weights), "bias": self.bias, "name": self.name}

    @classmethod
    def from_dict(cls, data: Mapping) -> Fusion:
        try:
            return cls({str(k): float(v) for k, v in data["weights"].items()},
                       float(data.get("bias", 0.0)), str(data.get("name", "fitted")))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"not a fusion record ({type(exc).__name__}: {exc})") from None


DEFAULT_FUSION = Fusion()
