"""Time conversions, one home: integer nanoseconds, (sec, nanosec) stamps and float seconds.

The live node (rclpy messages, its clock's ``nanoseconds``) and the bag tools (rosbags
messages, a bag's log times) convert with these functions only, so both sides turn the same
instant into the same float. The stamp functions take any object with ``sec`` and
``nanosec`` (``builtin_interfaces/Time`` from rclpy or rosbags alike); building the rclpy
message is ``ros/verdicts.time_msg``'s job, the only room allowed ``builtin_interfaces``.

Seconds are the correctly rounded float of the exact nanoseconds (integer true division):
``ns * 1e-9`` is a different float for about half of today's epoch times, and a stamp's
seconds must not depend on which path computed them.
"""

from __future__ import annotations

import math
from typing import Any

NS_PER_S = 1_000_000_000


def to_ns(sec: int, nanosec: int) -> int:
    """A stamp's (sec, nanosec) -> integer nanoseconds."""
    return int(sec) * NS_PER_S + int(nanosec)


def split_ns(ns: int) -> tuple[int, int]:
    """Integer nanoseconds -> (sec, nanosec) with 0 <= nanosec < 1e9, as
    builtin_interfaces/Time holds them (floor division: -1 ns is (-1, 999999999))."""
    return divmod(int(ns), NS_PER_S)


def ns_to_s(ns: int) -> float:
    """Integer nanoseconds -> seconds, the nearest float to the exact value."""
    return ns / NS_PER_S


def s_to_ns(seconds: float) -> int:
    """Seconds -> the nearest integer nanosecond of the float's exact value (``round(s *
    1e9)`` is off by up to 128 ns at today's epoch: the product rounds before ``round``)."""
    whole = math.floor(seconds)  # ValueError/OverflowError for nan/inf: no such instant
    return whole * NS_PER_S + round((seconds - whole) * NS_PER_S)  # the difference is exact


def stamp_ns(stamp: Any) -> int:
    """A ``builtin_interfaces/Time``-like object (``.sec``, ``.nanosec``) -> nanoseconds."""
    return to_ns(stamp.sec, stamp.nanosec)


def stamp_s(stamp: Any) -> float:
    """A ``builtin_interfaces/Time``-like object -> seconds."""
    return ns_to_s(stamp_ns(stamp))
