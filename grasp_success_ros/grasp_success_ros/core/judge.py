"""From a grasp event and buffered frames to exactly one record: the shared decision path.

The node and the offline tools both choose frames with ``policy.select_frames`` and call
:func:`judge_selected`; it never raises for bad frames or a failing model, it returns a
failure record that says why, with one of :data:`ERROR_CODES` (``uncertain`` when the
probabilities lie between the policy's two thresholds: that record keeps them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from grasp_success_ros.core.clocks import skew_reason
from grasp_success_ros.core.errors import GraspSuccessError
from grasp_success_ros.core.policy import PolicyConfig, Selection, decide

# Every error_code a failure record can carry (README "What to do with a failure record"
# documents each); failure_record refuses any other.
ERROR_CODES = {
    "no_fresh_frame": "no frame stamped within [settle_s, deadline_s] after the event",
    "no_frame": "latest: no frame at or before the event",
    "stale_frame": "latest: the newest frame is older than max_frame_age_s",
    "bad_image": "the chosen frame could not be decoded",
    "inference_error": "the model raised or returned a non-finite value",
    "not_completed": "trigger_type bool got false: not a completed grasp",
    "deactivated": "the node was deactivated (lifecycle) before the event's frames arrived",
    "uncertain": "P(success) lies between threshold_failure and threshold: no verdict",
    "clock_skew": "a chosen frame is stamped after it was received by more than "
                  "clock_tolerance_s: the camera's clock runs ahead",
    "no_clock": "use_sim_time is true and no /clock has come: the node's clock stands at 0",
    "canceled": "the VerifyGrasp goal was cancelled before its event was judged",
    "no_evidence": "a hand profile is configured and neither the camera nor the joints "
                   "could judge (each source's reason in the record's missing)",
}


@dataclass(frozen=True)
class Frame:
    """A camera frame as received: its time (stamp or arrival, as ``frame_stamp`` says), the
    undecoded message and its arrival on the receiver's clock (the node's, or the bag's log
    time; None: unknown), which no real frame's stamp can be later than."""

    stamp: float
    msg: Any
    arrival: float | None = None


@dataclass(frozen=True)
class GraspEvent:
    """A grasp-completed event: its time on the frames' clock and where it came from."""

    event_id: int
    stamp: float
    received_steady: float = 0.0  # its arrival on the receiver's steady clock
    trigger: str = ""
    # The source's own stamp in integer nanoseconds where it has one (typed outputs copy it
    # exactly; ``stamp`` in float seconds is ~0.2 us coarse at today's epoch).
    stamp_ns: int | None = None
    # Policy fields this event overrides (a VerifyGrasp goal's), applied to the node's policy.
    overrides: dict[str, Any] = field(default_factory=dict)
    grasp_id: str = ""  # which grasp it is about (a goal's grasp_id, a trigger's text)


@dataclass
class GraspRecord:
    """The one answer to one event (published as JSON on ``grasp_success/result``)."""

    event_id: int
    event_stamp: float
    verdict: bool | None
    confidence: float | None
    p_success: float | None
    frame_stamps: list[float]
    frame_p_success: list[float]
    latency_ms: float | None
    error: str | None
    error_code: str | None
    threshold: float
    policy: str
    trigger: str = ""
    model: str = ""  # the source path of the model that judged (or would have judged)
    threshold_failure: float | None = None  # the band's lower end; None: one threshold
    grasp_id: str = ""  # the event's grasp id ("" : none given)
    # Each witness's P(success) where it judged (None: it did not), the sources that judged,
    # why each other one did not ("camera: ...", "joints: ..."), and the fusion that combined
    # them into p_success ("" : vision only, no hand profile; "default"; a fitted one's name).
    p_vision: float | None = None
    p_joints: float | None = None
    sources: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    fusion: str = ""
    # The hand's features over its window (joints.FEATURE_NAMES; None: no hand or no joint
    # state in it): what a joint model is trained on (train-hand), not published.
    joint_features: dict[str, float | None] | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is not None

    @property
    def judged(self) -> bool:
        """The model answered for the chosen frames: a verdict, or ``uncertain``."""
        return self.p_success is not None

    def to_json(self) -> str:
        return json.dumps(asdict(self), allow_nan=False)


def failure_record(event: GraspEvent, cfg: PolicyConfig, code: str, reason: str,
                   frame_stamps: Sequence[float] = (), model: str = "") -> GraspRecord:
    """A record that says why no verdict was possible: never a guess."""
    if code not in ERROR_CODES:
        raise ValueError(f"undocumented error code {code!r}; add it to ERROR_CODES")
    return GraspRecord(
        event_id=event.event_id, event_stamp=event.stamp, verdict=None, confidence=None,
        p_success=None, frame_stamps=list(frame_stamps), frame_p_success=[],
        latency_ms=None, error=f"{code}: {reason}", error_code=code,
        threshold=cfg.threshold, threshold_failure=cfg.threshold_failure,
        policy=describe_policy(cfg), trigger=event.trigger, model=model,
        grasp_id=event.grasp_id,
    )


def classify(predict: Callable[[list[np.ndarray]], np.ndarray],
             images: list[np.ndarray]) -> np.ndarray:
    """P(success) for ``images`` in one call of ``predict`` (none for no images); raises
    ValueError when the model returns the wrong count or a non-finite value."""
    if not images:
        return np.empty(0)
    p = np.asarray(predict(images), dtype=np.float64).reshape(-1)
    if p.size != len(images) or not np.all(np.isfinite(p)):
        raise ValueError(f"model returned {p.tolist()} for {len(images)} frames")
    return p


