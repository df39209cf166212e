"""Offline evaluation of recorded grasp sessions: every trigger in a bag goes through the
node's own decision path (``judge.judge_offline`` with the node's policy and event times), so
a bag's verdicts are the ones the node would have published; ground truth comes from a label
topic in the bag or a CSV beside it.  No ROS import.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from grasp_success_ros.bags.reader import (
    BagEvent,
    BagTopics,
    Session,
    frame_decoder,
    load_frames,
    open_bag,
    read_session,
)
from grasp_success_ros.core.errors import BagError
from grasp_success_ros.core.judge import (
    Frame,
    GraspEvent,
    GraspRecord,
    failure_record,
    judge_offline,
)
from grasp_success_ros.core.policy import PolicyConfig, select_frames
from grasp_success_ros.evaluation.metrics import Confusion, seed_line

LABEL_TRUE = {"1", "true", "t", "yes", "y", "success", "succ", "successful", "held"}
LABEL_FALSE = {"0", "false", "f", "no", "n", "failure", "fail", "unsuccessful", "zon_desk",
               "dropped", "missed"}
INDEX_COLUMNS = ("event", "event_id", "index")
TIME_COLUMNS = ("time", "stamp", "event_stamp", "t")
LABEL_COLUMNS = ("label", "success", "truth", "ground_truth")


# ------------------------------------------------------------------------- ground truth


def labels_csv_beside(bag_path: Path) -> Path | None:
    """``BAG/labels.csv``, ``BAG.labels.csv`` or ``BAG.csv`` (for a bag folder or file)."""
    stem = bag_path.with_suffix("") if bag_path.is_file() else bag_path
    for cand in (stem / "labels.csv" if bag_path.is_dir() else None,
                 stem.parent / f"{stem.name}.labels.csv", stem.parent / f"{stem.name}.csv"):
        if cand is not None and cand.is_file():
            return cand
    return None


def _parse_label(value: str, where: str) -> bool:
    v = value.strip().lower()
    if v in LABEL_TRUE:
        return True
    if v in LABEL_FALSE:
        return False
    raise BagError(f"{where}: cannot read label {value!r} (use success/failure, true/false "
                   f"or 1/0)")


def read_labels_csv(path: Path) -> tuple[str, list[tuple[float, bool]]]:
    """('index' | 'time', [(key, label)]) from a CSV with a header row: a label column plus
    an event index (1-based, the record's event_id) or an event time (seconds)."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BagError(f"cannot read labels {path}: {exc}") from None
    if not rows:
        raise BagError(f"labels {path} has no rows (expected a header row, e.g. 'event,label')")
    cols = {c.strip().lower(): c for c in rows[0] if c}
    label_col = next((cols[c] for c in LABEL_COLUMNS if c in cols), None)
    index_col = next((cols[c] for c in INDEX_COLUMNS if c in cols), None)
    time_col = next((cols[c] for c in TIME_COLUMNS if c in cols), None)
    if label_col is None or (index_col is None and time_col is None):
        raise BagError(f"labels {path}: need a 'label' column and an 'event' (1-based index) "
                       f"or 'time' (seconds) column; found {list(rows[0])}")
    key_col, kind = (index_col, "index") if index_col else (time_col, "time")
    out = []
    for n, row in enumerate(rows, 2):
        where = f"{path}:{n}"
        try:
            key = float(row[key_col])
        except (TypeError, ValueError):
            raise BagError(f"{where}: {key_col} {row[key_col]!r} is not a number") from None
        out.append((key, _parse_label(row[label_col] or "", where)))
    return kind, out


def attach_csv_labels(events: list[BagEvent], path: Path, tolerance_s: float = 0.5
                      ) -> list[BagEvent]:
    kind, rows = read_labels_csv(path)
    if kind == "index":
        by_id = {int(k): v for k, v in rows}
        return [replace(ev, label=by_id.get(ev.event_id)) for ev in events]
    out = []
    for ev in events:
        near = [(abs(t - ev.stamp), v) for t, v in rows if abs(t - ev.stamp) <= tolerance_s]
        out.append(replace(ev, label=min(near)[1] if near else None))
    return out


def labelled_session(path: Path, topics: BagTopics, labels_csv: Path | None,
                     tolerance_s: float = 0.5):
    """Open a bag and read pass one; the ground truth from ``labels_csv``, else the label
    topic, else a CSV beside the bag. Returns (bag, session, source of the labels)."""
    bag = open_bag(path)
    try:
        session = read_session(bag, topics)
        csv_path = labels_csv
        if csv_path is None and not session.has_label_topic:
            csv_path = labels_csv_beside(Path(path))
        if csv_path is not None:
            session.events = attach_csv_labels(session.events, Path(csv_path), tolerance_s)
            source = str(csv_path)
        elif session.has_label_topic:
            source = topics.label
        else:
            source = None
        return bag, session, source
    except BaseException:
        bag.close()
        raise


# ------------------------------------------------------------------------- evaluation


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

    def row(self) -> dict:
        r = self.record
        return {"bag": self.bag, "event_id": r.event_id, "event_stamp": f"{r.event_stamp:.9f}",
                "log_time": f"{self.log_time:.9f}", "trigger": r.trigger,
                "truth": "" if self.truth is None else int(self.truth),
                "verdict": "" if r.verdict is None else int(r.verdict),
                "confidence": "" if r.confidence is None else r.confidence,
                "p_success": "" if r.p_success is None else r.p_success,
                "correct": "" if self.correct is None else int(self.correct),
                "frame_stamps": " ".join(f"{s:.9f}" for s in r.frame_stamps),
                "error_code": r.error_code or "", "error": r.error or ""}


def session_frames(session: Session) -> list[Frame]:
    return [Frame(f.stamp, f.index) for f in session.frames]


def judge_session(session: Session, predict: Callable, policy: PolicyConfig
                  ) -> list[tuple[BagEvent, GraspRecord]]:
    """Every event of a session through the node's decision path."""
    frames = session_frames(session)
    stamps = [f.stamp for f in frames]
    needed: set[int] = set()
    for ev in session.events:
        if ev.rejection is None:
            sel = select_frames(stamps, ev.stamp, policy, now=None)
            needed.update(frames[i].msg for i in sel.indices)
    decode = frame_decoder(session, load_frames(session, needed))
    out = []
    for ev in session.events:
        event = GraspEvent(ev.event_id, ev.stamp, time.monotonic(), ev.trigger)
        if ev.rejection is not None:
            record = failure_record(event, policy, *ev.rejection)
        else:
            record = judge_offline(event, frames, predict, decode, policy)
        out.append((ev, record))
    return out


def evaluate_bag(path: str | Path, predict: Callable, policy: PolicyConfig,
                 topics: BagTopics | None = None, labels_csv: Path | None = None,
                 tolerance_s: float = 0.5) -> tuple[list[EventResult], str | None]:
    """(results, label source) for one bag."""
    path, topics = Path(path), topics or BagTopics()
    bag, session, source = labelled_session(path, topics, labels_csv, tolerance_s)
    with bag:
        judged = judge_session(session, predict, policy)
    return [EventResult(bag.name, ev.log_ns * 1e-9, ev.label, rec) for ev, rec in judged], source


class Progress:
    """A one-line progress bar on stderr (a plain line per step when not a terminal)."""

    def __init__(self, total: int, label: str, stream=None, enabled: bool = True) -> None:
        self.total, self.label, self.done = total, label, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._lock = threading.Lock()

    def step(self, note: str = "") -> None:
        with self._lock:
            self.done += 1
            if not self.enabled:
                return
            width = 24
            filled = int(width * self.done / max(self.total, 1))
            bar = "#" * filled + "-" * (width - filled)
            line = f"{self.label} [{bar}] {self.done}/{self.total} {note}"
            if self.tty:
                end = "\n" if self.done == self.total else ""
                self.stream.write("\r" + line[:120].ljust(120) + end)
            else:
                self.stream.write(line + "\n")
            self.stream.flush()


def evaluate_bags(paths: Sequence[str | Path], predict: Callable, policy: PolicyConfig,
                  topics: BagTopics | None = None, labels_csv: Path | None = None,
                  tolerance_s: float = 0.5, jobs: int = 2, progress: bool = True
                  ) -> tuple[list[EventResult], dict[str, str], dict[str, str | None]]:
    """All bags, ``jobs`` at a time (reading and decoding overlap; the model runs one batch
    at a time). Returns (results in bag order, {bag: error}, {bag: label source})."""
    topics = topics or BagTopics()
    lock = threading.Lock()

    def locked_predict(images):
        with lock:
            return predict(images)

    bar = Progress(len(paths), "bag-eval", enabled=progress)
    results: dict[int, list[EventResult]] = {}
    errors: dict[str, str] = {}
    sources: dict[str, str | None] = {}

    def run(i: int, path: Path):
        try:
            res, source = evaluate_bag(path, locked_predict, policy, topics, labels_csv,
                                       tolerance_s)
            results[i], sources[str(path)] = res, source
            bar.step(f"{Path(path).name}: {len(res)} events")
        except BagError as exc:
            errors[str(path)] = str(exc)
            bar.step(f"{Path(path).name}: error")

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(paths)))) as pool:
        futures = [pool.submit(run, i, Path(p)) for i, p in enumerate(paths)]
        for fut in as_completed(futures):
            fut.result()
    ordered = [r for i in sorted(results) for r in results[i]]
    return ordered, errors, sources


