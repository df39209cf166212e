"""A closing hand for the synthetic sessions: what a hand's joints (and its commands and
tactile pads) say during each grasp, consistent with the scene the camera sees.

Fusing the camera with the hand proves something only when each witness is wrong on grasps
the other gets right, so every grasp has a scene kind, in fixed shares (:data:`SCENE_SHARES`):
``plain`` grasps both witnesses get right; ``hidden`` and ``out_of_frame``, where the camera
cannot tell (the object held but hidden by the fingers, or lifted out of view);
``stopped_empty`` and ``thin_soft``, where the joints cannot tell (fingers stopped by the
table, an edge or each other with nothing held look like holding; fingers closed almost
fully around a thin or soft object look empty); ``carry_slip``, a good close that slips
during the carry. In half of each hard kind the failing witness is confidently wrong, in the
other half unsure (about half the closing joints blocked: the rule near even odds), so that
neither witness alone is right on every grasp.

The hand (:func:`hand_stream`): open during the approach, closing over :data:`CLOSE_S` to where
the scene stops it, ending :data:`SETTLE_S` before the grasp event, then settled (velocity
noise only); a slip closes the rest of the way while the effort and the pads' load drop; at
the release the hand opens. Sampled at :data:`RATE_HZ` on the frames' timeline
(``synth.grasp_stream``'s episode layout). numpy only; a seeded generator.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from grasp_success_ros.core.hands import HandProfile

SCENE_SHARES = {"plain": 0.50, "hidden": 0.15, "out_of_frame": 0.05, "stopped_empty": 0.10,
                "thin_soft": 0.10, "carry_slip": 0.10}
CAMERA_HARD = ("hidden", "out_of_frame")  # the camera cannot tell; the object is held
JOINTS_HARD = ("stopped_empty", "thin_soft")  # the joints cannot tell
HARD_KINDS = CAMERA_HARD + JOINTS_HARD
RATE_HZ = 100.0  # joint states (and tactile), as the Allegro driver publishes
COMMAND_EVERY = 10  # commands at a tenth of that (a forward controller's planner)
CLOSE_S = 0.3  # closing time
SETTLE_S = 0.04  # closed and still this long before the event
OPEN_S = 0.15  # opening at the release
SLIP_S = 0.08  # a slip: the fingers close the rest of the way in this long
NOISE = {"position": 0.004, "velocity": 0.02, "effort": 0.015, "pad": 0.002}  # std (effort:
# of the limit; pad: of the profile's tactile_contact)


@dataclass(frozen=True)
class GraspPlan:
    """One grasp's scene: its kind, its truth at the grasp event (a carry slip's is true: it
    slips later), whether its failing witness is confidently wrong (hard kinds; None
    otherwise) and a slip's onset in seconds after the event."""

    index: int
    kind: str
    label: bool
    confident: bool | None = None
    slip_after_s: float | None = None

    @property
    def tag(self) -> str:
        """What the bag's scene-kind label says: the kind, and for a hard kind
        ``:confident`` or ``:unsure``."""
        if self.confident is None:
            return self.kind
        return f"{self.kind}:{'confident' if self.confident else 'unsure'}"


@dataclass(frozen=True)
class EpisodeTiming:
    """``synth.grasp_stream``'s episode layout: the approach, the outcome's lead before the
    event, the hold after it (seconds)."""

    approach_s: float = 0.8
    lead_s: float = 0.2
    hold_s: float = 1.0

    @property
    def episode_s(self) -> float:
        return self.approach_s + self.lead_s + self.hold_s

    def event_at(self, g: int) -> float:
        return g * self.episode_s + self.approach_s + self.lead_s

    @property
    def release_after_s(self) -> float:
        """The release, after the event: open again before the next approach."""
        return max(0.45, self.hold_s - OPEN_S - 0.05)


def _apportion(n: int) -> list[str]:
    """``n`` kinds in :data:`SCENE_SHARES` exactly (largest remainders for the rest)."""
    quotas = {k: share * n for k, share in SCENE_SHARES.items()}
    counts = {k: math.floor(q) for k, q in quotas.items()}
    rest = sorted(quotas, key=lambda k: counts[k] - quotas[k])[: n - sum(counts.values())]
    return [k for k in SCENE_SHARES for _ in range(counts[k] + (k in rest))]


