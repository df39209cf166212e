"""Synthetic grasp scenes: a stand-in for real hand-camera images, made without any download.

A robot hand (Allegro-like: dark palm and fingers, often white-ish fingertips) hangs from the
top of the image above a table. SUCCESS means the object is held between the fingers and
lifted clear of the table; FAILURE means the hand is empty while the object still rests on the
table, lies on the floor, or is not in view at all. The deciding cue is therefore the object's
place relative to the hand and the table, never its colour or shape, so a classifier has to
learn the same thing it needs on real images.

Pure NumPy + OpenCV so it runs in tests, in the demo and on a training machine alike.
Scenes are described first (all positions as fractions of the image height/width) and drawn
afterwards, which lets :func:`grasp_stream` keep one scene per grasp episode and re-draw it at
any resolution with a little motion and sensor noise per frame.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from grasp_success_ros.data.atomic import atomic_path
from grasp_success_ros.data.hand_synth import GraspPlan

__all__ = ["OBJECT_KINDS", "StreamItem", "grasp_stream", "render_scene", "write_dataset"]

Color = tuple[float, float, float]

_SHIFT = 4  # sub-pixel bits for OpenCV drawing, so tiny per-frame motion is visible
_ONE = 1 << _SHIFT
_AA = cv2.LINE_AA

# Hand geometry in palm-width units (palm centre at the origin, y pointing down).
_PALM_HALF_H = 0.32
_FINGER_W = 0.2
_SEGMENTS = (0.42, 0.36, 0.28)
_BASES = {3: (-0.33, 0.0, 0.33), 4: (-0.36, -0.12, 0.12, 0.36)}


# --------------------------------------------------------------------------- scene description


@dataclass(frozen=True, eq=False)
class _Background:
    c1: Color
    c2: Color
    angle: float  # gradient direction, radians
    texture: str  # 'none', 'stripes', 'checker', 'blobs', 'tiles'
    amp: float
    freq: float  # texture periods per image height
    tex_angle: float
    grid: np.ndarray | None  # low-resolution texture values in [-1, 1], resized when drawn


@dataclass(frozen=True)
class _Table:
    top: float  # back edge of the table top, fraction of height
    depth: float  # visible table-top band, fraction of height
    face: float  # front face, fraction of height
    x0: float  # front edge extent, fractions of width
    x1: float
    inset: float  # perspective: the back edge is this much narrower on each side
    top_color: Color
    face_color: Color
    floor_color: Color
    leg_color: Color
    grain: tuple[tuple[float, float], ...]  # (position in the band 0..1, shade factor)
    mat: tuple[float, float, float, float, Color] | None  # cx (W), v (band), w (W), d, color

    @property
    def front(self) -> float:
        return self.top + self.depth + self.face

    def surface(self, v: float) -> float:
        """Height (fraction) of a point on the table top, v = 0 back edge .. 1 front edge."""
        return self.top + self.depth * v


@dataclass(frozen=True)
class _Object:
    shape: str  # 'box', 'cylinder', 'ball', 'bottle', 'ellipse'
    color: Color
    color2: Color
    w: float  # fractions of height
    h: float
    cx: float  # fraction of width
    cy: float  # fraction of height (centre of the body)
    angle: float  # degrees
    skew: float  # box top-face skew, -1..1
    label: bool  # bottle label band
    shadow: float  # darkening factor of the contact shadow (1 = none)
    shadow_y: float  # fraction of height
    held: bool = False  # in the hand: moves with it


@dataclass(frozen=True)
class _Hand:
    cx: float  # palm centre, fraction of width
    cy: float  # palm centre, fraction of height
    size: float  # palm width, fraction of height
    angle: float  # degrees, 0 = fingers pointing down
    n_fingers: int
    pose: str  # 'open', 'fist', 'grasp'
    spread: float  # degrees, open pose
    grip: float  # half-width of the grip in palm units, grasp pose
    reach: float  # how far the closed fingers reach down, palm units, grasp pose
    curl: float  # degrees, fingertip curl
    finger_len: float
    palm_color: Color
    finger_color: Color
    tip_color: Color
    arm_color: Color
    flange_color: Color


@dataclass(frozen=True)
class _Look:
    gain: Color  # per-channel gain: brightness and colour cast
    contrast: float
    offset: float
    ramp_x: float  # light fall-off across the image
    ramp_y: float
    blur: float  # Gaussian sigma, fraction of height
    noise: float  # std of the sensor noise, grey levels


@dataclass(frozen=True, eq=False)
class _Scene:
    bg: _Background
    table: _Table
    obj: _Object | None
    hand: _Hand
    look: _Look


# --------------------------------------------------------------------------- sampling


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _color(rng: np.random.Generator, v_lo: float = 0.0, v_hi: float = 255.0,
           s_hi: float = 255.0, s_lo: float = 0.0) -> Color:
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(s_lo, s_hi), rng.uniform(v_lo, v_hi)]]],
                   np.float32)
    rgb = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0]
    return tuple(float(c) for c in rgb)


def _distinct_color(rng: np.random.Generator, avoid: tuple[Color, ...], v_lo: float = 130.0,
                    v_hi: float = 255.0, s_hi: float = 255.0, s_lo: float = 110.0,
                    min_dist: float = 110.0) -> Color:
    """A colour that stands out against `avoid` (objects and the table edge must be seen)."""
    best, best_d = (255.0, 0.0, 0.0), -1.0
    for _ in range(12):
        c = _color(rng, v_lo, v_hi, s_hi, s_lo)
        d = min(float(np.linalg.norm(np.subtract(c, a))) for a in avoid)
        if d > best_d:
            best, best_d = c, d
        if d >= min_dist:
            break
    return best


def _shade(c: Color, f: float, add: float = 0.0) -> Color:
    return tuple(float(min(255.0, max(0.0, v * f + add))) for v in c)


def _sample_background(rng: np.random.Generator) -> _Background:
    c1 = _color(rng, 40, 250, 130)
    c2 = _shade(c1, _u(rng, 0.5, 1.2), _u(rng, -30, 30)) if rng.random() < 0.6 \
        else _color(rng, 40, 250, 130)
    texture = str(rng.choice(["none", "stripes", "checker", "blobs", "tiles"],
                             p=[0.25, 0.2, 0.15, 0.25, 0.15]))
    grid = None
    if texture == "checker":
        gh = int(rng.integers(3, 9))
        grid = (np.indices((gh, gh + int(rng.integers(0, 4)))).sum(0) % 2 * 2 - 1)
        grid = np.repeat(grid[..., None], 3, axis=2).astype(np.float32)
    elif texture == "blobs":
        grid = rng.uniform(-1, 1, (int(rng.integers(2, 6)), int(rng.integers(2, 7)), 3))
        grid = grid.astype(np.float32)
    return _Background(c1=c1, c2=c2, angle=_u(rng, 0, 2 * math.pi), texture=texture,
                       amp=_u(rng, 6, 30), freq=_u(rng, 3, 14), tex_angle=_u(rng, 0, math.pi),
                       grid=grid)


def _sample_table(rng: np.random.Generator, bg: _Background) -> _Table:
    top_color = _distinct_color(rng, (bg.c1, bg.c2), 60, 240, 130, 0, 60)
    full = rng.random() < 0.6
    return _Table(
        top=_u(rng, 0.6, 0.8), depth=_u(rng, 0.06, 0.13), face=_u(rng, 0.03, 0.1),
        x0=_u(rng, -0.3, -0.05) if full else _u(rng, -0.2, 0.15),
        x1=_u(rng, 1.05, 1.3) if full else _u(rng, 0.85, 1.2),
        inset=_u(rng, 0.0, 0.06), top_color=top_color,
        face_color=_shade(top_color, _u(rng, 0.45, 0.8)),
        floor_color=_color(rng, 30, 200, 150), leg_color=_color(rng, 10, 120, 120),
        grain=tuple((_u(rng, 0.05, 0.95), _u(rng, 0.8, 1.15))
                    for _ in range(int(rng.integers(0, 6)))),
        mat=(_u(rng, 0.1, 0.9), _u(rng, 0.2, 0.6), _u(rng, 0.1, 0.35), _u(rng, 0.2, 0.5),
             _color(rng, 40, 255, 130)) if rng.random() < 0.3 else None,
    )


def _sample_look(rng: np.random.Generator) -> _Look:
    bright = _u(rng, 0.7, 1.25)
    gain = tuple(bright * (1.0 + _u(rng, -0.12, 0.12)) for _ in range(3))
    return _Look(gain=gain, contrast=_u(rng, 0.75, 1.25), offset=_u(rng, -15, 15),
                 ramp_x=_u(rng, -0.25, 0.25), ramp_y=_u(rng, -0.2, 0.2),
                 blur=_u(rng, 0.0, 0.006) if rng.random() < 0.6 else 0.0,
                 noise=_u(rng, 1.0, 8.0))


def _sample_object(rng: np.random.Generator, hand_size: float,
                   avoid: tuple[Color, ...]) -> _Object:
    """An object sized for the hand (a grasp needs one about a palm wide)."""
    shape = str(rng.choice(["box", "cylinder", "ball", "bottle", "ellipse"]))
    w = hand_size * _u(rng, 0.75, 1.25)
    if shape == "ball":
        h = w
    elif shape == "bottle":
        w *= 0.75
        h = w * _u(rng, 2.0, 3.0)
    elif shape == "ellipse":
        h = w * _u(rng, 1.1, 1.7)
    else:
        h = w * _u(rng, 0.8, 2.2)
    h = min(h, 0.34)
    return _Object(shape=shape, color=_distinct_color(rng, avoid),
                   color2=_color(rng, 30, 255),
                   w=w, h=h, cx=_u(rng, 0.2, 0.8), cy=0.5, angle=0.0,
                   skew=_u(rng, -1, 1), label=bool(rng.random() < 0.5), shadow=1.0,
                   shadow_y=0.0)


def _sample_hand(rng: np.random.Generator) -> _Hand:
    dark = _u(rng, 12, 75)
    tint = tuple(_u(rng, -8, 8) for _ in range(3))
    palm = tuple(max(0.0, dark + t) for t in tint)
    finger = _shade(palm, _u(rng, 0.8, 1.3), _u(rng, -5, 10))
    tip = _shade((1.0, 1.0, 1.0), _u(rng, 170, 245)) if rng.random() < 0.75 \
        else _shade(finger, 1.2, 10)
    arm = _color(rng, 70, 190, 40)
    return _Hand(cx=0.5, cy=0.3, size=_u(rng, 0.19, 0.28), angle=_u(rng, -10, 10),
                 n_fingers=int(rng.choice([3, 4])), pose="open", spread=_u(rng, 10, 38),
                 grip=0.6, reach=1.0, curl=_u(rng, 35, 80), finger_len=_u(rng, 0.85, 1.15),
                 palm_color=palm, finger_color=finger, tip_color=tip, arm_color=arm,
                 flange_color=_shade(arm, _u(rng, 0.6, 1.3), 10))


# Which objects the scenes hold: "colourful" (the default: bright, saturated colours) or
# "white" (white and pale grey: cups, paper, plastic), a kind of scene a model trained on the
# default scenes has never seen and misjudges (README "The review loop" shows the loop on it).
OBJECT_KINDS = ("colourful", "white")


def _object_kind(obj: _Object, rng: np.random.Generator, objects: str) -> _Object:
    """The sampled object, recoloured for ``objects`` (the default draws nothing more, so
    default scenes stay exactly as they were)."""
    if objects not in OBJECT_KINDS:
        raise ValueError(f"objects must be one of {OBJECT_KINDS}, not {objects!r}")
    if objects == "colourful":
        return obj
    return replace(obj, color=_color(rng, 215, 255, 25), color2=_color(rng, 150, 255, 40))


def _reach(hand: _Hand) -> float:
    """How far (fraction of height) the hand extends below its palm centre."""
    return hand.size * (_PALM_HALF_H + 1.06 * hand.finger_len)


def _resting(obj: _Object, table: _Table, v: float, rng: np.random.Generator) -> _Object:
    """The object standing on the table top at depth v (0 back .. 1 front)."""
    y = table.surface(v)
    tilt = _u(rng, -4, 4)
    return replace(obj, cy=y - obj.h / 2, angle=tilt, shadow=_u(rng, 0.45, 0.7), shadow_y=y)


def _on_floor(obj: _Object, table: _Table, rng: np.random.Generator) -> _Object:
    """The object fallen off the table: lying on its side on the floor below the table."""
    lying = rng.random() < 0.75
    angle = (90.0 if rng.random() < 0.5 else -90.0) + _u(rng, -15, 15) if lying else _u(rng, -8, 8)
    ext = obj.w if lying else obj.h
    lo = table.front + ext / 2 + 0.01
    hi = max(lo, 1.0 - ext * 0.25)
    cy = _u(rng, lo, hi)
    return replace(obj, cx=_u(rng, 0.1, 0.9), cy=cy, angle=angle, shadow=_u(rng, 0.5, 0.75),
                   shadow_y=cy + ext / 2)


def _grasp_hand(hand: _Hand, obj: _Object, rng: np.random.Generator) -> tuple[_Hand, _Object]:
    """Hand closed around the object. The returned object's cx/cy are offsets from the palm
    centre in hand coordinates (fractions of height); :func:`_attach` turns them into places."""
    size = max(hand.size, obj.w / 1.3)
    # Fingers hold the upper part, so the lower part of the object stays in view.
    reach = min(1.0, max(0.35, _u(rng, 0.5, 0.75) * obj.h / size))
    hand = replace(hand, size=size, pose="grasp", grip=obj.w / 2 / size + 0.12, reach=reach)
    dx = _u(rng, -0.08, 0.08) * obj.w
    dy = size * _PALM_HALF_H + _u(rng, 0.0, 0.02) + obj.h / 2
    return hand, replace(obj, angle=hand.angle + _u(rng, -4, 4), shadow=1.0, cx=dx, cy=dy)


def _attach(hand: _Hand, local: _Object, aspect: float) -> _Object:
    """Place an object given as hand-local offsets under the rotated palm."""
    a = math.radians(hand.angle)
    ox = local.cx * math.cos(a) - local.cy * math.sin(a)
    oy = local.cx * math.sin(a) + local.cy * math.cos(a)
    return replace(local, cx=hand.cx + ox / aspect, cy=hand.cy + oy)


def _held_scene(rng: np.random.Generator, table: _Table, obj: _Object, hand: _Hand,
                aspect: float, v: float | None = None) -> tuple[_Hand, _Object]:
    """SUCCESS: the object lifted clear of the table inside the closed hand."""
    rest = table.surface(v if v is not None else _u(rng, 0.3, 0.9))
    hi = min(rest - 0.18, table.top - 0.06)  # bottom of the lifted object
    palm = max(hand.size, obj.w / 1.3) * 0.6  # keep most of the palm in view
    lo = obj.h + palm + 0.01
    if hi < lo:  # not enough room above the table: make the object a little smaller
        scale = max(0.6, (hi - palm - 0.01) / obj.h)
        obj = replace(obj, w=obj.w * scale, h=obj.h * scale)
        lo = obj.h + palm + 0.01
    bottom = _u(rng, min(lo, hi), hi)
    hand = replace(hand, angle=hand.angle * 0.8)
    hand, local = _grasp_hand(hand, obj, rng)
    # Palm centre so that the object's centre lands at (obj.cx, bottom - h/2).
    a = math.radians(hand.angle)
    ox = local.cx * math.cos(a) - local.cy * math.sin(a)
    oy = local.cx * math.sin(a) + local.cy * math.cos(a)
    hand = replace(hand, cx=obj.cx - ox / aspect, cy=bottom - obj.h / 2 - oy)
    held = _attach(hand, local, aspect)
    shadow = 1.0 if rng.random() < 0.5 else _u(rng, 0.8, 0.92)
    return hand, replace(held, shadow=shadow, shadow_y=rest, held=True)


def _empty_pose(rng: np.random.Generator, hand: _Hand, obj_w: float | None = None) -> _Hand:
    pose = str(rng.choice(["open", "fist", "grasp"], p=[0.5, 0.4, 0.1]))
    grip = (obj_w if obj_w is not None else _u(rng, 0.08, 0.2)) / 2 / hand.size + 0.12
    return replace(hand, pose=pose, grip=min(grip, 0.7) * _u(rng, 0.5, 1.0),
                   reach=_u(rng, 0.4, 1.0))


def _hand_above(rng: np.random.Generator, hand: _Hand, cx: float, lowest: float,
                highest: float = -0.1) -> _Hand:
    """Hand hanging somewhere above `lowest` (fingertips stay above it); the palm centre is
    at least `highest` palm widths below the image top."""
    y_hi = lowest - _reach(hand)
    y_lo = min(y_hi, hand.size * highest)
    return replace(hand, cx=cx, cy=_u(rng, y_lo, y_hi) if y_hi > y_lo else y_hi)


def _pregrasp(rng: np.random.Generator, hand: _Hand, obj: _Object, aspect: float,
              gap: float) -> _Hand:
    """Open hand right above the object resting on the table, about to close on it."""
    top = obj.cy - obj.h / 2 - (0.25 * obj.w if obj.shape == "box" else 0.0)
    size = max(hand.size, obj.w / 1.3)
    spread = max(hand.spread, 22.0)
    return replace(hand, size=size, pose="open", spread=spread, angle=hand.angle * 0.5,
                   cx=obj.cx + _u(rng, -0.15, 0.15) * obj.w / aspect,
                   cy=top - gap - size * _PALM_HALF_H)


def _approach_path(rng: np.random.Generator, hand: _Hand, rest: _Object,
                   aspect: float) -> tuple[_Hand, _Hand]:
    """Start and end of the open hand's way down to the object resting on the table."""
    end = _pregrasp(rng, hand, rest, aspect, _u(rng, 0.0, 0.05))
    start = replace(end, cx=min(0.9, max(0.1, end.cx + _u(rng, -0.25, 0.25))),
                    cy=min(end.cy, _u(rng, -0.05, 0.2)), angle=hand.angle)
    return start, end


