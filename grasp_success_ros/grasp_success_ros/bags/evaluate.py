"""Offline evaluation of recorded grasp sessions: each bag drives the node's own engine
(``core/grasp_service.py``) with its timeline, so a bag's records are the ones the node
would have published; ground truth comes from a label topic in the bag or a CSV beside it
(``labels.py``). Reports are ``report.py``'s. No ROS import.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np

from grasp_success_ros.bags.engines import run_bags
from grasp_success_ros.bags.holds import HoldEnd, hold_summary
from grasp_success_ros.bags.labels import labelled_sessions
from grasp_success_ros.bags.reader import (
    BagEvent,
    Session,
    hand_reading,
    raw_decoder,
    raw_stamp,
    session_messages,
)
from grasp_success_ros.bags.topics import BagTopics, CameraTopicsMap, by_camera
from grasp_success_ros.core.errors import BagError, ConfigError
from grasp_success_ros.core.evidence import hand_witness
from grasp_success_ros.core.grasp_service import Answer, GraspService, Pass, Scorer
from grasp_success_ros.core.hold import HoldConfig, HoldReport
from grasp_success_ros.core.judge import Frame, GraspRecord
from grasp_success_ros.core.params import PARAMS
from grasp_success_ros.core.policy import PolicyConfig, mean_rule
from grasp_success_ros.core.stamps import ns_to_s
from grasp_success_ros.core.triggers import TRIGGER_MSGTYPES, TriggerInfo, trigger_info
from grasp_success_ros.evaluation.metrics import (
    Confusion,
    seed_line,
    usefulness_warnings,
)
from grasp_success_ros.evaluation.witnesses import source_scores

PARAMS_BY_NAME = {spec.name: spec for spec in PARAMS}


@dataclass
class EventResult:
    """One event of one bag: its record (exactly what the node publishes) and its truth."""

    bag: str
    log_time: float
    truth: bool | None
    record: GraspRecord
    camera: str = ""  # which of the bag's cameras ("": the single one)
    scene: str = ""  # the grasp's scene kind where the bag labels it (synthetic sessions)
    slip_s: float | None = None  # a labelled carry slip's onset (synthetic sessions)
    hold: HoldEnd | None = None  # how the hold after its SUCCESS ended (--hold-watch)

    @property
    def correct(self) -> bool | None:
        return None if self.truth is None else self.record.verdict is self.truth


def session_frames(session: Session, frame_stamp: str = "header") -> list[Frame]:
    """The bag's frames as the node buffers them (for the review tools that find a judged
    frame by its time): arrival is the log (receive) time; with ``frame_stamp`` arrival,
    timed by the log time alone (sorted by it)."""
    frames = [Frame(ns_to_s(f.log_ns) if frame_stamp == "arrival" else f.stamp, f.index,
                    ns_to_s(f.log_ns)) for f in session.frames]
    return sorted(frames, key=lambda f: f.stamp) if frame_stamp == "arrival" else frames


@dataclass(frozen=True)
class ServiceSettings:
    """What the node's grasp service is built with beyond the policy (its parameters)."""

    buffer_size: int = PARAMS_BY_NAME["buffer_size"].default
    streaming: bool = PARAMS_BY_NAME["streaming"].default
    hold: HoldConfig = HoldConfig()  # the watch over the hold (off: the node's default)


class BagClock:
    """The bag's log time, the service's "now" and steady clock alike."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def judge_session(session: Session, scorer: Scorer, policy: PolicyConfig,
                  settings: ServiceSettings = ServiceSettings()
                  ) -> list[tuple[BagEvent, GraspRecord]]:
    """Every event of a one-camera session through the node's grasp service
    (:func:`judge_sessions`)."""
    return [(ev, rec) for _, ev, rec in judge_sessions([session], scorer, policy, settings)]


def judge_sessions(sessions: Sequence[Session], scorer: Scorer, policy: PolicyConfig,
                   settings: ServiceSettings = ServiceSettings()
                   ) -> list[tuple[int, BagEvent, GraspRecord]]:
    """Every event of a bag's cameras through one grasp service (:func:`judge_timeline`):
    (camera, event, record) in the order the service took the events."""
    return judge_timeline(sessions, scorer, policy, settings).records


@dataclass
class Judged:
    """What the service said of a bag: each event's record (camera, event, record) and,
    with the hold watch on, every hold's report."""

    records: list[tuple[int, BagEvent, GraspRecord]]
    holds: list[HoldReport]


