"""Train-ready class folders from labelled events in bags (``grasp-success extract``).

Frames stamped in a window after each labelled event go to ``success/`` or ``failure/``
(its ground truth); optionally frames from before the grasp go to ``failure/`` (the open
hand over the object still on the table: the seed did the same with video frames).
Near-duplicates (a frame that barely differs from the previous one kept from the same
window) are dropped. Files are named ``<bag>_<stamp in microseconds>.png``
(``data/frame_names.py``). With a hand
(``--hand-profile``), each labelled event's joint features over the profile's window
(``core/joints.FEATURE_NAMES``, as the node computes them) go to ``OUT/_joints/<bag>.csv``
(``_``: ``train OUT`` skips the folder): what a joint model is trained on.
"""

from __future__ import annotations

import bisect
import csv
import json
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from grasp_success_ros.bags.engines import OnBagDone, run_bags
from grasp_success_ros.bags.labels import labelled_session
from grasp_success_ros.bags.reader import (
    BagEvent,
    FrameRef,
    Session,
    frame_decoder,
    hand_reading,
    load_frames,
)
from grasp_success_ros.bags.topics import BagTopics
from grasp_success_ros.core.errors import BagError, GraspSuccessError
from grasp_success_ros.core.joints import FEATURE_NAMES, JointTimeline, features
from grasp_success_ros.data.atomic import atomic_open, atomic_path, write_text
from grasp_success_ros.data.frame_names import frame_name

CLASSES = ("success", "failure")


@dataclass(frozen=True)
class ExtractOptions:
    window_s: float = 0.5  # frames in [event + settle_s, event + settle_s + window_s]
    settle_s: float = 0.0
    before_s: float = 0.0  # > 0: frames in [event - gap - before_s, event - gap) as failures
    before_gap_s: float = 0.3
    dedup: float = 1.0  # mean abs grey difference (0-255) of 32x32 thumbnails; 0 keeps all
    image_format: str = "png"
    label_tolerance_s: float = 0.5

    def validate(self) -> ExtractOptions:
        if self.window_s <= 0 or self.settle_s < 0 or self.before_s < 0 or \
                self.before_gap_s < 0 or self.dedup < 0:
            raise BagError("window must be > 0; settle, before, before-gap and dedup >= 0")
        if self.image_format not in ("png", "jpg"):
            raise BagError("image format must be png or jpg")
        return self


def _thumb(rgb: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)


def _window(stamps: list[float], lo: float, hi: float, include_hi: bool) -> range:
    first = bisect.bisect_left(stamps, lo)
    last = bisect.bisect_right(stamps, hi) if include_hi else bisect.bisect_left(stamps, hi)
    return range(first, last)


def after_event(stamps: list[float], event_stamp: float, opts: ExtractOptions) -> range:
    """Positions of the frames an event labels: stamped in [event + settle, + window]."""
    start = event_stamp + opts.settle_s
    return _window(stamps, start, start + opts.window_s, True)


def extract_bag(path: str | Path, out_dir: str | Path, topics: BagTopics | None = None,
                opts: ExtractOptions | None = None, labels_csv: Path | None = None
                ) -> dict:
    """Write one bag's labelled frames into OUT/success and OUT/failure; returns its counts."""
    topics, opts = topics or BagTopics(), (opts or ExtractOptions()).validate()
    out = Path(out_dir)
    for cls in CLASSES:
        (out / cls).mkdir(parents=True, exist_ok=True)
    bag, session, source = labelled_session(Path(path), topics, labels_csv,
                                            opts.label_tolerance_s)
    with bag:
        if source is None:
            raise BagError(f"bag {path}: no ground truth: no label topic {topics.label!r} "
                           f"(--label-topic) and no labels CSV (--labels, or labels.csv "
                           f"beside the bag); {bag.describe_topics()}")
        stamps = [f.stamp for f in session.frames]
        plan: list[tuple[str, list[int]]] = []  # (class, frame positions) per window
        counts = {"success": 0, "failure": 0, "duplicates": 0, "bad_frames": 0,
                  "events": len(session.events), "unlabelled": 0, "label_source": source}
        for ev in session.events:
            if ev.label is None or ev.rejection is not None:
                counts["unlabelled"] += ev.label is None
                continue
            plan.append(("success" if ev.label else "failure",
                         list(after_event(stamps, ev.stamp, opts))))
            if opts.before_s > 0:
                end = ev.stamp - opts.before_gap_s
                plan.append(("failure", list(_window(stamps, end - opts.before_s, end, False))))
        needed = {session.frames[i].index for _, idx in plan for i in idx}
        decode = frame_decoder(session, load_frames(session, needed))
        written: set[int] = set()
        for cls, idx in plan:
            for ref, rgb in kept_frames(session, idx, opts, decode, counts, written):
                name = frame_name(bag.name, ref.stamp, opts.image_format)
                write_frame(out / cls / name, rgb)
                written.add(ref.index)
                counts[cls] += 1
        if topics.hand is not None:
            counts["joint_features"] = write_joint_features(
                out / "_joints" / f"{bag.name}.csv", session,
                [ev for ev in session.events if ev.label is not None and ev.rejection is None])
    return counts


