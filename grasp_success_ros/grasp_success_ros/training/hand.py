"""train-hand: a joint model and a fusion for one hand, from judged recordings.

Input is what the one engine says of labelled recordings (``bags.evaluate``: each record
carries the camera's P and the hand's features), in two sets of different seeds or
sessions: the joint model is fitted on the first; its temperature (calibration, as for the
vision model) and the fusion's weights on the second, held out, so the fusion learns how far
to trust each witness on grasps neither was fitted on. Evaluate on a third.

Why scikit-learn's LogisticRegression for both: a few hundred grasps and seven features call
for a model that cannot overfit them and whose output is a probability by construction;
scikit-learn is the well-kept reference implementation, and a logistic regression is a dot
product, so the card stores its coefficients and the node needs NumPy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.core.fusion import Fusion, logit
from grasp_success_ros.core.hand_card import HandCard, JointModel
from grasp_success_ros.core.joints import FEATURE_NAMES, HandFeatures
from grasp_success_ros.core.judge import GraspRecord
from grasp_success_ros.model.calibration import fit_temperature

MIN_GRASPS = 20  # fewer labelled grasps of a set than this cannot fit anything


@dataclass(frozen=True)
class HandRows:
    """Labelled grasps with hand features: feature rows, the camera's P (NaN: it did not
    judge) and the truth."""

    features: np.ndarray
    p_vision: np.ndarray
    truth: np.ndarray

    @classmethod
    def of(cls, labelled: Sequence[tuple[GraspRecord, bool]], name: str) -> HandRows:
        rows = [(r, t) for r, t in labelled if r.joint_features is not None]
        truth = np.array([t for _, t in rows], bool)
        if len(rows) < MIN_GRASPS or truth.all() or not truth.any():
            raise ConfigError(f"{name}: {len(rows)} labelled grasps with joint features "
                              f"(need {MIN_GRASPS}, of both outcomes)")
        x = np.array([[_value(r.joint_features.get(k)) for k in FEATURE_NAMES] for r, _ in rows])
        pv = np.array([_value(r.p_vision) for r, _ in rows])
        return cls(x, pv, truth)


def _value(v: float | None) -> float:
    return np.nan if v is None else float(v)


def fit_joint_model(rows: HandRows) -> JointModel:
    """Logistic regression on the standardised features (NaN: the column's median)."""
    from sklearn.linear_model import LogisticRegression

    x = rows.features
    fill = np.array([np.median(c[np.isfinite(c)]) if np.isfinite(c).any() else 0.0
                     for c in x.T])
    x = np.where(np.isfinite(x), x, fill)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    fitted = LogisticRegression(C=1.0, max_iter=1000).fit((x - mean) / scale, rows.truth)
    return JointModel(tuple(fill), tuple(mean), tuple(scale), tuple(fitted.coef_[0]),
                      float(fitted.intercept_[0]))


def calibrated(model: JointModel, rows: HandRows) -> JointModel:
    """``model`` with the temperature fitted on held-out ``rows``."""
    p = 1.0 / (1.0 + np.exp(-model.logits(rows.features)))
    t = fit_temperature(p, rows.truth, fitted_on="holdout").temperature
    return JointModel(model.fill, model.mean, model.scale, model.coef, model.intercept, t)


def fit_fusion(p_vision: np.ndarray, p_joints: np.ndarray, truth: np.ndarray,
               name: str) -> Fusion:
    """Logistic regression on the two witnesses' logits (stacking), on grasps both judged."""
    from sklearn.linear_model import LogisticRegression

    both = np.isfinite(p_vision) & np.isfinite(p_joints)
    if both.sum() < MIN_GRASPS or truth[both].all() or not truth[both].any():
        raise ConfigError(f"fusion: {int(both.sum())} held-out grasps judged by both "
                          f"witnesses (need {MIN_GRASPS}, of both outcomes)")
    z = np.array([[logit(v), logit(j)] for v, j in zip(p_vision[both], p_joints[both],
                                                        strict=True)])
    fitted = LogisticRegression(C=1.0, max_iter=1000).fit(z, truth[both])
    w = fitted.coef_[0]
    return Fusion({"vision": float(w[0]), "joints": float(w[1])},
                  float(fitted.intercept_[0]), name)


def train_hand(train: HandRows, holdout: HandRows, hand: str, name: str,
               fitted_on: dict[str, list[str]]) -> HandCard:
    """The card: joint model on ``train``; its temperature and the fusion on ``holdout``
    (its metrics: the held-out accuracies, the fused one in-sample for the fusion)."""
    model = calibrated(fit_joint_model(train), holdout)
    p_joints = np.array([model(_features(row)) for row in holdout.features])
    fusion = fit_fusion(holdout.p_vision, p_joints, holdout.truth, name)
    fused = np.array([fusion.p_success({k: float(v) for k, v in (("vision", pv), ("joints", pj))
                                        if np.isfinite(v)})
                      for pv, pj in zip(holdout.p_vision, p_joints, strict=True)])
    metrics = {"train_grasps": int(train.truth.size), "holdout_grasps": int(holdout.truth.size),
               "holdout_accuracy_joints": _accuracy(p_joints, holdout.truth),
               "holdout_accuracy_vision": _accuracy(holdout.p_vision, holdout.truth),
               "holdout_accuracy_fused": _accuracy(fused, holdout.truth)}
    return HandCard(hand, model, fusion, fitted_on, metrics)


def _features(row: np.ndarray) -> HandFeatures:
    return HandFeatures(*[float(v) for v in row], samples=1)


def _accuracy(p: np.ndarray, truth: np.ndarray) -> float | None:
    judged = np.isfinite(p)
    return round(float(np.mean((p[judged] >= 0.5) == truth[judged])), 4) if judged.any() \
        else None
