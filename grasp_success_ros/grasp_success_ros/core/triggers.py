"""Message -> time on the frames' clock: one rule for the live node and the bag tools.

The node calls these with rclpy messages and its clock's time at receipt; the bag tools call
them with rosbags-deserialised messages and the bag's receive (log) time of that message.
Both kinds of message have the same fields, so both sides compute the same stamps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grasp_success_ros.core.stamps import ns_to_s, stamp_ns, to_ns

# trigger_type -> the ROS message type the node subscribes with
TRIGGER_MSGTYPES = {
    "empty": "std_msgs/msg/Empty",
    "bool": "std_msgs/msg/Bool",
    "header": "std_msgs/msg/Header",
    "string": "std_msgs/msg/String",
}
NOT_COMPLETED = ("not_completed", "Bool false on grasp_completed is not a completed grasp")


@dataclass(frozen=True)
class TriggerInfo:
    """What one trigger message means: its event time, its label for the record, and a
    rejection ``(code, reason)`` when it is not a completed grasp (Bool false)."""

    stamp: float
    trigger: str
    rejection: tuple[str, str] | None = None
    stamp_ns: int | None = None  # the message's own stamp, exact; None: the receipt time
    grasp_id: str = ""  # which grasp the event is about, echoed in its record ("" : none)


def trigger_info(trigger_type: str, msg: Any, receipt_s: float) -> TriggerInfo:
    """Empty/String/Bool: the event time is the receipt time; Header: its stamp (receipt
    time when zero); Bool false is rejected as ``not_completed``. The grasp id, by
    convention: a Header's ``frame_id``, a String's ``data`` (the two types that carry text)."""
    if trigger_type == "header":
        label = f"header:{msg.frame_id}" if msg.frame_id else "header"
        if ns := stamp_ns(msg.stamp):
            return TriggerInfo(ns_to_s(ns), label, stamp_ns=ns, grasp_id=msg.frame_id)
        return TriggerInfo(receipt_s, label, grasp_id=msg.frame_id)
    if trigger_type == "string":
        return TriggerInfo(receipt_s, f"string:{msg.data[:200]}", grasp_id=msg.data)
    if trigger_type == "bool" and not msg.data:
        return TriggerInfo(receipt_s, trigger_type, NOT_COMPLETED)
    return TriggerInfo(receipt_s, trigger_type)


def frame_time(sec: int, nanosec: int, receipt_s: float) -> float:
    """A camera frame's time from its header stamp (sec, nanosec), or the receipt time when
    the stamp is zero (a camera that does not stamp its frames)."""
    return ns_to_s(to_ns(sec, nanosec)) or receipt_s


def frame_stamp(msg: Any, receipt_s: float) -> float:
    """:func:`frame_time` of an Image/CompressedImage message."""
    stamp = msg.header.stamp
    return frame_time(stamp.sec, stamp.nanosec, receipt_s)
