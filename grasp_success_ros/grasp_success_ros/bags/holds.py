"""The watch over the hold, offline: how each hold of a recording ended, against the slips
the recording labels (a synthetic session's ``label_slip`` onsets).

What the node's ``grasp_success/hold`` promises is checked here on recordings: a carry slip
is reported LOST, soon after its onset (the latency of the LOST stamp, the first evidence,
after the labelled onset), and a hold with no slip is never reported LOST (a false alarm
would make a robot drop a good grasp's task). No ROS import.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from grasp_success_ros.core.hold import HOLD_ENDS, HoldReport


@dataclass(frozen=True)
class HoldEnd:
    """How the hold after one event's SUCCESS ended (``core/hold.HoldReport`` without its
    history): the status, its stamp (a loss's first evidence), when it began, who saw it."""

    status: str
    stamp: float
    started: float
    sources: tuple[str, ...] = ()
    reason: str = ""

    @classmethod
    def of(cls, report: HoldReport) -> HoldEnd:
        return cls(report.status, report.stamp, report.started, tuple(report.sources),
                   report.reason)


def _ms(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50, p95 and max of latencies, in milliseconds (None: no latency)."""
    if not seconds:
        return {"p50": None, "p95": None, "max": None}
    ms = np.asarray(seconds, np.float64) * 1e3
    return {"p50": round(float(np.percentile(ms, 50)), 1),
            "p95": round(float(np.percentile(ms, 95)), 1), "max": round(float(ms.max()), 1)}


def hold_summary(events: Sequence[tuple[float | None, HoldEnd | None]]) -> dict:
    """The holds of (labelled slip onset or None, the hold after the event or None) per
    event: how they ended, the labelled slips reported LOST (share of all labelled slips;
    a slip whose grasp got no SUCCESS had no hold to watch) and the latency of each LOST
    after its onset, and LOST for holds with no labelled slip (false alarms)."""
    holds = [(slip, hold) for slip, hold in events if hold is not None]
    slips = [(slip, hold) for slip, hold in events if slip is not None]
    lost = [(slip, hold) for slip, hold in slips if hold is not None and hold.status == "lost"]
    normal = [hold for slip, hold in holds if slip is None]
    latency = [hold.stamp - slip for slip, hold in lost]
    return {
        "holds": len(holds),
        "ended": {status: sum(h.status == status for _, h in holds) for status in HOLD_ENDS},
        "slips": len(slips), "slips_with_hold": sum(h is not None for _, h in slips),
        "slips_lost": len(lost),
        "slips_lost_share": round(len(lost) / len(slips), 4) if slips else None,
        "lost_before_onset": sum(x < 0 for x in latency),
        "latency_ms": _ms(latency),
        "holds_without_slip": len(normal),
        "false_lost": sum(h.status == "lost" for h in normal),
    }


def format_holds(holds: dict) -> list[str]:
    """The holds section of bag-eval's report (text and report.html)."""
    ended = ", ".join(f"{status} {n}" for status, n in holds["ended"].items() if n)
    lines = [f"holds (the watch after each SUCCESS): {holds['holds']}"
             + (f" ({ended})" if ended else "")]
    if holds["slips"]:
        share = holds["slips_lost_share"]
        lat = holds["latency_ms"]
        lines.append(f"  labelled carry slips reported LOST: {holds['slips_lost']} of "
                     f"{holds['slips']} ({share:.0%}; {holds['slips_with_hold']} had a hold)")
        if lat["p50"] is not None:
            lines.append(f"  LOST after the slip's onset: p50 {lat['p50']:.1f} ms, p95 "
                         f"{lat['p95']:.1f} ms, max {lat['max']:.1f} ms"
                         + (f" ({holds['lost_before_onset']} before it)"
                            if holds["lost_before_onset"] else ""))
    lines.append(f"  LOST for holds with no labelled slip: {holds['false_lost']} of "
                 f"{holds['holds_without_slip']}")
    return lines