def judge_timeline(sessions: Sequence[Session], scorer: Scorer, policy: PolicyConfig,
                   settings: ServiceSettings = ServiceSettings()) -> Judged:
    """Every event of a bag's cameras (one session each, in the service's camera order)
    through one grasp service, as the node with these cameras: their frames and triggers in
    log-time order, "now" the log time, each deadline met when it comes. The messages logged
    at one time are taken in together, then one pass answers (as the node's worker, woken
    once), so the events of all cameras ready together are judged in one forward pass; a
    release event among them then ends its camera's hold. The records are, by construction,
    what the node would have published; the holds, its ``grasp_success/hold`` reports
    (those still open when the bag ends run to their timeout, as the node's would)."""
    clock = BagClock()
    hands = [hand_witness(s.topics.hand.profile, s.topics.hand.card) if s.topics.hand
             else None for s in sessions]
    service = GraspService(len(sessions), _decoder(sessions), settings.buffer_size,
                           settings.streaming, steady=clock, hands=hands, hold=settings.hold)
    service.serve(scorer, policy)
    service.activate()
    intake = _Intake(service, sessions, settings.hold.enabled)
    out = Pass()
    for log_ns, messages in groupby(session_messages(sessions, intake.extra_topics),
                                    key=lambda m: m[1]):
        _until(service, clock, ns_to_s(log_ns), out)
        for topic, _, raw in messages:
            out.answers += intake.take(topic, log_ns, raw, clock.t)
        _gather(service.answer_ready(clock.t), out)
        out.holds += intake.released()
    _until(service, clock, math.inf, out)
    records = sorted(((*intake.by_id[a.event.event_id], a.record) for a in out.answers),
                     key=lambda judged: judged[2].event_id)
    return Judged(records, out.holds)


def _gather(done: Pass, out: Pass) -> None:
    """A pass's answers and ended holds into the bag's."""
    out.answers += done.answers
    out.holds += done.holds


class _Intake:
    """A bag's messages into the service: each to the cameras whose topic it is on."""

    def __init__(self, service: GraspService, sessions: Sequence[Session],
                 releases: bool = False) -> None:
        self.service, self.sessions = service, sessions
        self.routes = _routes(sessions, releases)
        self.extra_topics = {t for t, routes in self.routes.items()
                             if any(role == "release" for _, role in routes)}
        self.events = [iter(s.events) for s in sessions]
        self.by_id: dict[int, tuple[int, BagEvent]] = {}  # event id -> (camera, event)
        self._releases: list[tuple[int, float]] = []  # (camera, stamp) not yet applied

    def take(self, topic: str, log_ns: int, raw: bytes, now: float) -> list[Answer]:
        """Take one message in at ``now``; the answers it got at once (rejected events)."""
        answers = []
        for camera, role in self.routes[topic]:
            if role == "image":
                stamp = raw_stamp(self.sessions[camera], raw)
                self.service.frame(camera, stamp, now, (camera, raw))
                continue
            if role == "hand":
                self._hand(camera, topic, log_ns, raw)
                continue
            if role == "release":
                self._release(camera, topic, log_ns, raw)
                continue
            ev = next(self.events[camera])
            intake = self.service.event(
                camera, TriggerInfo(ev.stamp, ev.trigger, ev.rejection, grasp_id=ev.grasp_id),
                log_ns)
            self.by_id[intake.event.event_id] = (camera, ev)
            answers += [intake.answer] if intake.answer is not None else []
        return answers


    def _release(self, camera: int, topic: str, log_ns: int, raw: bytes) -> None:
        """A release event (the trigger type's message, timed as a trigger; Bool false is
        not one), held until the pass of its log time has run (:meth:`released`)."""
        session = self.sessions[camera]
        msgtype = session.bag.topics[topic].msgtype
        want = TRIGGER_MSGTYPES[session.topics.trigger_type]
        if msgtype != want:
            raise BagError(f"bag {session.bag.path}: release topic {topic} carries {msgtype}, "
                           f"the trigger type's {want}")
        info = trigger_info(session.topics.trigger_type,
                            session.bag.deserialize(raw, msgtype), ns_to_s(log_ns))
        if info.rejection is None:
            self._releases.append((camera, info.stamp))

    def released(self) -> list[HoldReport]:
        """The holds the release events taken in since the last call ended."""
        reports = [self.service.release(camera, stamp) for camera, stamp in self._releases]
        self._releases = []
        return [r for r in reports if r is not None]

    def _hand(self, camera: int, topic: str, log_ns: int, raw: bytes) -> None:
        """A hand message to the service, as the node's subscriptions hand it over: a joint
        state, a command or the pads' readings."""
        reading = hand_reading(self.sessions[camera], topic, raw, log_ns)
        if reading.kind == "state":
            self.service.joints(camera, reading.sample)
        elif reading.kind == "command":
            self.service.joint_command(camera, reading.stamp, reading.values)
        else:
            self.service.tactile(camera, reading.stamp, reading.values)


