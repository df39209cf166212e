"""Offline evaluation of recorded grasp sessions: every trigger in a bag goes through the
node's own decision path (``policy.select_frames`` and ``judge.judge_selected`` with the
node's policy and event times), so a bag's verdicts are the ones the node would have
published; ground truth comes from a label topic in the bag or a CSV beside it
(``labels.py``). Reports are ``report.py``'s. No ROS import.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from grasp_success_ros.bags.labels import labelled_session
from grasp_success_ros.bags.reader import BagEvent, Session, frame_decoder, load_frames
from grasp_success_ros.bags.topics import BagTopics
from grasp_success_ros.core.errors import BagError
from grasp_success_ros.core.judge import (
    Frame,
    GraspEvent,
    GraspRecord,
    failure_record,
    judge_selected,
)
from grasp_success_ros.core.policy import PolicyConfig, Selection, select_frames
from grasp_success_ros.evaluation.metrics import Confusion, seed_line


@dataclass
class EventResult:
    """One event of one bag: its record (exactly what the node publishes) and its truth."""

    bag: str
    log_time: float
    truth: bool | None
    record: GraspRecord

    @property
    def correct(self) -> bool | None:
        return None if self.truth is None else self.record.verdict is self.truth


def session_frames(session: Session) -> list[Frame]:
    return [Frame(f.stamp, f.index) for f in session.frames]


def judge_session(session: Session, predict: Callable, policy: PolicyConfig, model: str = ""
                  ) -> list[tuple[BagEvent, GraspRecord]]:
    """Every event of a session through the node's decision path: the frames are selected
    once per event, only the selected ones are loaded, and ``judge_selected`` (the node's
    call) decodes them, runs the model and decides. ``model`` names it in the records."""
    frames = session_frames(session)
    stamps = [f.stamp for f in frames]
    selections: list[Selection | None] = [
        None if ev.rejection is not None else select_frames(stamps, ev.stamp, policy, now=None)
        for ev in session.events]
    needed = {frames[i].msg for sel in selections if sel is not None for i in sel.indices}
    decode = frame_decoder(session, load_frames(session, needed))
    out = []
    for ev, sel in zip(session.events, selections, strict=True):
        event = GraspEvent(ev.event_id, ev.stamp, time.monotonic(), ev.trigger)
        if sel is None:
            record = failure_record(event, policy, *ev.rejection, model=model)
        else:
            record = judge_selected(event, frames, sel, predict, decode, policy, model)
        out.append((ev, record))
    return out


def evaluate_bag(path: str | Path, predict: Callable, policy: PolicyConfig,
                 topics: BagTopics | None = None, labels_csv: Path | None = None,
                 tolerance_s: float = 0.5, model: str = ""
                 ) -> tuple[list[EventResult], str | None]:
    """(results, label source) for one bag; ``model`` names the model in the records."""
    path, topics = Path(path), topics or BagTopics()
    bag, session, source = labelled_session(path, topics, labels_csv, tolerance_s)
    with bag:
        judged = judge_session(session, predict, policy, model)
    return [EventResult(bag.name, ev.log_ns * 1e-9, ev.label, rec) for ev, rec in judged], source


def evaluate_bags(paths: Sequence[str | Path], predict: Callable, policy: PolicyConfig,
                  topics: BagTopics | None = None, labels_csv: Path | None = None,
                  tolerance_s: float = 0.5, jobs: int = 2,
                  on_bag_done: Callable[[str, str], None] | None = None, model: str = ""
                  ) -> tuple[list[EventResult], dict[str, str], dict[str, str | None]]:
    """All bags, ``jobs`` at a time (reading and decoding overlap; the model runs one batch
    at a time). ``on_bag_done(bag name, note)`` is called from the worker as each bag ends
    (e.g. for a progress bar). Returns (results in bag order, {bag: error},
    {bag: label source})."""
    topics = topics or BagTopics()
    lock = threading.Lock()

    def locked_predict(images):
        with lock:
            return predict(images)

    results: dict[int, list[EventResult]] = {}
    errors: dict[str, str] = {}
    sources: dict[str, str | None] = {}

    def run(i: int, path: Path):
        try:
            res, source = evaluate_bag(path, locked_predict, policy, topics, labels_csv,
                                       tolerance_s, model)
            results[i], sources[str(path)] = res, source
            note = f"{len(res)} events"
        except BagError as exc:
            errors[str(path)] = str(exc)
            note = "error"
        if on_bag_done is not None:
            on_bag_done(path.name, note)

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(paths)))) as pool:
        futures = [pool.submit(run, i, Path(p)) for i, p in enumerate(paths)]
        for fut in as_completed(futures):
            fut.result()
    ordered = [r for i in sorted(results) for r in results[i]]
    return ordered, errors, sources


# ------------------------------------------------------------------------- summary


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _rounded(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)


def summarize(results: Sequence[EventResult]) -> dict:
    """Counts, the seed's line, confusion, precision/recall, coverage (the share with a
    verdict) and the error rate among verdicts (labelled events only)."""
    labelled = [r for r in results if r.truth is not None]
    truth = [bool(r.truth) for r in labelled]
    verdicts = [r.record.verdict for r in labelled]
    counted = Confusion.count(truth, verdicts)
    scores = {cls: counted.scores(cls) for cls in ("success", "failure")}
    codes: dict[str, int] = {}
    for r in results:
        if r.record.error_code:
            codes[r.record.error_code] = codes.get(r.record.error_code, 0) + 1
    per_bag: dict[str, dict] = {}
    for r in results:
        b = per_bag.setdefault(r.bag, {"events": 0, "labelled": 0, "correct": 0})
        b["events"] += 1
        b["labelled"] += r.truth is not None
        b["correct"] += bool(r.correct)
    for b in per_bag.values():
        b["accuracy"] = _ratio(b["correct"], b["labelled"])
    return {
        "events": len(results), "labelled": len(labelled),
        "verdicts": sum(r.record.verdict is not None for r in results),
        "no_verdict": codes, "correct": counted.correct,
        "accuracy": _rounded(counted.accuracy()),
        "coverage": _rounded(counted.coverage()), "error_rate": _rounded(counted.error_rate()),
        "seed_line": seed_line(truth, verdicts, noun="grasps") if labelled else None,
        "confusion": counted.table,
        **{cls: {"precision": _rounded(s["precision"]), "recall": _rounded(s["recall"])}
           for cls, s in scores.items()},
        "bags": per_bag,
    }
