"""Hand profiles: what a hand publishes and how its joints tell "something is in the hand".

A profile is data (a YAML file per hand, read by ``data/hand_profiles.py``): the joints in
``joint_states`` it reads, which of them close on an object and their open and closed
positions, the effort at which a closing joint pushes, where commands come from (a
``JointState`` or ``Float64MultiArray`` command topic in the controller's joint order, or
none), the tactile topic if any, and the rule's margins. This module checks such a mapping
and turns messages' arrays into the profile's joint order; no file, ROS or ML library here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grasp_success_ros.core.errors import ConfigError

COMMAND_TYPES = ("none", "joint_state", "float64_multi_array")


@dataclass(frozen=True)
class ClosingJoint:
    """A joint that closes the hand: its position open and fully closed (radians, or the
    driver's unit for a prismatic finger)."""

    name: str
    open: float
    closed: float

    def closure(self, position: np.ndarray) -> np.ndarray:
        """0 at ``open``, 1 at ``closed`` (beyond either: below 0 / above 1)."""
        return (position - self.open) / (self.closed - self.open)


@dataclass(frozen=True)
class RuleMargins:
    """The no-training rule's margins (README, "Hand profiles"), per profile."""

    short: float = 0.08  # a closing joint this far (of its range) short of its target: stopped
    push: float = 0.3  # |effort| / effort_limit above this: pushing
    settled_speed: float = 0.3  # rad/s: slower than this, the joint has stopped
    tactile_contact: float = 1.0  # summed pad reading that means contact


@dataclass(frozen=True)
class HandProfile:
    """One hand; see the module docstring and README "Hand profiles" for the YAML."""

    hand: str
    joints: tuple[str, ...]
    closing: tuple[ClosingJoint, ...]
    effort_limit: float | None = None  # None: the hand reports no effort
    joint_states_topic: str = "joint_states"
    command_type: str = "none"
    command_topic: str = ""
    tactile_topic: str = ""
    tactile_pads: int = 0
    window_s: float = 0.2  # joint evidence: messages stamped within this after the event
    margins: RuleMargins = field(default_factory=RuleMargins)
    description: str = ""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], origin: str = "profile") -> HandProfile:
        """A profile from its YAML's mapping; ConfigError naming ``origin`` and the field."""
        try:
            return _parse(data).validate()
        except ConfigError as exc:
            raise ConfigError(f"{origin}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{origin}: not a hand profile ({type(exc).__name__}: {exc})") \
                from None

    def validate(self) -> HandProfile:
        if not self.joints or len(set(self.joints)) != len(self.joints):
            raise ConfigError("joints must be a non-empty list of distinct names")
        missing = [j.name for j in self.closing if j.name not in self.joints]
        if not self.closing or missing:
            raise ConfigError(f"closing joints must be among joints (not {missing})"
                              if missing else "closing must name at least one joint")
        if any(j.open == j.closed for j in self.closing):
            raise ConfigError("a closing joint's open and closed positions must differ")
        if self.command_type not in COMMAND_TYPES:
            raise ConfigError(f"command type must be one of {COMMAND_TYPES}")
        if (self.command_type == "none") != (not self.command_topic):
            raise ConfigError("command: a topic goes with type joint_state or "
                              "float64_multi_array, none with type none")
        if self.effort_limit is not None and self.effort_limit <= 0:
            raise ConfigError("effort_limit must be positive (or absent: no effort)")
        if not 0.01 <= self.window_s <= 5.0:
            raise ConfigError("window_s must be in [0.01, 5]")
        if bool(self.tactile_topic) != (self.tactile_pads > 0):
            raise ConfigError("tactile: a topic goes with its number of pads")
        return self

    @property
    def closing_index(self) -> np.ndarray:
        """Where the closing joints are in :attr:`joints`."""
        return np.array([self.joints.index(j.name) for j in self.closing], dtype=np.intp)

    def reorder(self, names: Sequence[str], values: Sequence[float]) -> np.ndarray:
        """A message's values (``names`` order) in :attr:`joints` order; NaN for a joint the
        message does not carry (a driver publishing several hands' joints is fine)."""
        out = np.full(len(self.joints), np.nan)
        if len(values) != len(names):  # JointState: an empty velocity/effort is allowed
            return out
        where = {name: i for i, name in enumerate(names)}
        for k, joint in enumerate(self.joints):
            i = where.get(joint)
            if i is not None:
                out[k] = float(values[i])
        return out

    def in_order(self, values: Sequence[float]) -> np.ndarray:
        """A Float64MultiArray command (the controller's order = :attr:`joints`)."""
        out = np.full(len(self.joints), np.nan)
        n = min(len(values), len(self.joints))
        out[:n] = np.asarray(values[:n], dtype=np.float64)
        return out


def _parse(data: Mapping[str, Any]) -> HandProfile:
    command = data.get("command") or {}
    tactile = data.get("tactile") or {}
    closing = tuple(ClosingJoint(str(c["name"]), float(c["open"]), float(c["closed"]))
                    for c in data["closing"])
    effort = data.get("effort_limit")
    return HandProfile(
        hand=str(data["hand"]), joints=tuple(str(j) for j in data["joints"]), closing=closing,
        effort_limit=None if effort is None else float(effort),
        joint_states_topic=str(data.get("joint_states_topic", "joint_states")),
        command_type=str(command.get("type", "none")),
        command_topic=str(command.get("topic", "")),
        tactile_topic=str(tactile.get("topic", "")), tactile_pads=int(tactile.get("pads", 0)),
        window_s=float(data.get("window_s", 0.2)),
        margins=RuleMargins(**{k: float(v) for k, v in (data.get("rule") or {}).items()}),
        description=str(data.get("description", "")),
    )
