"""What ``bag-eval`` shows and writes: one line per event and the summary (text), one JSON
object, ``events.csv`` (every event) and the plots (drawn by ``evaluation/plots.py``)."""

from __future__ import annotations

import csv
import importlib.util
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from grasp_success_ros.bags.evaluate import SOURCE_P, EventResult, several_cameras
from grasp_success_ros.bags.holds import format_holds
from grasp_success_ros.data.atomic import atomic_open
from grasp_success_ros.evaluation.metrics import PRECISION_TARGETS, source_risk_coverage
from grasp_success_ros.evaluation.witnesses import format_sources


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def format_event(r: EventResult) -> str:
    rec = r.record
    shown = {True: "SUCCESS", False: "FAILURE", None: "none"}[rec.verdict]
    truth = {True: "SUCCESS", False: "FAILURE", None: "?"}[r.truth]
    detail = rec.error if rec.verdict is None else f"confidence {rec.confidence:.3f}"
    mark = {True: "ok", False: "WRONG", None: ""}[r.correct]
    where = f"{r.bag} {r.camera}" if r.camera else r.bag
    return (f"{where} event {rec.event_id:3d} at {rec.event_stamp:.3f}: truth {truth:7s} "
            f"verdict {shown:7s} {detail}  {mark}").rstrip()


def format_report(summary: dict, results: Sequence[EventResult], per_event: bool = True) -> str:
    lines = [format_event(r) for r in results] if per_event else []
    lines.append(f"{summary['events']} events in {len(summary['bags'])} bag(s), "
                 f"{summary['labelled']} with ground truth, {summary['verdicts']} verdicts")
    if summary["no_verdict"]:
        lines.append("no verdict: " + ", ".join(f"{k} {v}" for k, v in
                                               sorted(summary["no_verdict"].items())))
    if summary["seed_line"] is None:
        lines.append("no ground truth (no label topic, no labels CSV): verdicts only")
        return "\n".join(lines)
    lines.append(summary["seed_line"])
    lines += [f"warning: {w}" for w in summary["warnings"]]  # as evaluate's report
    c = summary["confusion"]
    lines += ["confusion (rows: truth, columns: verdict):",
              f"{'':16s}{'SUCCESS':>9s}{'FAILURE':>9s}{'none':>7s}"]
    for t in ("success", "failure"):
        lines.append(f"  truth {t.upper():9s}{c[t]['success']:9d}{c[t]['failure']:9d}"
                     f"{c[t]['none']:7d}")
    for cls in ("success", "failure"):
        lines.append(f"{cls:8s} precision {_fmt(summary[cls]['precision'])}  "
                     f"recall {_fmt(summary[cls]['recall'])}")
    lines.append(f"coverage {_fmt(summary['coverage'])} (labelled events with a verdict), "
                 f"error rate {_fmt(summary['error_rate'])} among those verdicts")
    lines += format_sources(summary)
    lines += format_holds(summary["holds"]) if "holds" in summary else []
    for group in ("bags", "cameras"):  # a line each where there are several
        if len(summary.get(group, ())) > 1:
            lines += [f"  {name}: {b['correct']}/{b['labelled']} correct "
                      f"(accuracy {_fmt(b['accuracy'])}), {b['events']} events"
                      for name, b in summary[group].items()]
    return "\n".join(lines)


def to_json(summary: dict, results: Sequence[EventResult], errors: dict[str, str]) -> str:
    cameras = several_cameras(results)
    events = [{"bag": r.bag, **({"camera": r.camera} if cameras else {}),
               **({"scene": r.scene} if r.scene else {}),
               **({"slip_s": r.slip_s} if r.slip_s is not None else {}),
               **({"hold": asdict(r.hold)} if r.hold is not None else {}),
               "log_time": r.log_time, "truth": r.truth, "correct": r.correct,
               **asdict(r.record)} for r in results]
    return json.dumps({"summary": summary, "errors": errors, "events": events},
                      allow_nan=False, default=lambda o: None)


CSV_FIELDS = ("bag", "event_id", "event_stamp", "log_time", "trigger", "grasp_id", "truth",
              "verdict", "confidence", "p_success", "correct", "frame_stamps", "error_code",
              "error")


def _csv_row(e: EventResult) -> dict:
    r = e.record
    return {"bag": e.bag, "camera": e.camera, "event_id": r.event_id,
            "event_stamp": f"{r.event_stamp:.9f}",
            "log_time": f"{e.log_time:.9f}", "trigger": r.trigger, "grasp_id": r.grasp_id,
            "truth": "" if e.truth is None else int(e.truth),
            "verdict": "" if r.verdict is None else int(r.verdict),
            "confidence": "" if r.confidence is None else r.confidence,
            "p_success": "" if r.p_success is None else r.p_success,
            "correct": "" if e.correct is None else int(e.correct),
            "frame_stamps": " ".join(f"{s:.9f}" for s in r.frame_stamps),
            "error_code": r.error_code or "", "error": r.error or ""}


def write_csv(path: Path, results: Sequence[EventResult]) -> None:
    """One row per event; a ``camera`` column after ``bag`` where there are several."""
    fields = ("bag", "camera", *CSV_FIELDS[1:]) if several_cameras(results) else CSV_FIELDS
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in results:
            w.writerow(_csv_row(r))


def write_plots(out_dir: Path, summary: dict, results: Sequence[EventResult],
                threshold: float) -> list[Path]:
    """``p_success.png`` (every event by its truth) and, with ground truth, ``confusion.png``;
    none without matplotlib (optional: the CSV and JSON carry the same numbers)."""
    if importlib.util.find_spec("matplotlib") is None:
        return []
    from grasp_success_ros.evaluation.plots import confusion_plot, events_plot

    written = [events_plot([r.record.p_success for r in results], [r.truth for r in results],
                           [r.correct is False for r in results], threshold,
                           summary["seed_line"] or f"{len(results)} events",
                           out_dir / "p_success.png")]
    if summary["labelled"]:
        c = summary["confusion"]
        m = np.array([[c[t][v] for v in ("success", "failure", "none")]
                      for t in ("success", "failure")])
        written.append(confusion_plot(m, out_dir / "confusion.png"))
    if summary.get("sources"):
        written.append(source_risk_coverage_plot(results, threshold, out_dir))
    return written


def source_risk_coverage_plot(results: Sequence[EventResult], threshold: float,
                              out_dir: Path) -> Path:
    """``risk_coverage_sources.png``: each source's risk-coverage curve over the labelled
    events (``metrics.source_risk_coverage``), the precision targets marked, so the page
    shows what each witness alone and the fusion can decide at a given error rate."""
    from grasp_success_ros.evaluation.plots import risk_coverage_sources_plot

    labelled = [r for r in results if r.truth is not None]
    truth = [bool(r.truth) for r in labelled]
    curves = {name: source_risk_coverage(truth, [getattr(r.record, attr) for r in labelled],
                                         threshold) for name, attr in SOURCE_P.items()}
    return risk_coverage_sources_plot(curves, out_dir / "risk_coverage_sources.png",
                                      [1.0 - q for q in PRECISION_TARGETS])