def plan_grasps(seed: int, n: int, success_ratio: float = 0.5,
                timing: EpisodeTiming = EpisodeTiming()) -> list[GraspPlan]:
    """``n`` grasps' scenes in the fixed shares, in a seeded order; plain grasps succeed
    with ``success_ratio``, the confident half of each hard kind alternates."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x4A4E7]))
    kinds = _apportion(int(n))
    rng.shuffle(kinds)
    seen = dict.fromkeys(SCENE_SHARES, 0)
    latest_slip = timing.release_after_s - SLIP_S - 0.05
    plans = []
    for i, kind in enumerate(kinds):
        seen[kind] += 1
        confident = seen[kind] % 2 == 1 if kind in HARD_KINDS else None
        label = bool(rng.random() < success_ratio) if kind == "plain" \
            else kind != "stopped_empty"
        slip = float(rng.uniform(min(0.4, latest_slip), latest_slip)) \
            if kind == "carry_slip" else None
        plans.append(GraspPlan(i, kind, label, confident, slip))
    return plans


# --------------------------------------------------------------------------- the grip


@dataclass(frozen=True)
class Grip:
    """Where a grasp's closing joints stop (closure of their range) and how hard they push
    (|effort| / effort_limit), and the pads' summed load (units of tactile_contact)."""

    closure: np.ndarray
    effort: np.ndarray
    tactile: float


def what_joints_say(plan: GraspPlan) -> str:
    """"held", "empty", "thin" (closed almost fully, lightly loaded) or "unsure" (about
    half the joints blocked): what the hand's joints show at the event."""
    if plan.kind in JOINTS_HARD:
        if not plan.confident:
            return "unsure"
        return "held" if plan.kind == "stopped_empty" else "thin"
    return "held" if plan.label else "empty"


def grip(say: str, n: int, target: np.ndarray, short: float, rng: np.random.Generator) -> Grip:
    """The stop of ``n`` closing joints commanded to ``target`` (closure) for what the
    joints should say; ``short`` is the rule's margin (a gap below it is "reached")."""
    blocked = np.ones(n, bool) if say == "held" else np.zeros(n, bool)
    if say == "unsure":  # about 0.4 of them blocked: the rule's even odds
        low = math.floor(0.4 * n)
        blocked[rng.permutation(n)[: min(n, int(rng.integers(low, low + 2)))]] = True
    reached = target - rng.uniform(0.2, 0.8, n) * short if say == "thin" else \
        target - rng.uniform(0.0, 0.4, n) * short
    closure = np.where(blocked, target * rng.uniform(0.35, 0.72, n), reached)
    free = rng.uniform(0.2, 0.5, n) if say == "thin" else rng.uniform(0.02, 0.15, n)
    effort = np.where(blocked, rng.uniform(0.55, 0.95, n), free)
    tactile = {"held": rng.uniform(1.2, 2.5), "empty": rng.uniform(0.0, 0.08),
               "thin": rng.uniform(0.0, 0.12), "unsure": rng.uniform(0.38, 0.55)}[say]
    return Grip(closure, effort, float(tactile))


# --------------------------------------------------------------------------- the stream


@dataclass(frozen=True)
class HandItem:
    """One hand message of a synthetic session: ``joints`` (position, velocity, effort in
    the profile's joint order; effort None for a hand without), ``command`` (positions),
    ``tactile`` (pads), or a grasp's ``release`` and ``slip`` (ground truth) moments."""

    t: float
    kind: str
    grasp_index: int
    position: np.ndarray | None = None
    velocity: np.ndarray | None = None
    effort: np.ndarray | None = None
    values: np.ndarray | None = None