def clock_skew(frames: Sequence[Frame], cfg: PolicyConfig) -> str | None:
    """Why ``frames`` cannot judge an event: one is stamped after it arrived by more than
    ``cfg.clock_tolerance_s`` (clocks.py); None when their times are possible."""
    ahead = max((f.stamp - f.arrival for f in frames if f.arrival is not None), default=0.0)
    return skew_reason(ahead, cfg.clock_tolerance_s)


def describe_policy(cfg: PolicyConfig) -> str:
    if cfg.selection == "n_after":
        return f"n_after({cfg.n_frames},{cfg.combine})"
    return cfg.selection


def judge_selected(event: GraspEvent, frames: Sequence[Frame], selection: Selection,
                   predict: Callable[[list[np.ndarray]], np.ndarray],
                   decode: Callable[[Any], np.ndarray], cfg: PolicyConfig,
                   model: str = "", known: Mapping[float, float] | None = None) -> GraspRecord:
    """Decode the chosen frames, run the model once on all of them, decide. ``model`` names
    the model behind ``predict`` in the record. ``known``: P(success) by frame stamp of
    chosen frames classified already (streaming ``n_after``); only the others are decoded and
    run, and the record is the one the batched way gives."""
    if not selection.ready:
        return failure_record(event, cfg, selection.code or "no_frame", selection.reason or "",
                              model=model)
    chosen = [frames[i] for i in selection.indices]
    stamps = [f.stamp for f in chosen]
    skew = clock_skew(chosen, cfg)
    if skew is not None:  # judged, it would be a verdict on a frame of another moment
        return failure_record(event, cfg, "clock_skew", skew, stamps, model)
    known = known or {}
    todo = [f for f in chosen if f.stamp not in known]
    try:
        images = [decode(f.msg) for f in todo]
    except GraspSuccessError as exc:
        return failure_record(event, cfg, "bad_image", str(exc), stamps, model)
    except Exception as exc:  # a decoder bug must cost one event, never the node
        return failure_record(event, cfg, "bad_image", f"{type(exc).__name__}: {exc}", stamps,
                              model)
    try:
        fresh = classify(predict, images)
    except Exception as exc:  # any model failure becomes a record, never a dead node
        return failure_record(event, cfg, "inference_error", f"{type(exc).__name__}: {exc}",
                              stamps, model)
    ran = iter(fresh)  # in the order of ``todo``: frames sharing a stamp keep their own
    p = np.array([known[s] if s in known else next(ran) for s in stamps], np.float64)
    decision = decide(p, cfg)
    unsure = decision.verdict is None  # inside the band: the probabilities, but no verdict
    return GraspRecord(
        event_id=event.event_id, event_stamp=event.stamp, verdict=decision.verdict,
        confidence=None if unsure else round(decision.confidence, 6),
        p_success=round(decision.p_success, 6),
        frame_stamps=stamps, frame_p_success=[round(float(x), 6) for x in p],
        latency_ms=None, error=f"uncertain: {decision.why}" if unsure else None,
        error_code="uncertain" if unsure else None, threshold=cfg.threshold,
        threshold_failure=cfg.threshold_failure,
        policy=describe_policy(cfg), trigger=event.trigger, model=model,
        grasp_id=event.grasp_id,
    )


@dataclass(frozen=True)
class Judgement:
    """One ready event to judge: its frames, the policy's selection and its own policy;
    ``known``: P(success) by frame stamp already computed (streaming ``n_after``)."""

    event: GraspEvent
    frames: Sequence[Frame]
    selection: Selection
    cfg: PolicyConfig
    known: Mapping[float, float] = field(default_factory=dict)


def judge_batch(jobs: Sequence[Judgement], predict: Callable[[list[np.ndarray]], np.ndarray],
                decode: Callable[[Any], np.ndarray], model: str = "") -> list[GraspRecord]:
    """Events that are ready together (of one camera or of several) judged with ONE call of
    ``predict`` on all their chosen frames, so a second camera costs no second forward pass
    per coinciding event. Each record is the one :func:`judge_selected` gives alone: the
    scores are split back by job and passed as ``known``; a job whose frames cannot be
    decoded, or a batch the model fails on, is judged alone and records why."""
    knowns = [dict(job.known) for job in jobs]
    images: list[np.ndarray] = []
    owners: list[tuple[int, float]] = []
    for i, job in enumerate(jobs):
        if not job.selection.ready:
            continue
        chosen = [job.frames[k] for k in job.selection.indices]
        if clock_skew(chosen, job.cfg) is not None:  # judge_selected records clock_skew
            continue
        todo = [f for f in chosen if f.stamp not in knowns[i]]
        try:
            decoded = [decode(f.msg) for f in todo]
        except Exception:  # judge_selected meets it again and records bad_image
            continue
        images += decoded
        owners += [(i, f.stamp) for f in todo]
    try:
        p = classify(predict, images)
    except Exception:  # each job then runs alone and records the model's failure
        p = np.empty(0)
        owners = []
    for (i, stamp), value in zip(owners, p, strict=True):
        knowns[i][stamp] = float(value)
    return [judge_selected(job.event, job.frames, job.selection, predict, decode, job.cfg,
                           model, known=known) for job, known in zip(jobs, knowns, strict=True)]