def _routes(sessions: Sequence[Session], releases: bool = False
            ) -> dict[str, list[tuple[int, str]]]:
    """topic -> [(camera, role: "image", "trigger", "hand" or, with the hold watch,
    "release")]: where each message of the timeline goes (a bag without a camera's release
    topic: its holds end at the next grasp or their timeout)."""
    routes: dict[str, list[tuple[int, str]]] = {}
    for camera, session in enumerate(sessions):
        routes.setdefault(session.topics.image, []).append((camera, "image"))
        routes.setdefault(session.topics.trigger, []).append((camera, "trigger"))
        if releases and session.topics.release in session.bag.topics:
            routes.setdefault(session.topics.release, []).append((camera, "release"))
        for topic in session.topics.hand.topics if session.topics.hand else ():
            routes.setdefault(topic, []).append((camera, "hand"))
    return routes


def _decoder(sessions: Sequence[Session]) -> Callable[[tuple[int, bytes]], np.ndarray]:
    """The service's frame decoder: a frame's payload is (camera, raw message), decoded as
    its camera's image type."""
    decoders = [raw_decoder(s) for s in sessions]
    return lambda payload: decoders[payload[0]](payload[1])


def _until(service: GraspService, clock: BagClock, t: float, out: Pass) -> None:
    """The answers (and ended holds) the node gives at the deadlines that pass before
    ``t`` (the next message's log time; infinity at the end of the bag), into ``out``."""
    while (delay := service.next_deadline(clock.t)) is not None and clock.t + delay < t:
        clock.t += delay
        _gather(service.answer_ready(clock.t), out)
    clock.t = max(clock.t, t) if t != math.inf else clock.t


def evaluate_bag(path: str | Path, scorer: Scorer, policy: PolicyConfig,
                 topics: BagTopics | CameraTopicsMap | None = None,
                 labels_csv: Path | None = None, tolerance_s: float = 0.5,
                 settings: ServiceSettings = ServiceSettings()
                 ) -> tuple[list[EventResult], str | None]:
    """(results, label source) for one bag, judged by ``scorer`` (its source names it in the
    records). ``topics``: one camera's, or {camera name: topics} for several cameras judged
    by one service (each result names its camera)."""
    cameras = by_camera(topics)
    bag, sessions, source = labelled_sessions(Path(path), list(cameras.values()), labels_csv,
                                              tolerance_s)
    names = list(cameras)
    with bag:
        judged = judge_timeline(sessions, scorer, policy, settings)
    holds = {(h.camera, h.event.event_id): HoldEnd.of(h) for h in judged.holds}
    return [EventResult(bag.name, ns_to_s(ev.log_ns), ev.label, rec, names[camera], ev.scene,
                        ev.slip_s, holds.get((camera, rec.event_id)))
            for camera, ev, rec in judged.records], source


