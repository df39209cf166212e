"""GraspRecord <-> ``grasp_success_msgs/GraspVerdict``: the typed form of the one answer.

The node publishes records as GraspVerdict; the demo, the benchmark, the soak script and the
tests read them back into the record's fields, so the JSON of the offline tools
(``bag-eval``, ``predict --json``) and the live topic name everything alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from builtin_interfaces.msg import Time
from grasp_success_msgs.msg import GraspVerdict
from std_msgs.msg import Header

from grasp_success_ros.core.grasp_service import Answer
from grasp_success_ros.core.judge import GraspRecord
from grasp_success_ros.core.stamps import s_to_ns, split_ns, stamp_s

NAN = float("nan")


def time_msg_ns(ns: int) -> Time:
    """builtin_interfaces/Time of integer nanoseconds, exact."""
    sec, nanosec = split_ns(ns)
    return Time(sec=sec, nanosec=nanosec)


def time_msg(seconds: float) -> Time:
    """A stamp from seconds (nearest nanosecond); exact stamps are copied, not converted."""
    return time_msg_ns(s_to_ns(seconds))


def _status(verdict: bool | None) -> int:
    if verdict is None:
        return GraspVerdict.UNKNOWN
    return GraspVerdict.SUCCESS if verdict else GraspVerdict.FAILURE


def _or_nan(value: float | None) -> float:
    return NAN if value is None else float(value)


def verdict_message(record: GraspRecord, header: Header,
                    frame_stamps: Sequence[Time] | None = None) -> GraspVerdict:
    """The record as a message. ``header`` carries the event's stamp and the judged camera
    frame's frame_id; ``frame_stamps`` the chosen frames' own stamps (else converted from
    the record's seconds)."""
    if frame_stamps is None:
        frame_stamps = [time_msg(s) for s in record.frame_stamps]
    return GraspVerdict(
        header=header, event_id=record.event_id, status=_status(record.verdict),
        confidence=_or_nan(record.confidence), p_success=_or_nan(record.p_success),
        frame_stamps=list(frame_stamps), frame_p_success=list(record.frame_p_success),
        latency_ms=_or_nan(record.latency_ms), error_code=record.error_code or "",
        error=record.error or "", threshold=record.threshold,
        threshold_failure=_or_nan(record.threshold_failure), policy=record.policy,
        model=record.model, trigger=record.trigger, grasp_id=record.grasp_id,
        p_vision=_or_nan(record.p_vision), p_joints=_or_nan(record.p_joints),
        sources=list(record.sources), missing=list(record.missing), fusion=record.fusion)


def answer_message(answer: Answer, frame_id: str) -> GraspVerdict:
    """The service's answer as published: stamped from the input (the event's own stamp,
    the judged frames' own stamps and frame_id; ``frame_id``, the camera's newest, when no
    frame judged), never now()."""
    record, event = answer.record, answer.event
    headers = {f.stamp: f.msg.header for f in answer.frames}
    judged = [headers.get(s) for s in record.frame_stamps]
    stamps = [h.stamp if h is not None and (h.stamp.sec or h.stamp.nanosec) else time_msg(s)
              for h, s in zip(judged, record.frame_stamps, strict=True)]
    if judged and judged[-1] is not None:
        frame_id = judged[-1].frame_id
    stamp = time_msg_ns(event.stamp_ns) if event.stamp_ns is not None else time_msg(event.stamp)
    return verdict_message(record, Header(stamp=stamp, frame_id=frame_id), stamps)


def _or_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def record_fields(msg: GraspVerdict) -> dict[str, Any]:
    """The message with the record's field names and meanings (None where it has no value):
    what ``grasp_success/result`` carried as JSON before it was typed."""
    verdict = {GraspVerdict.SUCCESS: True, GraspVerdict.FAILURE: False}.get(msg.status)
    return {
        "event_id": msg.event_id, "event_stamp": stamp_s(msg.header.stamp),
        "verdict": verdict, "confidence": _or_none(msg.confidence),
        "p_success": _or_none(msg.p_success),
        "frame_stamps": [stamp_s(s) for s in msg.frame_stamps],
        "frame_p_success": [float(p) for p in msg.frame_p_success],
        "latency_ms": _or_none(msg.latency_ms), "error": msg.error or None,
        "error_code": msg.error_code or None, "threshold": float(msg.threshold),
        "policy": msg.policy, "trigger": msg.trigger, "model": msg.model,
        "threshold_failure": _or_none(msg.threshold_failure), "frame_id": msg.header.frame_id,
        "grasp_id": msg.grasp_id, "p_vision": _or_none(msg.p_vision),
        "p_joints": _or_none(msg.p_joints), "sources": list(msg.sources),
        "missing": list(msg.missing), "fusion": msg.fusion,
    }


def error_code_constants() -> dict[str, str]:
    """GraspVerdict's ERROR_* constants (name -> value), to check them against ERROR_CODES."""
    return {name: getattr(GraspVerdict, name) for name in dir(GraspVerdict)
            if name.startswith("ERROR_") and isinstance(getattr(GraspVerdict, name), str)}