def _lerp_hand(a: _Hand, b: _Hand, k: float) -> _Hand:
    k = k * k * (3.0 - 2.0 * k)  # smooth start and stop
    return replace(b, cx=a.cx + (b.cx - a.cx) * k, cy=a.cy + (b.cy - a.cy) * k,
                   angle=a.angle + (b.angle - a.angle) * k)


_FAILURE_KINDS = ("approach", "above", "pregrasp", "beside", "floor", "empty")


def _failure_scene(rng: np.random.Generator, table: _Table, obj: _Object, hand: _Hand,
                   aspect: float, kind: str | None = None) -> tuple[_Table, _Object | None, _Hand]:
    if kind is None:
        kind = str(rng.choice(_FAILURE_KINDS, p=[0.25, 0.15, 0.1, 0.1, 0.15, 0.25]))
    if kind == "floor" and table.front > 0.86:
        table = replace(table, face=max(0.02, 0.86 - table.top - table.depth))
    hand = _empty_pose(rng, hand, obj.w)
    surface_low = table.surface(0.8)
    if kind == "empty":
        return table, None, _hand_above(rng, hand, _u(rng, 0.15, 0.85), surface_low)
    if kind == "floor":
        hand = _hand_above(rng, hand, _u(rng, 0.15, 0.85), surface_low)
        return table, _on_floor(obj, table, rng), hand
    rest = _resting(obj, table, _u(rng, 0.3, 0.9), rng)
    if kind == "pregrasp":
        return table, rest, _pregrasp(rng, hand, rest, aspect, _u(rng, 0.0, 0.06))
    if kind == "approach":  # what a stream shows before the hand closes
        start, end = _approach_path(rng, hand, rest, aspect)
        return table, rest, _lerp_hand(start, end, _u(rng, 0.0, 1.0))
    if kind == "beside":
        side = 1.0 if rng.random() < 0.5 else -1.0
        off = (rest.w / 2 + hand.size * _u(rng, 0.9, 1.6)) / aspect
        cx = rest.cx + side * off
        if not 0.05 < cx < 0.95:
            cx = rest.cx - side * off
        return table, rest, _hand_above(rng, hand, cx, rest.shadow_y)
    top = rest.cy - rest.h / 2
    cx = rest.cx + _u(rng, -0.12, 0.12)
    return table, rest, _hand_above(rng, hand, cx, top - _u(rng, 0.0, 0.04))