class LockedScorer:
    """A scorer shared by the local engine's threads: they overlap reading and decoding;
    the model runs one batch at a time."""

    def __init__(self, scorer: Scorer) -> None:
        self._scorer, self._lock = scorer, threading.Lock()
        self.source, self.device = scorer.source, scorer.device

    def prepare(self, images: list[np.ndarray]) -> Any:
        return self._scorer.prepare(images)

    def predict_prepared(self, batch: Any) -> np.ndarray:
        with self._lock:
            return self._scorer.predict_prepared(batch)


@dataclass
class BagEvalJob:
    """bag-eval's work for an engine (``engines.py``): the model is ``scorer`` when given
    (the local engine shares the caller's), else loaded from ``model_path`` where the job
    runs (once per Ray worker). ``scorer`` is not pickled."""

    policy: PolicyConfig
    topics: BagTopics | CameraTopicsMap
    labels_csv: Path | None = None
    tolerance_s: float = 0.5
    model_path: str = ""
    allow_custom_code: bool = False
    scorer: Scorer | None = None
    providers: tuple[str, ...] = ()  # ONNX Runtime's, for an .onnx model_path
    accept_card_mismatch: bool = False
    settings: ServiceSettings = field(default_factory=ServiceSettings)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "scorer": None}

    def open(self) -> Callable[[Path], tuple[tuple[list[EventResult], str | None], str]]:
        scorer = self.scorer
        if scorer is None:
            from grasp_success_ros.model.classifier import GraspClassifier

            scorer = GraspClassifier.from_path(
                self.model_path, allow_custom_code=self.allow_custom_code,
                providers=self.providers, accept_card_mismatch=self.accept_card_mismatch)[0]
        shared = LockedScorer(scorer)

        def one(path: Path):
            res, source = evaluate_bag(path, shared, self.policy, self.topics,
                                       self.labels_csv, self.tolerance_s, self.settings)
            return (res, source), f"{len(res)} events"

        return one


def _absolute(path: str | Path | None) -> Path | None:
    """A path a Ray worker elsewhere finds too (its working directory is another)."""
    return Path(path).resolve() if path else None


def evaluate_bags(paths: Sequence[str | Path], scorer: Scorer | None, policy: PolicyConfig,
                  topics: BagTopics | CameraTopicsMap | None = None,
                  labels_csv: Path | None = None, tolerance_s: float = 0.5, jobs: int = 2,
                  on_bag_done: Callable[[str, str], None] | None = None,
                  engine: str = "local", address: str | None = None, model_path: str = "",
                  allow_custom_code: bool = False, providers: tuple[str, ...] = (),
                  accept_card_mismatch: bool = False,
                  settings: ServiceSettings = ServiceSettings()
                  ) -> tuple[list[EventResult], dict[str, str], dict[str, str | None]]:
    """All bags, ``jobs`` at a time, on an engine (``engines.py``: local threads sharing
    ``scorer``, or Ray, which loads the model from ``model_path`` in its workers).
    ``on_bag_done(bag name, note)`` is called as each bag ends (e.g. for a progress bar);
    ``topics`` as :func:`evaluate_bag`'s. Returns (results in bag order, {bag: error},
    {bag: label source})."""
    if engine == "ray" and not model_path:
        raise ConfigError("the ray engine loads the model in its workers: give model_path")
    job = BagEvalJob(policy, topics or BagTopics(), _absolute(labels_csv), tolerance_s,
                     str(_absolute(model_path) or ""), allow_custom_code,
                     scorer if engine == "local" else None, tuple(providers),
                     accept_card_mismatch, settings)
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


