"""A hand card: what ``train-hand`` learned for one hand profile, served with NumPy alone.

It holds a joint model (logistic regression on the standardised hand features, fitted with
scikit-learn where training runs; here its coefficients only, so a robot needs no
scikit-learn), the temperature that calibrates it (as the vision model's card does,
``model/calibration.py``), and the fitted fusion (``core/fusion.py``). Missing features (a
hand without effort or pads) take the training set's medians.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.core.fusion import Fusion
from grasp_success_ros.core.joints import FEATURE_NAMES, HandFeatures

CARD_FORMAT = "grasp_success_hand_card/1"


@dataclass(frozen=True)
class JointModel:
    """P(success) of hand features: sigmoid((coef . (x - mean) / scale + intercept) / T)."""

    fill: tuple[float, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    temperature: float = 1.0
    features: tuple[str, ...] = FEATURE_NAMES

    def __post_init__(self) -> None:
        sizes = {len(self.fill), len(self.mean), len(self.scale), len(self.coef)}
        values = [*self.fill, *self.mean, *self.scale, *self.coef, self.intercept]
        if sizes != {len(self.features)} or not all(math.isfinite(v) for v in values) \
                or min(self.scale) <= 0 or not self.temperature > 0:
            raise ConfigError("joint model: one finite fill, mean, scale > 0 and coefficient "
                              "per feature, and a temperature > 0")
        if tuple(self.features) != FEATURE_NAMES:
            raise ConfigError(f"joint model was fitted on features {list(self.features)}, "
                              f"this version computes {list(FEATURE_NAMES)}")

    def logits(self, rows: np.ndarray) -> np.ndarray:
        """Uncalibrated logits of feature rows (NaN filled)."""
        x = np.where(np.isfinite(rows), rows, np.asarray(self.fill))
        return (x - np.asarray(self.mean)) / np.asarray(self.scale) @ np.asarray(self.coef) \
            + self.intercept

    def __call__(self, f: HandFeatures) -> float:
        z = float(self.logits(f.vector()[None, :])[0]) / self.temperature
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "fill": list(self.fill),
                "mean": list(self.mean), "scale": list(self.scale), "coef": list(self.coef),
                "intercept": self.intercept, "temperature": self.temperature}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JointModel:
        def floats(key: str) -> tuple[float, ...]:
            return tuple(float(v) for v in data[key])

        return cls(floats("fill"), floats("mean"), floats("scale"), floats("coef"),
                   float(data["intercept"]), float(data.get("temperature", 1.0)),
                   tuple(str(n) for n in data["features"]))


@dataclass(frozen=True)
class HandCard:
    """One hand's trained joint model and fitted fusion, and how they were fitted."""

    hand: str
    joint_model: JointModel
    fusion: Fusion
    fitted_on: Mapping[str, Sequence[str]] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": CARD_FORMAT, "hand": self.hand,
                "joint_model": self.joint_model.to_dict(), "fusion": self.fusion.to_dict(),
                "fitted_on": {k: list(v) for k, v in self.fitted_on.items()},
                "metrics": dict(self.metrics)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], origin: str = "hand card") -> HandCard:
        if not isinstance(data, Mapping) or data.get("format") != CARD_FORMAT:
            raise ConfigError(f"{origin} is not a hand card ({CARD_FORMAT}; train-hand "
                              "writes them)")
        try:
            return cls(str(data["hand"]), JointModel.from_dict(data["joint_model"]),
                       Fusion.from_dict(data["fusion"]), dict(data.get("fitted_on", {})),
                       dict(data.get("metrics", {})))
        except ConfigError as exc:
            raise ConfigError(f"{origin}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{origin}: malformed ({type(exc).__name__}: {exc})") from None