def _sample_scene(rng: np.random.Generator, success: bool, aspect: float,
                  kind: str | None = None, objects: str = "colourful") -> _Scene:
    bg = _sample_background(rng)
    table, look = _sample_table(rng, bg), _sample_look(rng)
    hand = _sample_hand(rng)
    obj = _sample_object(rng, hand.size, (bg.c1, bg.c2, table.top_color, hand.palm_color))
    obj = _object_kind(obj, rng, objects)
    if success:
        hand, held = _held_scene(rng, table, obj, hand, aspect)
        return _Scene(bg, table, held, hand, look)
    table, placed, hand = _failure_scene(rng, table, obj, hand, aspect, kind)
    return _Scene(bg, table, placed, hand, look)


# --------------------------------------------------------------------------- drawing


def _pts(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, np.float64) * _ONE).astype(np.int32)


def _pt(x: float, y: float) -> tuple[int, int]:
    return math.floor(x * _ONE + 0.5), math.floor(y * _ONE + 0.5)


def _poly(img: np.ndarray, points: np.ndarray, color: Color) -> None:
    cv2.fillPoly(img, [_pts(points)], color, _AA, _SHIFT)


def _ellipse(img: np.ndarray, c: tuple[float, float], axes: tuple[float, float], angle: float,
             color: Color) -> None:
    cv2.ellipse(img, _pt(*c), _pt(max(axes[0], 0.5), max(axes[1], 0.5)), angle, 0, 360, color,
                -1, _AA, _SHIFT)


