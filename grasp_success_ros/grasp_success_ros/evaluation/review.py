"""The review loop's material: the judged images a person should look at (false successes,
false failures, and those left without a verdict), one contact sheet of them, and their
export in class-folder layout, so that corrected frames can train the next model beside the
old data (``train --extra-train``).

The export puts every frame in the folder of its *recorded* label, in a sub-folder named by
what went wrong::

    REVIEW_DIR/<success class>/false_failure/   labelled success, judged failure
    REVIEW_DIR/<success class>/uncertain/       labelled success, no verdict
    REVIEW_DIR/<failure class>/false_success/   labelled failure, judged success
    REVIEW_DIR/<failure class>/uncertain/       labelled failure, no verdict
    REVIEW_DIR/<either class>/correct/          judged right (only when asked for: see below)
    REVIEW_DIR/review.csv                       a row per frame: kind, label, verdict, P(success)
    REVIEW_DIR/contact_sheet.png                the frames to check, captioned

A person corrects a wrong label by moving the frame into the other class folder (any
sub-folder) and deletes a frame that shows neither; training reads class folders recursively,
so the sub-folders need no cleaning up.  The class names are the model card's, so the review
folder matches the folders the model was trained from.

Retrained on its mistakes alone, a model tends to learn that a new kind of scene belongs to
the class of its mistakes (README, "The review loop", measures it), so the correctly judged
frames can be exported too (``correct/``), to train the new kind in both classes.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from grasp_success_ros.core.errors import DatasetError, ImageConversionError
from grasp_success_ros.data.atomic import atomic_open, atomic_path
from grasp_success_ros.data.preprocessing import load_image_rgb

KINDS = ("false_success", "false_failure", "uncertain")  # what a person must check
CORRECT = "correct"  # exported on request, never shown on the contact sheet
_TITLES = {"false_success": "FALSE SUCCESS", "false_failure": "FALSE FAILURE",
           "uncertain": "NO VERDICT"}
# Border colours (RGB) by kind: red for the costly error, orange, grey.
_COLOURS = {"false_success": (220, 30, 30), "false_failure": (240, 150, 0),
            "uncertain": (140, 140, 140)}
THUMB_W, THUMB_H, CAPTION_H, HEADER_H = 160, 120, 64, 30
REVIEW_CSV = "review.csv"
CONTACT_SHEET = "contact_sheet.png"


def review_kind(truth: bool, verdict: bool | None, include_correct: bool = False) -> str | None:
    """What a person should check about one judged image; for a right verdict None, or
    ``correct`` when those are wanted too."""
    if verdict is None:
        return "uncertain"
    if bool(verdict) == bool(truth):
        return CORRECT if include_correct else None
    return "false_success" if verdict else "false_failure"


@dataclass(frozen=True)
class ReviewCase:
    """One image to review: a file (``path``) or a decoded RGB frame (``frame``, from a
    bag), its truth, the verdict and P(success), and the name it is exported under."""

    name: str
    source: str
    truth: bool
    verdict: bool | None
    p_success: float | None
    kind: str
    path: Path | None = None
    frame: np.ndarray | None = None

    def image(self) -> np.ndarray:
        """The image as RGB uint8 (raises ImageConversionError for an unreadable file)."""
        return self.frame if self.frame is not None else load_image_rgb(self.path)


def file_cases(paths: Sequence[str | Path], truth: Sequence[bool],
               verdicts: Sequence[bool | None], p_success: Sequence[float | None],
               include_correct: bool = False) -> list[ReviewCase]:
    """The review cases among labelled image files (``evaluate``'s), named by their file."""
    cases = []
    for path, t, v, p in zip(paths, truth, verdicts, p_success, strict=True):
        kind = review_kind(bool(t), None if v is None else bool(v), include_correct)
        if kind is not None:
            cases.append(ReviewCase(Path(path).name, str(path), bool(t),
                                    None if v is None else bool(v),
                                    None if p is None else float(p), kind, path=Path(path)))
    return cases


def counts(cases: Sequence[ReviewCase]) -> dict[str, int]:
    return {kind: sum(c.kind == kind for c in cases) for kind in (*KINDS, CORRECT)}


def _order(cases: Sequence[ReviewCase], threshold: float) -> list[ReviewCase]:
    """False successes first, then false failures, then no verdict; the most confident
    mistakes first (they are the likeliest wrong labels)."""
    def key(c: ReviewCase):
        margin = -abs(c.p_success - threshold) if c.p_success is not None else 0.0
        return (*KINDS, CORRECT).index(c.kind), margin, c.name
    return sorted(cases, key=key)


# --------------------------------------------------------------------------- contact sheet


def _thumbnail(case: ReviewCase) -> np.ndarray:
    """The image fitted into THUMB_W x THUMB_H (aspect kept, grey bars), or a grey tile
    saying it could not be read."""
    tile = np.full((THUMB_H, THUMB_W, 3), 64, np.uint8)
    try:
        img = case.image()
    except ImageConversionError:
        cv2.putText(tile, "unreadable", (8, THUMB_H // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
        return tile
    scale = min(THUMB_W / img.shape[1], THUMB_H / img.shape[0])
    w, h = max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale))
    small = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    y, x = (THUMB_H - h) // 2, (THUMB_W - w) // 2
    tile[y:y + h, x:x + w] = small
    return tile


def _caption(case: ReviewCase, classes: tuple[str, str]) -> list[str]:
    p = "n/a" if case.p_success is None else f"{case.p_success:.3f}"
    label = classes[0] if case.truth else classes[1]
    return [f"P(success) {p}", f"label {label}"[:26], _TITLES[case.kind], case.name[:26]]


def _cell(case: ReviewCase, classes: tuple[str, str]) -> np.ndarray:
    cell = np.full((THUMB_H + CAPTION_H + 4, THUMB_W + 4, 3), 255, np.uint8)
    cell[:THUMB_H + 4] = _COLOURS[case.kind]
    cell[2:THUMB_H + 2, 2:THUMB_W + 2] = _thumbnail(case)
    for i, line in enumerate(_caption(case, classes)):
        colour = _COLOURS[case.kind] if i == 2 else (0, 0, 0)
        cv2.putText(cell, line, (3, THUMB_H + 18 + 15 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                    colour, 1, cv2.LINE_AA)
    return cell


def to_check(cases: Sequence[ReviewCase]) -> list[ReviewCase]:
    """The cases a person must look at (no ``correct`` ones)."""
    return [case for case in cases if case.kind in KINDS]


def contact_sheet(cases: Sequence[ReviewCase], path: str | Path, threshold: float,
                  classes: tuple[str, str] = ("success", "failure"), columns: int = 6,
                  limit: int = 120) -> Path:
    """One PNG grid of the cases (at most ``limit``, most confident mistakes first), each
    captioned with P(success), its label, the kind of mistake and its name."""
    checked = to_check(cases)
    shown = _order(checked, threshold)[:limit]
    c = counts(checked)
    title = (f"false successes {c['false_success']}, false failures {c['false_failure']}, "
             f"without verdict {c['uncertain']} (threshold {threshold:.3g})")
    if len(shown) < len(checked):
        title += f"; the first {len(shown)} shown"
    cells = [_cell(case, classes) for case in shown] or [_empty_cell()]
    columns = max(1, min(columns, len(cells)))
    blank = np.full_like(cells[0], 255)
    rows = [np.hstack(cells[i:i + columns] + [blank] * (columns - len(cells[i:i + columns])))
            for i in range(0, len(cells), columns)]
    grid = np.vstack(rows)
    header = np.full((HEADER_H, grid.shape[1], 3), 255, np.uint8)
    cv2.putText(header, title, (4, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                cv2.LINE_AA)
    return _write_png(np.vstack([header, grid]), Path(path))


def _empty_cell() -> np.ndarray:
    cell = np.full((THUMB_H + CAPTION_H + 4, THUMB_W + 4, 3), 255, np.uint8)
    cv2.putText(cell, "nothing to review", (8, THUMB_H // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (0, 0, 0), 1, cv2.LINE_AA)
    return cell


def _write_png(rgb: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise DatasetError(f"cannot write {path}")
    return path


# --------------------------------------------------------------------------- export


def _unique(folder: Path, name: str, taken: set[Path]) -> Path:
    """``folder/name``, or ``stem_2.suffix`` ... when two sources share a name."""
    target, stem, suffix, n = folder / name, Path(name).stem, Path(name).suffix, 2
    while target in taken:
        target, n = folder / f"{stem}_{n}{suffix}", n + 1
    taken.add(target)
    return target


def check_review_dir(review_dir: str | Path) -> Path:
    """The review folder, refused when it already holds anything: it may hold a person's
    corrections, which a second export would mix with new frames."""
    root = Path(review_dir)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DatasetError(f"review folder {root} is not empty (it may hold a person's "
                           "corrections); choose a new one")
    return root


def export_review(cases: Sequence[ReviewCase], review_dir: str | Path, threshold: float,
                  classes: tuple[str, str] = ("success", "failure")) -> dict[str, int]:
    """Write the cases in class-folder layout (module docstring) with ``review.csv`` and the
    contact sheet; refuses a folder that already holds files (it may hold corrections)."""
    root = check_review_dir(review_dir)
    for cls in classes:
        (root / cls).mkdir(parents=True, exist_ok=True)
    taken: set[Path] = set()
    rows = []
    for case in _order(cases, threshold):
        folder = root / (classes[0] if case.truth else classes[1]) / case.kind
        folder.mkdir(exist_ok=True)
        target = _unique(folder, case.name, taken)
        if case.frame is not None:
            _write_png(case.frame, target)
        else:
            with atomic_path(target) as tmp:
                shutil.copyfile(case.path, tmp)
        rows.append({"file": str(target.relative_to(root)), "kind": case.kind,
                     "label": classes[0] if case.truth else classes[1],
                     "verdict": "" if case.verdict is None else
                     classes[0] if case.verdict else classes[1],
                     "p_success": "" if case.p_success is None else f"{case.p_success:.6f}",
                     "source": case.source})
    with atomic_open(root / REVIEW_CSV, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file", "kind", "label", "verdict",
                                                "p_success", "source"])
        writer.writeheader()
        writer.writerows(rows)
    contact_sheet(cases, root / CONTACT_SHEET, threshold, classes)
    return counts(cases)


def describe(found: dict[str, int], written: Sequence[Path]) -> str:
    """One line for the console: what there is to review and where it went."""
    parts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in found.items() if n)
    where = ", ".join(str(p) for p in written)
    return f"review: {parts or 'nothing to review (every verdict was right)'}" + \
        (f"; {where}" if where else "")
