"""Ground truth for a bag's events: the label topic, else a CSV (given with ``--labels`` or
beside the bag) with a label column and an event index (1-based, the record's ``event_id``)
or an event time (seconds)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from grasp_success_ros.bags.reader import Bag, BagEvent, Session, open_bag, read_session
from grasp_success_ros.bags.topics import BagTopics
from grasp_success_ros.core.errors import BagError

LABEL_TRUE = {"1", "true", "t", "yes", "y", "success", "succ", "successful", "held"}
LABEL_FALSE = {"0", "false", "f", "no", "n", "failure", "fail", "unsuccessful", "zon_desk",
               "dropped", "missed"}
INDEX_COLUMNS = ("event", "event_id", "index")
TIME_COLUMNS = ("time", "stamp", "event_stamp", "t")
LABEL_COLUMNS = ("label", "success", "truth", "ground_truth")
MULTI_CAMERA_CSV = ("a labels CSV numbers one camera's events: with several cameras the ground "
                    "truth is each camera's label topic")


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
    """Events with the CSV's labels: by event id, or the nearest row within the tolerance."""
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
                     tolerance_s: float = 0.5) -> tuple[Bag, Session, str | None]:
    """Open a bag and read pass one; the ground truth from ``labels_csv``, else the label
    topic, else a CSV beside the bag. Returns (bag, session, source of the labels)."""
    bag, sessions, source = labelled_sessions(path, [topics], labels_csv, tolerance_s)
    return bag, sessions[0], source


def labelled_sessions(path: Path, cameras: Sequence[BagTopics], labels_csv: Path | None,
                      tolerance_s: float = 0.5) -> tuple[Bag, list[Session], str | None]:
    """Open a bag and read pass one of each camera's topics. One camera: as
    :func:`labelled_session`. Several: each camera's ground truth is its own label topic (a
    CSV numbers one camera's events, so it is refused). Returns (bag, sessions, source)."""
    if len(cameras) > 1 and labels_csv is not None:
        raise BagError(MULTI_CAMERA_CSV)
    bag = open_bag(path)
    try:
        sessions = [read_session(bag, topics) for topics in cameras]
        if len(sessions) > 1:
            sources = [s.topics.label for s in sessions if s.has_label_topic]
            return bag, sessions, ", ".join(sources) or None
        return bag, sessions, _label(sessions[0], Path(path), labels_csv, tolerance_s)
    except BaseException:
        bag.close()
        raise


def _label(session: Session, path: Path, labels_csv: Path | None,
           tolerance_s: float) -> str | None:
    """Attach one camera's ground truth (``labels_csv``, else the label topic, else a CSV
    beside the bag); the source, None without any."""
    csv_path = labels_csv
    if csv_path is None and not session.has_label_topic:
        csv_path = labels_csv_beside(path)
    if csv_path is not None:
        session.events = attach_csv_labels(session.events, Path(csv_path), tolerance_s)
        return str(csv_path)
    return session.topics.label if session.has_label_topic else None