def hand_stream(plans: Sequence[GraspPlan], profile: HandProfile, seed: int,
                timing: EpisodeTiming = EpisodeTiming()) -> Iterator[HandItem]:
    """The hand's messages for the grasps ``plans`` (module docstring), by time."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x4A4E8]))
    for plan in plans:
        yield from _episode(plan, profile, timing, rng)


def _episode(plan: GraspPlan, profile: HandProfile, timing: EpisodeTiming,
             rng: np.random.Generator) -> Iterator[HandItem]:
    g = plan.index
    k0, k1 = (math.ceil(x * RATE_HZ - 1e-6) for x in (g * timing.episode_s,
                                                       (g + 1) * timing.episode_s))
    t = np.arange(k0, k1) / RATE_HZ
    event = timing.event_at(g)
    release = event + timing.release_after_s
    target = rng.uniform(0.85, 1.0) if profile.command_type != "none" else 1.0
    n = len(profile.closing)
    held = grip(what_joints_say(plan), n, np.full(n, target), profile.margins.short, rng)
    after = grip("empty", n, np.full(n, target), profile.margins.short, rng)
    keys = _keys(event, release, plan.slip_after_s)
    closure = np.stack([np.interp(t, keys, _course(0.0, held.closure[j], after.closure[j],
                                                   plan.slip_after_s)) for j in range(n)], 1)
    effort = np.stack([np.interp(t, keys, _course(0.05, held.effort[j], after.effort[j],
                                                  plan.slip_after_s)) for j in range(n)], 1)
    load = np.interp(t, keys, _course(0.0, held.tactile, 0.0, plan.slip_after_s))
    closing = (keys[0], release)
    yield from _messages(plan.index, profile, t, (closure, effort, load), closing, target, rng)
    yield HandItem(release, "release", g)
    if plan.slip_after_s is not None:
        yield HandItem(event + plan.slip_after_s, "slip", g)


def _keys(event: float, release: float, slip: float | None) -> list[float]:
    """Key times: open, closing, closed (until the slip and its end), release, open."""
    start = event - SETTLE_S - CLOSE_S
    mid = [event + slip, event + slip + SLIP_S] if slip is not None else []
    return [start, event - SETTLE_S, *mid, release, release + OPEN_S]


def _course(open_value: float, stop: float, slipped: float, slip: float | None) -> list[float]:
    """A value at :func:`_keys`' times: open, stopped, (slipped), held until the release,
    open again."""
    mid = [stop, slipped] if slip is not None else []
    last = slipped if slip is not None else stop
    return [open_value, stop, *mid, last, open_value]


def _messages(g: int, profile: HandProfile, t: np.ndarray,
              courses: tuple[np.ndarray, np.ndarray, np.ndarray], closing: tuple[float, float],
              target: float, rng: np.random.Generator) -> Iterator[HandItem]:
    """Joint states (and commands, tactile) at ``t`` from the closing joints' courses
    (closure and effort per joint, the pads' load)."""
    closure, effort, load = courses
    lo = np.array([j.open for j in profile.closing])
    span = np.array([j.closed - j.open for j in profile.closing])
    index = profile.closing_index
    rest = rng.uniform(-0.1, 0.3, len(profile.joints))  # the other joints' posture
    position = np.tile(rest, (len(t), 1))
    position[:, index] = lo + closure * span
    velocity = np.gradient(position, axis=0) * RATE_HZ if len(t) > 1 else position * 0.0
    position += rng.normal(0.0, NOISE["position"], position.shape)
    velocity += rng.normal(0.0, NOISE["velocity"], velocity.shape)
    limit = profile.effort_limit
    torque = None
    if limit is not None:
        torque = rng.normal(0.0, NOISE["effort"] * limit, position.shape)
        torque[:, index] += effort * limit * np.sign(span)
    pads = _pads(profile, load, rng)
    commands = _commands(profile, t, closing, target)
    for k, stamp in enumerate(t):
        yield HandItem(float(stamp), "joints", g, position[k], velocity[k],
                       None if torque is None else torque[k])
        if pads is not None:
            yield HandItem(float(stamp), "tactile", g, values=pads[k])
        if commands is not None and k % COMMAND_EVERY == 0:
            yield HandItem(float(stamp), "command", g, values=commands[k])


def _pads(profile: HandProfile, load: np.ndarray, rng: np.random.Generator
          ) -> np.ndarray | None:
    """Each pad's reading: the summed load spread over the pads in contact, plus noise."""
    if not profile.tactile_pads:
        return None
    share = rng.dirichlet(np.ones(profile.tactile_pads))
    contact = profile.margins.tactile_contact
    noise = np.abs(rng.normal(0.0, NOISE["pad"] * contact, (len(load), profile.tactile_pads)))
    return np.outer(load * contact, share) + noise


def _commands(profile: HandProfile, t: np.ndarray, closing: tuple[float, float],
              target: float) -> np.ndarray | None:
    """The commanded posture (profile order): open, the grasp's closure from the start of
    the closing until the release (``closing``), open again."""
    if profile.command_type == "none":
        return None
    lo = np.array([j.open for j in profile.closing])
    span = np.array([j.closed - j.open for j in profile.closing])
    out = np.zeros((len(t), len(profile.joints)))
    shut = (t >= closing[0]) & (t < closing[1])
    out[:, profile.closing_index] = lo + np.outer(shut, target * span)
    return out
