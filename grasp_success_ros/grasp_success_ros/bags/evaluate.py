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
from dataclasses import dataclass
from pathlib import Path

from grasp_success_ros.bags.engines import run_bags
from grasp_success_ros.bags.labels import labelled_session
from grasp_success_ros.bags.reader import BagEvent, Session, frame_decoder, load_frames
from grasp_success_ros.bags.topics import BagTopics
from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.core.judge import (
    Frame,
    GraspEvent,
    GraspRecord,
    failure_record,
    judge_selected,
)
from grasp_success_ros.core.policy import PolicyConfig, Selection, select_frames
from grasp_success_ros.evaluation.metrics import Confusion, seed_line, usefulness_warnings


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


def session_frames(session: Session, frame_stamp: str = "header") -> list[Frame]:
    """The bag's frames as the node buffers them: arrival is the log (receive) time, so a
    frame stamped after it was logged is judged ``clock_skew`` as the node would; with
    ``frame_stamp`` arrival, timed by the log time alone (sorted by it)."""
    frames = [Frame(f.log_ns * 1e-9 if frame_stamp == "arrival" else f.stamp, f.index,
                    f.log_ns * 1e-9) for f in session.frames]
    return sorted(frames, key=lambda f: f.stamp) if frame_stamp == "arrival" else frames


def judge_session(session: Session, predict: Callable, policy: PolicyConfig, model: str = ""
                  ) -> list[tuple[BagEvent, GraspRecord]]:
    """Every event of a session through the node's decision path: the frames are selected
    once per event, only the selected ones are loaded, and ``judge_selected`` (the node's
    call) decodes them, runs the model and decides. ``model`` names it in the records."""
    frames = session_frames(session, policy.frame_stamp)
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


@dataclass
class BagEvalJob:
    """bag-eval's work for an engine (``engines.py``): the model is ``predict`` when given
    (the local engine shares the caller's), else loaded from ``model_path`` where the job
    runs (once per Ray worker). ``predict`` is not pickled."""

    policy: PolicyConfig
    topics: BagTopics
    labels_csv: Path | None = None
    tolerance_s: float = 0.5
    model_path: str = ""
    allow_custom_code: bool = False
    predict: Callable | None = None
    providers: tuple[str, ...] = ()  # ONNX Runtime's, for an .onnx model_path
    model_name: str = ""  # the model as the records name it
    accept_card_mismatch: bool = False

    def __getstate__(self) -> dict:
        return {**self.__dict__, "predict": None}

    def open(self) -> Callable[[Path], tuple[tuple[list[EventResult], str | None], str]]:
        predict = self.predict
        if predict is None:
            from grasp_success_ros.model.classifier import GraspClassifier

            predict = GraspClassifier.from_path(
                self.model_path, allow_custom_code=self.allow_custom_code,
                providers=self.providers,
                accept_card_mismatch=self.accept_card_mismatch)[0].predict
        lock = threading.Lock()

        def locked_predict(images):  # threads overlap reading; the model runs one batch
            with lock:
                return predict(images)

        def one(path: Path):
            res, source = evaluate_bag(path, locked_predict, self.policy, self.topics,
                                       self.labels_csv, self.tolerance_s, self.model_name)
            return (res, source), f"{len(res)} events"

        return one


def _absolute(path: str | Path | None) -> Path | None:
    """A path a Ray worker elsewhere finds too (its working directory is another)."""
    return Path(path).resolve() if path else None


def evaluate_bags(paths: Sequence[str | Path], predict: Callable | None, policy: PolicyConfig,
                  topics: BagTopics | None = None, labels_csv: Path | None = None,
                  tolerance_s: float = 0.5, jobs: int = 2,
                  on_bag_done: Callable[[str, str], None] | None = None, model: str = "",
                  engine: str = "local", address: str | None = None, model_path: str = "",
                  allow_custom_code: bool = False, providers: tuple[str, ...] = (),
                  accept_card_mismatch: bool = False
                  ) -> tuple[list[EventResult], dict[str, str], dict[str, str | None]]:
    """All bags, ``jobs`` at a time, on an engine (``engines.py``: local threads, or Ray,
    which loads the model from ``model_path`` in its workers instead of using ``predict``).
    ``on_bag_done(bag name, note)`` is called as each bag ends (e.g. for a progress bar);
    ``model`` names the model in the records.
    Returns (results in bag order, {bag: error}, {bag: label source})."""
    if engine == "ray" and not model_path:
        raise ConfigError("the ray engine loads the model in its workers: give model_path")
    job = BagEvalJob(policy, topics or BagTopics(), _absolute(labels_csv), tolerance_s,
                     str(_absolute(model_path) or ""), allow_custom_code,
                     predict if engine == "local" else None, tuple(providers), model,
                     accept_card_mismatch)
    outcomes = run_bags(paths, job, engine, jobs, address, on_bag_done)
    errors = {o.path: o.error for o in outcomes if o.error is not None}
    done = [o for o in outcomes if o.error is None]
    sources = {o.path: o.value[1] for o in done}
    return [r for o in done for r in o.value[0]], errors, sources


# ------------------------------------------------------------------------- summary


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _rounded(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)


def model_warnings(results: Sequence[EventResult], threshold: float) -> list[str]:
    """``evaluate``'s warnings that a model learned nothing (``metrics``), over the labelled
    events the model gave a P(success) (the others never reached it)."""
    scored = [r for r in results if r.truth is not None and r.record.p_success is not None]
    return usefulness_warnings([bool(r.truth) for r in scored],
                               [r.record.p_success for r in scored], threshold, noun="event")


def summarize(results: Sequence[EventResult], threshold: float) -> dict:
    """Counts, the seed's line, the warnings that the model learned nothing (judged at the
    success ``threshold``, as ``evaluate`` judges them), confusion, precision/recall, coverage
    (the share with a verdict) and the error rate among verdicts (labelled events only)."""
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
        "warnings": model_warnings(results, threshold),
        "confusion": counted.table,
        **{cls: {"precision": _rounded(s["precision"]), "recall": _rounded(s["recall"])}
           for cls, s in scores.items()},
        "bags": per_bag,
    }