def summarize(results: Sequence[EventResult], threshold: float,
              threshold_failure: float | None = None) -> dict:
    """Counts, the seed's line, the warnings that the model learned nothing (judged at the
    success ``threshold``, as ``evaluate`` judges them), confusion, precision/recall, coverage
    (the share with a verdict), the error rate among verdicts (labelled events only), and
    the counts per bag and, with several cameras, per camera. With a hand's records, each
    source side by side (``sources``) and, where the bag labels them, per scene kind
    (``scenes``): :func:`by_source`; with the hold watch, how the holds ended against the
    labelled slips (``holds``: ``bags/holds.py``)."""
    labelled = [r for r in results if r.truth is not None]
    truth = [bool(r.truth) for r in labelled]
    verdicts = [r.record.verdict for r in labelled]
    counted = Confusion.count(truth, verdicts)
    scores = {cls: counted.scores(cls) for cls in ("success", "failure")}
    codes: dict[str, int] = {}
    for r in results:
        if r.record.error_code:
            codes[r.record.error_code] = codes.get(r.record.error_code, 0) + 1
    cameras = {"cameras": _counts(results, "camera")} if several_cameras(results) else {}
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
        "bags": _counts(results, "bag"), **cameras,
        **by_source(results, threshold, threshold_failure),
        **({"holds": hold_summary([(r.slip_s, r.hold) for r in results])}
           if any(r.hold is not None for r in results) else {}),
    }


# The records' P of each source (fused: the verdict's own P).
SOURCE_P = {"vision": "p_vision", "joints": "p_joints", "fused": "p_success"}


def has_hand(results: Sequence[EventResult]) -> bool:
    """Whether any record was judged with a hand beside the camera."""
    return any("joints" in r.record.sources or r.record.missing for r in results)


def source_verdicts(r: EventResult, threshold: float,
                    threshold_failure: float | None) -> dict[str, bool | None]:
    """Each source's verdict on one event, as the node's rule would give it from that
    source's P alone (the fused one is the record's verdict)."""
    out = {}
    for name, attr in SOURCE_P.items():
        p = getattr(r.record, attr)
        out[name] = r.record.verdict if name == "fused" else \
            None if p is None else mean_rule([p], threshold, threshold_failure).verdict
    return out


def by_source(results: Sequence[EventResult], threshold: float,
              threshold_failure: float | None = None) -> dict:
    """Vision only, joints only and fused side by side over the labelled events (accuracy,
    coverage, error rate among verdicts, coverage at fixed precisions), and the accuracy of
    each per scene kind; empty when no record had a hand (the report is then as it always
    was)."""
    labelled = [r for r in results if r.truth is not None]
    if not has_hand(results) or not labelled:
        return {}
    verdicts = [source_verdicts(r, threshold, threshold_failure) for r in labelled]
    truth = [bool(r.truth) for r in labelled]
    sources = {name: source_scores(np.array(truth), source_p(labelled, name), threshold,
                                   threshold_failure) for name in SOURCE_P}
    scenes: dict[str, dict] = {}
    for r, v in zip(labelled, verdicts, strict=True):
        if r.scene:
            row = scenes.setdefault(r.scene, {"events": 0, **dict.fromkeys(SOURCE_P, 0)})
            row["events"] += 1
            for name in SOURCE_P:
                row[name] += v[name] is r.truth
    for row in scenes.values():
        for name in SOURCE_P:
            row[name] = _ratio(row[name], row["events"])
    return {"sources": sources, **({"scenes": dict(sorted(scenes.items()))} if scenes else {})}


def source_p(labelled: Sequence[EventResult], name: str) -> np.ndarray:
    """One source's P(success) on each labelled event (NaN: that source did not judge)."""
    return np.array([np.nan if (p := getattr(r.record, SOURCE_P[name])) is None else p
                     for r in labelled], np.float64)


def several_cameras(results: Sequence[EventResult]) -> bool:
    """Whether the results are of several cameras (then reports name each event's)."""
    return any(r.camera for r in results)


def _counts(results: Sequence[EventResult], key: str) -> dict[str, dict]:
    """Events, labelled, correct and accuracy per bag (``key`` "bag") or camera."""
    out: dict[str, dict] = {}
    for r in results:
        b = out.setdefault(getattr(r, key), {"events": 0, "labelled": 0, "correct": 0})
        b["events"] += 1
        b["labelled"] += r.truth is not None
        b["correct"] += bool(r.correct)
    for b in out.values():
        b["accuracy"] = _ratio(b["correct"], b["labelled"])
    return out
