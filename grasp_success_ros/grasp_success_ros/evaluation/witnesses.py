"""``evaluate --hand-features``: vision only, joints only and fused side by side on images.

An extract OUT holds frames named ``<bag>_<stamp in µs>.png`` (``data/frame_names.py``) and
each labelled event's joint features in ``_joints/<bag>.csv``. Each image is joined to the
latest event of its bag stamped at or before it; the joints' P is the hand witness's (the
profile's rule or a hand card's model, ``core/evidence.hand_witness``) on that event's
features, and the fused P is its fusion of the image's vision P and the joints' P. An image
without an event has no joints' P and is fused from vision alone, as the node would fuse it.
The scores per source are the ones ``bag-eval`` gives (``format_sources``).
"""

from __future__ import annotations

import bisect
import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grasp_success_ros.core.errors import DatasetError
from grasp_success_ros.core.evidence import HandWitness
from grasp_success_ros.core.joints import FEATURE_NAMES, HandFeatures
from grasp_success_ros.core.policy import verdicts
from grasp_success_ros.data.frame_names import parse_frame_name, stamp_us
from grasp_success_ros.evaluation.metrics import (
    PRECISION_TARGETS,
    Confusion,
    coverage_at_precision,
)

SOURCES = ("vision", "joints", "fused")


@dataclass(frozen=True)
class JointEvent:
    """One labelled event's row of an extract's ``_joints`` CSV, with the joints' P."""

    bag: str
    event_id: int
    stamp_us: int
    label: bool
    p_joints: float


def joints_files(folder: str | Path) -> list[Path]:
    """The ``_joints/*.csv`` of an extract OUT (given OUT or its ``_joints`` folder)."""
    folder = Path(folder).expanduser()
    inner = folder / "_joints"
    found = sorted((inner if inner.is_dir() else folder).glob("*.csv"))
    if not found:
        raise DatasetError(f"--hand-features {folder}: no _joints/*.csv (extract writes them "
                           "with --hand-profile)")
    return found


def _value(text: str | None) -> float:
    return math.nan if text in (None, "") else float(text)


def read_joint_events(folder: str | Path, witness: HandWitness) -> dict[str, list[JointEvent]]:
    """Every event of the CSVs by bag, oldest first, each with its joints' P."""
    events: dict[str, list[JointEvent]] = {}
    for path in joints_files(folder):
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                try:
                    found = HandFeatures(*[_value(row[k]) for k in FEATURE_NAMES],
                                         samples=int(row["samples"]))
                    ev = JointEvent(row["bag"], int(row["event_id"]),
                                    stamp_us(float(row["event_stamp"])), row["label"] == "1",
                                    round(float(witness.scorer(found)), 6))
                except (KeyError, TypeError, ValueError) as exc:
                    raise DatasetError(f"{path}: not an extract joints file "
                                       f"({type(exc).__name__}: {exc})") from None
                events.setdefault(ev.bag, []).append(ev)
    for rows in events.values():
        rows.sort(key=lambda e: e.stamp_us)
    return events


def match_event(events: dict[str, list[JointEvent]], image: str | Path) -> JointEvent | None:
    """The latest event of the image's bag stamped at or before it (None: no such event,
    or a file name not in extract's format)."""
    parsed = parse_frame_name(image)
    rows = events.get(parsed[0], []) if parsed else []
    i = bisect.bisect_right([e.stamp_us for e in rows], parsed[1]) if rows else 0
    return rows[i - 1] if i else None


@dataclass(frozen=True)
class SideBySide:
    """Each image's event (None: none), and P(success) per source (joints NaN: no event)."""

    events: list[JointEvent | None]
    p: dict[str, np.ndarray]
    fusion: str