def kept_frames(session: Session, idx: Sequence[int], opts: ExtractOptions, decode,
                counts: dict, skip: Collection[int] = ()
                ) -> Iterator[tuple[FrameRef, np.ndarray]]:
    """One window's frames (positions ``idx`` in ``session.frames``) decoded, less those in
    ``skip`` (message indices already written), near-duplicates of the previous kept one
    (``opts.dedup``) and undecodable ones, which ``counts`` counts: one home for what
    extract keeps, whichever way the frames are labelled."""
    last = None
    for i in idx:
        ref = session.frames[i]
        if ref.index in skip:
            continue
        try:
            rgb = decode(ref.index)
        except GraspSuccessError:
            counts["bad_frames"] += 1
            continue
        thumb = _thumb(rgb)
        if last is not None and opts.dedup > 0 and \
                float(np.mean(np.abs(thumb - last))) < opts.dedup:
            counts["duplicates"] += 1
            continue
        last = thumb
        yield ref, rgb


def write_frame(path: Path, rgb: np.ndarray) -> Path:
    """One RGB frame as an image file (an interrupted run leaves no half image)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise BagError(f"cannot write {path}")
    return path


JOINT_COLUMNS = ("bag", "event_id", "event_stamp", "label", "scene", *FEATURE_NAMES, "samples")


def write_joint_features(path: Path, session: Session, events: Sequence[BagEvent]) -> int:
    """Each event's joint features (over the profile's window after it) as a CSV row;
    returns the rows written (an event with no joint state in its window has none)."""
    rows = [{"bag": session.bag.name, "event_id": ev.event_id,
             "event_stamp": f"{ev.stamp:.9f}", "label": int(ev.label), "scene": ev.scene,
             **{k: "" if v is None else v for k, v in found.as_dict().items()}}
            for ev, found in zip(events, joint_features(session, events), strict=True)
            if found is not None]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=JOINT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def joint_features(session: Session, events: Sequence[BagEvent]) -> list:
    """The hand's features (``core/joints.features``, None without joint states) at each
    event, in one pass over the hand's topics with the node's bounded timeline: an event's
    window is taken once a joint state stamped past it arrives (or the bag ends)."""
    hand = session.topics.hand
    timeline, window = JointTimeline(hand.profile), hand.profile.window_s
    order = sorted(range(len(events)), key=lambda i: events[i].stamp)
    found: list = [None] * len(events)
    for topic, _, log_ns, raw in session.bag.messages(set(hand.topics)):
        reading = hand_reading(session, topic, raw, log_ns)
        reading.into(timeline)
        while order and reading.kind == "state" and \
                reading.stamp > events[order[0]].stamp + window:
            i = order.pop(0)
            found[i] = features(timeline, events[i].stamp, events[i].stamp + window)
    for i in order:
        found[i] = features(timeline, events[i].stamp, events[i].stamp + window)
    return found


@dataclass(frozen=True)
class ExtractJob:
    """extract's work for an engine (``engines.py``). On a cluster every worker writes into
    ``out_dir``, so it must be the same shared folder everywhere."""

    out_dir: str
    topics: BagTopics
    opts: ExtractOptions
    labels_csv: Path | None = None

    def open(self):
        def one(path: Path) -> tuple[dict, str]:
            counts = extract_bag(path, self.out_dir, self.topics, self.opts, self.labels_csv)
            return counts, f"{counts['success']} success, {counts['failure']} failure"

        return one


def extract_bags(paths: Sequence[str | Path], out_dir: str | Path,
                 topics: BagTopics | None = None, opts: ExtractOptions | None = None,
                 labels_csv: Path | None = None, engine: str = "local", jobs: int = 1,
                 address: str | None = None, on_bag_done: OnBagDone | None = None
                 ) -> tuple[dict[str, dict], dict[str, str]]:
    """Every bag's frames into OUT (``extract_bag``) on an engine; ({bag name: counts},
    {bag: error}) in bag order."""
    job = ExtractJob(str(Path(out_dir).resolve()), topics or BagTopics(),
                     (opts or ExtractOptions()).validate(),
                     Path(labels_csv).resolve() if labels_csv else None)
    outcomes = run_bags(paths, job, engine, jobs, address, on_bag_done)
    per_bag = {Path(o.path).name: o.value for o in outcomes if o.error is None}
    return per_bag, {o.path: o.error for o in outcomes if o.error is not None}


def format_summary(per_bag: dict[str, dict]) -> str:
    lines = [f"{'bag':24s}{'success':>9s}{'failure':>9s}{'dropped':>9s}{'events':>8s}"
             f"{'unlabelled':>12s}"]
    tot = {"success": 0, "failure": 0, "duplicates": 0, "events": 0, "unlabelled": 0}
    for name, c in per_bag.items():
        lines.append(f"{name[:23]:24s}{c['success']:9d}{c['failure']:9d}{c['duplicates']:9d}"
                     f"{c['events']:8d}{c['unlabelled']:12d}")
        for k in tot:
            tot[k] += c[k]
    lines.append(f"{'total':24s}{tot['success']:9d}{tot['failure']:9d}{tot['duplicates']:9d}"
                 f"{tot['events']:8d}{tot['unlabelled']:12d}")
    return "\n".join(lines)


def write_summary(out_dir: Path, per_bag: dict[str, dict]) -> Path:
    path = Path(out_dir) / "extract_summary.json"
    return write_text(path, json.dumps(per_bag, indent=2) + "\n")