def _darken_ellipse(img: np.ndarray, c: tuple[float, float], axes: tuple[float, float],
                    factor: float) -> None:
    h, w = img.shape[:2]
    x0, x1 = max(0, int(c[0] - axes[0]) - 2), min(w, int(c[0] + axes[0]) + 3)
    y0, y1 = max(0, int(c[1] - axes[1]) - 2), min(h, int(c[1] + axes[1]) + 3)
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    _ellipse(mask, (c[0] - x0, c[1] - y0), axes, 0.0, (255.0, 0.0, 0.0))
    roi = img[y0:y1, x0:x1].astype(np.float32)
    k = 1.0 - (1.0 - factor) * mask.astype(np.float32)[..., None] / 255.0
    img[y0:y1, x0:x1] = (roi * k).astype(np.uint8)


def _draw_background(bg: _Background, h: int, w: int) -> np.ndarray:
    ys = np.linspace(0.0, 1.0, h, dtype=np.float32)
    xs = np.linspace(0.0, w / h, w, dtype=np.float32)
    # Linear gradient c1 -> c2 along bg.angle, built from a row and a column (separable).
    tx, ty = xs * math.cos(bg.angle), ys * math.sin(bg.angle)
    lo = float(tx.min() + ty.min())
    span = max(float(tx.max() + ty.max()) - lo, 1e-6)
    c1 = np.array(bg.c1, np.float32)
    dc = (np.array(bg.c2, np.float32) - c1) / np.float32(span)
    img = ((ty - np.float32(lo))[:, None] * dc + c1)[:, None, :] + (tx[:, None] * dc)[None]
    if bg.texture == "stripes":  # sin(X + Y) = sin X cos Y + cos X sin Y, again separable
        kf = np.float32(2 * math.pi * bg.freq)
        gx, gy = xs * kf * math.cos(bg.tex_angle), ys * kf * math.sin(bg.tex_angle)
        wave = np.outer(np.cos(gy), np.sin(gx)) + np.outer(np.sin(gy), np.cos(gx))
        img += (np.float32(bg.amp) * wave)[..., None]
    elif bg.texture in ("checker", "blobs") and bg.grid is not None:
        interp = cv2.INTER_NEAREST if bg.texture == "checker" else cv2.INTER_CUBIC
        img += np.float32(bg.amp) * cv2.resize(bg.grid, (w, h), interpolation=interp)
    np.clip(img, 0, 255, out=img)
    img = img.astype(np.uint8)
    if bg.texture == "tiles":
        step = max(4.0, h / bg.freq)
        col = _shade(tuple((a + b) / 2 for a, b in zip(bg.c1, bg.c2, strict=True)), 0.75)
        thick = max(1, h // 240)
        for k in range(1, int(w / step) + 1):
            cv2.line(img, (int(k * step), 0), (int(k * step), h), col, thick)
        for k in range(1, int(h / step) + 1):
            cv2.line(img, (0, int(k * step)), (w, int(k * step)), col, thick)
    return img


def _draw_table(img: np.ndarray, t: _Table, h: int, w: int) -> None:
    yt, yb, yf = t.top * h, (t.top + t.depth) * h, t.front * h
    x0, x1, inset = t.x0 * w, t.x1 * w, t.inset * w
    img[int(t.top * h + t.depth * h * 0.5):] = np.array(t.floor_color, np.uint8)
    leg_w = 0.035 * w
    for lx in (x0 + 0.04 * w, x1 - 0.04 * w - leg_w):
        _poly(img, np.array([[lx, yf - 1], [lx + leg_w, yf - 1], [lx + leg_w, h],
                             [lx, h]]), t.leg_color)
    _poly(img, np.array([[x0 + inset, yt], [x1 - inset, yt], [x1, yb], [x0, yb]]), t.top_color)
    for v, f in t.grain:
        y = yt + v * (yb - yt)
        cv2.line(img, _pt(x0, y), _pt(x1, y), _shade(t.top_color, f), max(1, h // 240), _AA,
                 _SHIFT)
    if t.mat is not None:
        mx, mv, mw, md, mc = t.mat
        ya, yb2 = yt + mv * (yb - yt), yt + min(1.0, mv + md) * (yb - yt)
        cx, half = mx * w, mw * w / 2
        _poly(img, np.array([[cx - half * 0.9, ya], [cx + half * 0.9, ya], [cx + half, yb2],
                             [cx - half, yb2]]), mc)
    _poly(img, np.array([[x0, yb], [x1, yb], [x1, yf], [x0, yf]]), t.face_color)


def _rot(points: np.ndarray, angle_deg: float, cx: float, cy: float) -> np.ndarray:
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    p = np.asarray(points, np.float64)
    return np.stack([p[:, 0] * c - p[:, 1] * s + cx, p[:, 0] * s + p[:, 1] * c + cy], axis=1)


def _draw_object(img: np.ndarray, o: _Object, h: int, w: int) -> None:
    cx, cy, ow, oh = o.cx * w, o.cy * h, o.w * h, o.h * h
    if o.shadow < 1.0:
        ext = max(ow, oh) if abs(abs(o.angle) - 90) < 30 else ow
        _darken_ellipse(img, (cx, o.shadow_y * h), (ext * 0.62, max(1.5, 0.018 * h)), o.shadow)
    c = o.color
    light, dark = _shade(c, 1.2, 30), _shade(c, 0.62)

    def poly(pts: list[tuple[float, float]], color: Color) -> None:
        _poly(img, _rot(np.array(pts), o.angle, cx, cy), color)

    def ell(x: float, y: float, ax: float, ay: float, color: Color) -> None:
        p = _rot(np.array([[x, y]]), o.angle, cx, cy)[0]
        _ellipse(img, (p[0], p[1]), (ax, ay), o.angle, color)

    hw, hh = ow / 2, oh / 2
    if o.shape == "box":
        d, sx = 0.22 * ow, o.skew * 0.18 * ow
        poly([(-hw, -hh), (hw, -hh), (hw + sx, -hh - d), (-hw + sx, -hh - d)], light)
        side = hw if sx >= 0 else -hw
        poly([(side, -hh), (side + sx, -hh - d), (side + sx, hh - d), (side, hh)], dark)
        poly([(-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)], c)
    elif o.shape == "cylinder":
        e = 0.13 * ow
        ell(0, hh, hw, e, c)
        poly([(-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)], c)
        poly([(-hw * 0.55, -hh), (-hw * 0.25, -hh), (-hw * 0.25, hh), (-hw * 0.55, hh)],
             _shade(c, 1.1, 15))
        ell(0, -hh, hw, e, light)
    elif o.shape == "ball":
        ell(0, 0, hw, hw, c)
        ell(hw * 0.1, hw * 0.1, hw * 0.8, hw * 0.8, _shade(c, 0.85))
        ell(-hw * 0.3, -hw * 0.3, hw * 0.28, hw * 0.28, light)
    elif o.shape == "bottle":
        body_top = -hh + 0.4 * oh
        poly([(-hw, body_top), (hw, body_top), (hw, hh), (-hw, hh)], c)
        nk = 0.19 * ow
        poly([(-hw, body_top), (hw, body_top), (nk, -hh + 0.25 * oh), (-nk, -hh + 0.25 * oh)], c)
        poly([(-nk, -hh + 0.25 * oh), (nk, -hh + 0.25 * oh), (nk, -hh + 0.08 * oh),
              (-nk, -hh + 0.08 * oh)], _shade(c, 0.9))
        cap = 0.24 * ow
        poly([(-cap, -hh + 0.08 * oh), (cap, -hh + 0.08 * oh), (cap, -hh), (-cap, -hh)],
             o.color2)
        if o.label:
            poly([(-hw, body_top + 0.12 * oh), (hw, body_top + 0.12 * oh),
                  (hw, body_top + 0.4 * oh), (-hw, body_top + 0.4 * oh)], o.color2)
        poly([(-hw * 0.6, body_top), (-hw * 0.35, body_top), (-hw * 0.35, hh),
              (-hw * 0.6, hh)], _shade(c, 1.1, 18))
    else:  # ellipse
        ell(0, 0, hw, hh, c)
        ell(-hw * 0.3, -hh * 0.35, hw * 0.3, hh * 0.22, light)


def _finger_chains(hand: _Hand) -> list[np.ndarray]:
    """Joint positions of every finger in palm units (y down, palm centre at the origin)."""
    bases = _BASES[hand.n_fingers]
    lens = np.array(_SEGMENTS) * hand.finger_len
    outer = max(abs(b) for b in bases)
    chains = []
    for bx in bases:
        sgn = bx / outer  # -1 .. 1, outward direction
        is_outer = abs(sgn) > 0.9
        seg = lens.copy()
        if hand.pose == "open":
            a1 = sgn * hand.spread
            angles = [a1, a1 + sgn * 8.0, a1 + sgn * 4.0 - sgn * hand.curl * 0.3]
        elif hand.pose == "fist":
            if is_outer:
                angles = [sgn * 15.0, -sgn * 55.0, -sgn * 120.0]
                seg = seg * 0.85
            else:
                angles = [sgn * 8.0, sgn * 4.0, -sgn * 20.0]
                seg = seg * 0.45
        else:  # grasp
            seg = seg * min(1.0, hand.reach / (0.9 * float(seg.sum())))
            if is_outer:
                target = math.copysign(hand.grip, sgn)
                a1 = math.degrees(math.asin(max(-0.95, min(0.95, (target - bx) / seg[0]))))
                angles = [a1, 0.0, -sgn * hand.curl]
            else:
                angles = [sgn * 6.0, sgn * 2.0, -sgn * 35.0]
                seg = seg * 0.5  # wraps over the object's top, seen foreshortened
        pts = [(bx, _PALM_HALF_H - 0.04)]
        x, y = pts[0]
        for ang, length in zip(angles, seg, strict=True):
            r = math.radians(ang)
            x, y = x + length * math.sin(r), y + length * math.cos(r)
            pts.append((x, y))
        chains.append(np.array(pts))
    return chains


def _draw_hand(img: np.ndarray, hand: _Hand, h: int, w: int) -> None:
    s = hand.size * h
    cx, cy = hand.cx * w, hand.cy * h

    def tr(pts: np.ndarray) -> np.ndarray:
        return _rot(np.asarray(pts, np.float64) * s, hand.angle, cx, cy)

    _poly(img, tr(np.array([[-0.26, -6.0], [0.26, -6.0], [0.26, -0.3], [-0.26, -0.3]])),
          hand.arm_color)
    _poly(img, tr(np.array([[-0.4, -0.48], [0.4, -0.48], [0.4, -0.3], [-0.4, -0.3]])),
          hand.flange_color)
    ph, c = _PALM_HALF_H, 0.1
    _poly(img, tr(np.array([[-0.5 + c, -ph], [0.5 - c, -ph], [0.5, -ph + c], [0.5, ph - c],
                            [0.5 - c, ph], [-0.5 + c, ph], [-0.5, ph - c], [-0.5, -ph + c]])),
          hand.palm_color)
    thick = max(1, math.floor(_FINGER_W * s + 0.5))
    knuckle = _shade(hand.finger_color, 0.7)
    for chain in _finger_chains(hand):
        p = tr(chain)
        for a, b in itertools.pairwise(p):
            cv2.line(img, _pt(*a), _pt(*b), hand.finger_color, thick, _AA, _SHIFT)
        for q in p[1:-1]:
            _ellipse(img, (q[0], q[1]), (0.09 * s, 0.09 * s), 0.0, knuckle)
        _ellipse(img, (p[-1][0], p[-1][1]), (0.115 * s, 0.115 * s), 0.0, hand.tip_color)


def _apply_look(img: np.ndarray, look: _Look, rng: np.random.Generator,
                flicker: float = 1.0) -> np.ndarray:
    h, w = img.shape[:2]
    if look.blur > 0:
        sigma = look.blur * h
        if sigma > 0.3:
            img = cv2.GaussianBlur(img, (0, 0), sigma)
    f = img.astype(np.float32)
    ys = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
    xs = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    light = (1.0 + look.ramp_x * xs + look.ramp_y * ys) * np.float32(flicker)
    f *= np.array(look.gain, np.float32) * np.float32(look.contrast)
    f += np.float32(128.0 * (1.0 - look.contrast) + look.offset)
    f *= light[..., None]
    # Uniform sensor noise with std look.noise: much cheaper to draw than Gaussian noise.
    noise = rng.random(f.shape, dtype=np.float32)
    noise -= np.float32(0.5)
    noise *= np.float32(look.noise * math.sqrt(12.0))
    f += noise
    np.clip(f, 0, 255, out=f)
    return f.astype(np.uint8)


def _render(scene: _Scene, height: int, width: int, rng: np.random.Generator,
            flicker: float = 1.0) -> np.ndarray:
    img = _draw_background(scene.bg, height, width)
    _draw_table(img, scene.table, height, width)
    if scene.obj is not None:
        _draw_object(img, scene.obj, height, width)
    _draw_hand(img, scene.hand, height, width)
    return _apply_look(img, scene.look, rng, flicker)


# --------------------------------------------------------------------------- public API


def render_scene(rng: np.random.Generator, success: bool, height: int = 240,
                 width: int = 320, objects: str = "colourful") -> np.ndarray:
    """RGB uint8 (height, width, 3) image.

    One random grasp scene: SUCCESS draws the object lifted inside the closed hand, FAILURE
    an empty hand with the object on the table, on the floor, or out of view. All randomness
    comes from `rng`, so a seeded generator reproduces the image exactly. ``objects`` is
    one of :data:`OBJECT_KINDS`.
    """
    scene = _sample_scene(rng, bool(success), width / height, objects=objects)
    return _render(scene, int(height), int(width), rng)


def write_dataset(out_dir: str | os.PathLike, n_images: int, seed: int = 0, height: int = 240,
                  width: int = 320, objects: str = "colourful") -> dict[str, int]:
    """Writes OUT/success/*.png and OUT/failure/*.png (half each, success gets the extra one
    when odd); returns {'success': n, 'failure': m}. Different seeds give different scenes;
    same seed gives identical files.

    The folder layout is the one the training code reads (one sub-folder per class), so a
    synthetic set can stand in for recorded images anywhere.
    """
    out = Path(out_dir)
    dirs = {True: out / "success", False: out / "failure"}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5CE9E]))
    counts = {True: 0, False: 0}
    for i in range(int(n_images)):
        success = i % 2 == 0
        img = render_scene(rng, success, height, width, objects)
        name = dirs[success] / f"{counts[success]:05d}.png"
        with atomic_path(name, durable=False) as tmp:  # made again on demand
            cv2.imwrite(str(tmp), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        counts[success] += 1
    return {"success": counts[True], "failure": counts[False]}


@dataclass(frozen=True)
class StreamItem:
    """One item of a synthetic camera stream: a frame, or a grasp-completed event."""

    t: float  # seconds from stream start
    kind: str  # 'frame' or 'event'
    image: np.ndarray | None  # RGB uint8 for frames
    label: bool | None  # ground truth success for events (None for frames)
    grasp_index: int  # which grasp episode this item belongs to


@dataclass(frozen=True, eq=False)
class _Episode:
    scene: _Scene  # the outcome scene
    start: _Hand  # approach: open hand moves from `start` ...
    end: _Hand  # ... to `end` (right above the object)
    approach_obj: _Object | None  # the object as it rests during the approach
    label: bool
    slipped: _Scene | None = None  # a carry slip: the scene after its onset


def _sample_episode(rng: np.random.Generator, success: bool, aspect: float,
                    objects: str = "colourful", plan: GraspPlan | None = None) -> _Episode:
    bg = _sample_background(rng)
    table, look = _sample_table(rng, bg), _sample_look(rng)
    look = replace(look, noise=max(look.noise, 2.0))
    hand = _sample_hand(rng)
    obj = _sample_object(rng, hand.size, (bg.c1, bg.c2, table.top_color, hand.palm_color))
    obj = _object_kind(obj, rng, objects)
    v = _u(rng, 0.3, 0.9)
    rest = _resting(obj, table, v, rng)
    start, end = _approach_path(rng, hand, rest, aspect)
    if success:
        held_hand, held = _held_scene(rng, table, obj, hand, aspect, v)
        scene = _Scene(bg, table, held, held_hand, look)
    else:
        kind = str(rng.choice(["missed", "dropped", "gone"], p=[0.6, 0.25, 0.15]))
        if kind == "dropped" and table.front > 0.86:
            table = replace(table, face=max(0.02, 0.86 - table.top - table.depth))
        lifted = _empty_pose(rng, end, obj.w)
        lifted = _hand_above(rng, lifted, end.cx + _u(rng, -0.05, 0.05),
                             rest.cy - rest.h / 2 - _u(rng, 0.04, 0.15), highest=0.35)
        placed: _Object | None = None
        if kind == "missed":
            placed = replace(rest, cx=rest.cx + _u(rng, -0.03, 0.03),
                             angle=rest.angle + _u(rng, -5, 5))
        elif kind == "dropped":
            placed = _on_floor(obj, table, rng)
        scene = _Scene(bg, table, placed, lifted, look)
    episode = _Episode(scene=scene, start=start, end=end, approach_obj=rest, label=bool(success))
    return episode if plan is None else _planned(rng, episode, plan, obj)


def _planned(rng: np.random.Generator, ep: _Episode, plan: GraspPlan, obj: _Object) -> _Episode:
    """The camera's side of a planned grasp (``data/hand_synth.py``): the object hidden by
    the fingers or lifted out of view (the confident half: not seen at all; the unsure half:
    a sliver of it), a thin object, a closed empty hand, a carry slip's drop."""
    scene, hand = ep.scene, ep.scene.hand
    held = scene.obj
    if plan.kind == "stopped_empty":
        return replace(ep, scene=replace(scene, hand=replace(hand, pose="fist")))
    if held is None or plan.kind not in ("hidden", "out_of_frame", "thin_soft", "carry_slip"):
        return ep
    if plan.kind == "hidden" and plan.confident:
        return replace(ep, scene=replace(scene, obj=None, hand=replace(hand, pose="fist")))
    if plan.kind == "hidden":  # small, high between the closed fingers
        small = replace(held, w=held.w * 0.45, h=held.h * 0.45,
                        cy=hand.cy + hand.size * (_PALM_HALF_H + 0.1) + held.h * 0.22)
        return replace(ep, scene=replace(scene, obj=small, hand=replace(
            hand, grip=small.w / 2 / hand.size + 0.05)))
    if plan.kind == "thin_soft":
        thin = replace(held, w=held.w * 0.45)
        return replace(ep, scene=replace(scene, obj=thin, hand=replace(
            hand, grip=thin.w / 2 / hand.size + 0.12)))
    if plan.kind == "carry_slip":
        fallen = _on_floor(obj, scene.table, rng)
        return replace(ep, slipped=replace(scene, obj=fallen, hand=replace(hand, pose="fist")))
    bottom = _u(rng, -0.2, -0.03) if plan.confident else _u(rng, 0.06, 0.16)
    dy = bottom - (held.cy + held.h / 2)  # out of frame: lifted above the image's top
    return replace(ep, scene=replace(scene, obj=replace(held, cy=held.cy + dy),
                                     hand=replace(hand, cy=hand.cy + dy)))


def _jitter(scene: _Scene, rng: np.random.Generator, amount: float) -> _Scene:
    """Tiny camera/hand shake so consecutive frames differ."""
    dx, dy = rng.normal(0.0, amount, 2)
    hand = replace(scene.hand, cx=scene.hand.cx + dx, cy=scene.hand.cy + dy)
    obj = scene.obj
    if obj is not None and obj.held:
        obj = replace(obj, cx=obj.cx + dx, cy=obj.cy + dy)
    return replace(scene, hand=hand, obj=obj)


def _scene_at(ep: _Episode, local: float, approach: float, slip_at: float) -> _Scene:
    """The episode's scene ``local`` seconds into it: approaching, the outcome, slipped."""
    if local < approach - 1e-9:
        hand = _lerp_hand(ep.start, ep.end, local / approach)
        return replace(ep.scene, obj=ep.approach_obj, hand=hand)
    return ep.slipped if ep.slipped is not None and local >= slip_at else ep.scene


def grasp_stream(seed: int, n_grasps: int, fps: float = 30.0, height: int = 480,
                 width: int = 640, approach_s: float = 0.8, outcome_lead_s: float = 0.2,
                 hold_s: float = 1.0, success_ratio: float = 0.5,
                 objects: str = "colourful",
                 plans: Sequence[GraspPlan] | None = None) -> Iterator[StreamItem]:
    """A camera stream with grasp events and ground truth, for tests and the demo.

    Every grasp episode keeps one scene: `approach_s` seconds of the open hand coming down
    over the object resting on the table (these look like FAILURE), then the outcome scene
    (object lifted in the hand, or empty hand with the object left behind / dropped / gone)
    from `outcome_lead_s` seconds before the 'event' item until `hold_s` seconds after it.
    Frames are spaced 1/fps apart and drawn lazily, so large streams cost no memory; an
    event sorts before a frame with the same time stamp. ``objects``: :data:`OBJECT_KINDS`.
    ``plans`` (``hand_synth.plan_grasps``, one per grasp): each grasp's scene kind and
    truth instead of ``success_ratio``'s (a carry slip's object falls at its onset).
    """
    if fps <= 0:
        raise ValueError("fps must be positive")
    if n_grasps < 0:
        raise ValueError("n_grasps must not be negative")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x57EA4]))
    labels = rng.random(int(n_grasps)) < success_ratio
    if plans is not None:
        labels = [plan.label for plan in plans[:int(n_grasps)]]
    aspect = width / height
    approach = max(0.0, float(approach_s))
    lead = max(0.0, float(outcome_lead_s))
    hold = max(0.0, float(hold_s))
    episode_s = approach + lead + hold
    eps = 1e-9
    frame = 0
    for g in range(int(n_grasps)):
        ep = _sample_episode(rng, bool(labels[g]), aspect, objects,
                             None if plans is None else plans[g])
        slip_at = math.inf if plans is None or plans[g].slip_after_s is None \
            else plans[g].slip_after_s + approach + lead
        t0 = g * episode_s
        t_event = t0 + approach + lead
        event_sent = False
        while True:
            t = frame / fps
            if not event_sent and t >= t_event - eps:
                yield StreamItem(t=min(t_event, t), kind="event", image=None, label=ep.label,
                                 grasp_index=g)
                event_sent = True
            if t >= t0 + episode_s - eps:
                break
            scene = _jitter(_scene_at(ep, t - t0, approach, slip_at), rng, 0.0015)
            img = _render(scene, int(height), int(width), rng, 1.0 + rng.normal(0.0, 0.01))
            yield StreamItem(t=t, kind="frame", image=img, label=None, grasp_index=g)
            frame += 1
