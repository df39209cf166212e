"""``bag-eval``'s review material: the frames behind its mistakes (false successes, false
failures, labelled events left without a verdict), read back from the bags as review cases
(``evaluation/review.py``), each named ``<bag>_<stamp in us>.png`` as ``extract`` names
frames.  Every frame an event was judged on is a case, captioned with its own P(success);
events without a frame (``no_fresh_frame``, ...) have nothing to show and are counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from grasp_success_ros.bags.evaluate import EventResult, session_frames
from grasp_success_ros.bags.reader import frame_decoder, load_frames, open_bag, read_session
from grasp_success_ros.bags.topics import BagTopics, CameraTopicsMap, by_camera
from grasp_success_ros.core.errors import BagError, GraspSuccessError
from grasp_success_ros.evaluation.review import ReviewCase, review_kind


def _wanted(results: Sequence[EventResult], include_correct: bool
            ) -> tuple[dict[str, list[tuple[EventResult, str]]], int]:
    """The labelled events to review, by bag name, and how many have no frame to show."""
    by_bag: dict[str, list[tuple[EventResult, str]]] = {}
    frameless = 0
    for r in results:
        kind = None if r.truth is None else \
            review_kind(r.truth, r.record.verdict, include_correct)
        if kind is None:
            continue
        if not r.record.frame_stamps:
            frameless += 1
            continue
        by_bag.setdefault(r.bag, []).append((r, kind))
    return by_bag, frameless


def _bag_cases(path: Path, cameras: dict[str, BagTopics],
               items: list[tuple[EventResult, str]], frame_stamp: str
               ) -> tuple[list[ReviewCase], int]:
    """The judged frames of these events, decoded from the bag; and how many could not be."""
    cases, bad = [], 0
    with open_bag(path) as bag:
        for camera in dict.fromkeys(r.camera for r, _ in items):
            mine = [(r, kind) for r, kind in items if r.camera == camera]
            found, unreadable = _camera_cases(bag, path, cameras[camera], mine, frame_stamp)
            cases += found
            bad += unreadable
    return cases, bad


def _camera_cases(bag, path: Path, topics: BagTopics, items: list[tuple[EventResult, str]],
                  frame_stamp: str) -> tuple[list[ReviewCase], int]:
    """One camera's part of :func:`_bag_cases` (frames are found by stamp in its own)."""
    session = read_session(bag, topics)
    by_stamp = {f.stamp: f.msg for f in session_frames(session, frame_stamp)}
    plan = []
    for r, kind in items:
        probs = list(r.record.frame_p_success)
        for k, stamp in enumerate(r.record.frame_stamps):
            if stamp in by_stamp:
                p = probs[k] if k < len(probs) else r.record.p_success
                plan.append((r, kind, stamp, p, by_stamp[stamp]))
    decode = frame_decoder(session, load_frames(session, {i for *_, i in plan}))
    cases, bad = [], 0
    for r, kind, stamp, p, index in plan:
        try:
            rgb = decode(index)
        except GraspSuccessError:
            bad += 1
            continue
        cases.append(ReviewCase(
            f"{bag.name}_{r.camera + '_' if r.camera else ''}{int(round(stamp * 1e6))}.png",
            f"{path} {r.camera + ' ' if r.camera else ''}event {r.record.event_id} "
            f"frame {stamp:.6f}", bool(r.truth), r.record.verdict, p, kind, frame=rgb))
    return cases, bad


def bag_cases(results: Sequence[EventResult], bag_paths: Sequence[str | Path],
              topics: BagTopics | CameraTopicsMap | None = None, include_correct: bool = False,
              frame_stamp: str = "header") -> tuple[list[ReviewCase], dict[str, int]]:
    """The review cases of ``bag-eval``'s results (read again from the bags that have any)
    and what could not be shown: {"no_frame": events, "bad_frame": frames}. ``frame_stamp``:
    the policy's, which timed the frames the records name. ``topics``: as bag-eval's."""
    cameras = by_camera(topics)
    by_bag, frameless = _wanted(results, include_correct)
    paths: dict[str, Path] = {}
    for p in bag_paths:
        name = Path(p).stem if Path(p).is_file() else Path(p).name
        if name in by_bag and name in paths:
            raise BagError(f"two bags are named {name!r}; review them one at a time")
        paths[name] = Path(p)
    cases: list[ReviewCase] = []
    bad = 0
    for name, items in by_bag.items():
        found, unreadable = _bag_cases(paths[name], cameras, items, frame_stamp)
        cases += found
        bad += unreadable
    return cases, {"no_frame": frameless, "bad_frame": bad}


def judged_frames(results: Sequence[EventResult], bag_paths: Sequence[str | Path],
                  topics: BagTopics | CameraTopicsMap | None = None,
                  frame_stamp: str = "header") -> dict[tuple[str, int], np.ndarray]:
    """The last frame each event was judged on, decoded (for report.html's thumbnails):
    {(bag name, event_id): RGB} (an event id is unique in its bag, whatever the camera).
    Bags that cannot be read again, and frames that cannot be decoded, are left out (their
    rows say so)."""
    cameras = by_camera(topics)
    wanted: dict[str, dict[str, dict[float, list[int]]]] = {}
    for r in results:
        if r.record.frame_stamps:
            wanted.setdefault(r.bag, {}).setdefault(r.camera, {}).setdefault(
                r.record.frame_stamps[-1], []).append(r.record.event_id)
    frames: dict[tuple[str, int], np.ndarray] = {}
    for p in bag_paths:
        name = Path(p).stem if Path(p).is_file() else Path(p).name
        if name in wanted:
            try:
                with open_bag(p) as bag:
                    for camera, events in wanted[name].items():
                        frames.update(_decoded(bag, name, cameras[camera], events,
                                               frame_stamp))
            except GraspSuccessError:
                continue
    return frames


def _decoded(bag, name: str, topics: BagTopics, events: dict[float, list[int]],
             frame_stamp: str) -> dict[tuple[str, int], np.ndarray]:
    session = read_session(bag, topics)
    index = {f.stamp: f.msg for f in session_frames(session, frame_stamp)
             if f.stamp in events}
    decode = frame_decoder(session, load_frames(session, set(index.values())))
    out = {}
    for stamp, i in index.items():
        try:
            rgb = decode(i)
        except GraspSuccessError:
            continue
        out.update({(name, event_id): rgb for event_id in events[stamp]})
    return out