def side_by_side(paths: Sequence[str], p_vision: np.ndarray,
                 events: dict[str, list[JointEvent]], witness: HandWitness) -> SideBySide:
    """Join each image to its event and fuse its vision P with the event's joints' P."""
    matched = [match_event(events, path) for path in paths]
    p_joints = np.array([math.nan if e is None else e.p_joints for e in matched])
    fused = np.array([witness.fusion.p_success(
        {"vision": float(v), **({} if e is None else {"joints": e.p_joints})})
        for v, e in zip(p_vision, matched, strict=True)])
    return SideBySide(matched, {"vision": np.asarray(p_vision, np.float64),
                                "joints": p_joints, "fused": fused}, witness.fusion.name)


def _rounded(x: float) -> float | None:
    return round(float(x), 4) if math.isfinite(x) else None


def source_scores(truth: np.ndarray, p: np.ndarray, threshold: float,
                  threshold_failure: float | None) -> dict:
    """One source's accuracy, coverage, error rate among its verdicts and coverage at the
    precision targets, over every image (one without this source's P: no verdict)."""
    judged = np.isfinite(p)
    said = verdicts(np.where(judged, p, 0.5), threshold, threshold_failure)
    counted = Confusion.count(list(truth), [v if j else None for v, j in zip(said, judged,
                                                                           strict=True)])
    with_p = [float(x) if j else None for x, j in zip(p, judged, strict=True)]
    return {"correct": counted.correct, "judged": counted.judged,
            "accuracy": _rounded(counted.accuracy()), "coverage": _rounded(counted.coverage()),
            "error_rate": _rounded(counted.error_rate()),
            "coverage_at_precision": {f"{q:g}": coverage_at_precision(truth, with_p, threshold,
                                                                      q)
                                      for q in PRECISION_TARGETS}}


def by_source(truth: np.ndarray, sides: SideBySide, threshold: float,
              threshold_failure: float | None) -> dict:
    """The JSON report's ``hand`` part: the join's counts and the scores per source."""
    matched = [e for e in sides.events if e is not None]
    return {"fusion": sides.fusion, "images": len(sides.events), "matched": len(matched),
            "label_disagrees": sum(e.label is not bool(t) for e, t in
                                   zip(sides.events, truth, strict=True) if e is not None),
            "sources": {name: source_scores(truth, sides.p[name], threshold, threshold_failure)
                        for name in SOURCES}}


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def format_sources(summary: dict, unit: str = "labelled events") -> list[str]:
    """Vision only, joints only and fused side by side, and per scene kind where the
    summary has them (``bag-eval``'s and ``evaluate --hand-features``' table)."""
    sources = summary.get("sources")
    if not sources:
        return []
    names = list(sources)
    lines = [f"{'by source (' + unit + '):':32s}" + "".join(f"{n:>9s}" for n in names)]
    for key, what in (("accuracy", "accuracy"), ("coverage", "coverage"),
                      ("error_rate", "error rate")):
        lines.append(f"  {what:30s}" + "".join(f"{_fmt(sources[n][key]):>9s}" for n in names))
    for q in sources[names[0]].get("coverage_at_precision", {}):
        lines.append(f"  {'coverage at ' + format(float(q), '.0%') + ' precision':30s}"
                     + "".join(f"{_fmt(sources[n]['coverage_at_precision'][q]):>9s}"
                               for n in names))
    scenes = summary.get("scenes") or {}
    if scenes:
        lines.append(f"{'accuracy by scene kind:':32s}" + "".join(f"{n:>9s}" for n in names))
    for scene, row in scenes.items():
        lines.append(f"  {scene + ' (' + str(row['events']) + ')':30s}"
                     + "".join(f"{_fmt(row[n]):>9s}" for n in names))
    return lines


def hand_lines(summary: dict) -> list[str]:
    """The console's side-by-side block: the join, then the table."""
    lines = [f"hand features: {summary['matched']} of {summary['images']} images matched to "
             f"an event (the others: joints n/a, fused = vision); fusion "
             f"{summary['fusion']}"]
    if summary["label_disagrees"]:
        lines.append(f"warning: {summary['label_disagrees']} matched images are in the other "
                     "class folder than their event's label (frames from before a grasp?)")
    return lines + format_sources(summary, unit="images")