# ------------------------------------------------------------------------- report


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _rounded(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)


def summarize(results: Sequence[EventResult]) -> dict:
    """Counts, the seed's line, confusion, precision/recall (labelled events only)."""
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
        "seed_line": seed_line(truth, verdicts, noun="grasps") if labelled else None,
        "confusion": counted.table,
        **{cls: {"precision": _rounded(s["precision"]), "recall": _rounded(s["recall"])}
           for cls, s in scores.items()},
        "bags": per_bag,
    }


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def format_event(r: EventResult) -> str:
    rec = r.record
    shown = {True: "SUCCESS", False: "FAILURE", None: "none"}[rec.verdict]
    truth = {True: "SUCCESS", False: "FAILURE", None: "?"}[r.truth]
    detail = rec.error if rec.verdict is None else f"confidence {rec.confidence:.3f}"
    mark = {True: "ok", False: "WRONG", None: ""}[r.correct]
    return (f"{r.bag} event {rec.event_id:3d} at {rec.event_stamp:.3f}: truth {truth:7s} "
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
    c = summary["confusion"]
    lines += ["confusion (rows: truth, columns: verdict):",
              f"{'':16s}{'SUCCESS':>9s}{'FAILURE':>9s}{'none':>7s}"]
    for t in ("success", "failure"):
        lines.append(f"  truth {t.upper():9s}{c[t]['success']:9d}{c[t]['failure']:9d}"
                     f"{c[t]['none']:7d}")
    for cls in ("success", "failure"):
        lines.append(f"{cls:8s} precision {_fmt(summary[cls]['precision'])}  "
                     f"recall {_fmt(summary[cls]['recall'])}")
    if len(summary["bags"]) > 1:
        for name, b in summary["bags"].items():
            lines.append(f"  {name}: {b['correct']}/{b['labelled']} correct "
                         f"(accuracy {_fmt(b['accuracy'])}), {b['events']} events")
    return "\n".join(lines)


def to_json(summary: dict, results: Sequence[EventResult], errors: dict[str, str]) -> str:
    events = [{"bag": r.bag, "log_time": r.log_time, "truth": r.truth, "correct": r.correct,
               **asdict(r.record)} for r in results]
    return json.dumps({"summary": summary, "errors": errors, "events": events},
                      allow_nan=False, default=lambda o: None)


CSV_FIELDS = ("bag", "event_id", "event_stamp", "log_time", "trigger", "truth", "verdict",
              "confidence", "p_success", "correct", "frame_stamps", "error_code", "error")


def write_csv(path: Path, results: Sequence[EventResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in results:
            w.writerow(r.row())


def write_plots(out_dir: Path, summary: dict, results: Sequence[EventResult],
                threshold: float) -> list[Path]:
    """P(success) of every event coloured by truth, and the confusion matrix (matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # optional: the CSV and JSON carry the same numbers
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    fig, ax = plt.subplots(figsize=(8, 3.5))
    xs = np.arange(1, len(results) + 1)
    p = [math.nan if r.record.p_success is None else r.record.p_success for r in results]
    colors = ["tab:blue" if r.truth else "tab:red" if r.truth is False else "tab:gray"
              for r in results]
    ax.scatter(xs, p, c=colors, s=18)
    wrong = [(x, y) for x, y, r in zip(xs, p, results, strict=True) if r.correct is False]
    if wrong:
        ax.scatter(*zip(*wrong, strict=True), facecolors="none", edgecolors="k", s=60,
                   label="wrong")
        ax.legend(loc="lower right")
    ax.axhline(threshold, color="k", lw=0.8, ls="--")
    ax.set_xlabel("event (blue: truth success, red: truth failure)")
    ax.set_ylabel("P(success)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(summary["seed_line"] or f"{len(results)} events")
    fig.tight_layout()
    written.append(out_dir / "p_success.png")
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)
    if summary["labelled"]:
        c = summary["confusion"]
        m = np.array([[c[t][v] for v in ("success", "failure", "none")]
                      for t in ("success", "failure")])
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.imshow(m, cmap="Blues")
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, str(v), ha="center", va="center")
        ax.set_xticks(range(3), ["SUCCESS", "FAILURE", "none"])
        ax.set_yticks(range(2), ["SUCCESS", "FAILURE"])
        ax.set_xlabel("verdict")
        ax.set_ylabel("truth")
        fig.tight_layout()
        written.append(out_dir / "confusion.png")
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)
    return written
