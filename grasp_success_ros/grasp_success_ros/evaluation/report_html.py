"""``report.html``: what ``evaluate`` and ``bag-eval`` found, on one page people open.

The console report (the seed's line, the confusion matrix, ...), the plots and the contact
sheet already written beside it, and a table of every image or event with a thumbnail.
Self-contained as a folder: the page, its thumbnails in ``report_files/`` and the plots,
all by relative path, so the folder can be copied or zipped as it is. A small script marks
on the page (and on ``<body>`` as ``data-images`` / ``data-broken-images``) whether every
image loaded, so a reader, or a test in a headless browser, sees a broken report at once.
"""

from __future__ import annotations

import html
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from grasp_success_ros.data.atomic import atomic_path, write_text

THUMB_PX = 96
FILES = "report_files"

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
pre { background: #f4f4f4; padding: 0.8em; overflow-x: auto; }
figure { display: inline-block; margin: 0 1em 1em 0; vertical-align: top; }
figure img { max-width: 560px; border: 1px solid #ccc; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
tr.wrong { background: #fde8e6; } tr.none { background: #fff4d6; }
#image-check { font-weight: bold; }
"""

CHECK_IMAGES = """
window.addEventListener("load", () => {
  const images = [...document.images];
  const broken = images.filter((i) => !(i.complete && i.naturalWidth > 0));
  document.body.dataset.images = images.length;
  document.body.dataset.brokenImages = broken.length;
  document.getElementById("image-check").textContent = broken.length
    ? `${broken.length} of ${images.length} images did not load`
    : `all ${images.length} images loaded`;
});
"""


@dataclass(frozen=True)
class ReportRow:
    """One image or event: what it was, what was said, and (if it can be shown) its frame."""

    name: str
    truth: bool | None
    verdict: bool | None
    p_success: float | None
    detail: str = ""
    image: np.ndarray | None = None  # RGB


def _word(value: bool | None, classes: tuple[str, str], none: str) -> str:
    return none if value is None else classes[0] if value else classes[1]


def _thumbnail(rgb: np.ndarray, path: Path) -> str:
    scale = THUMB_PX / max(rgb.shape[:2])
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    small = cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA)
    with atomic_path(path) as tmp:
        cv2.imwrite(str(tmp), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    return f"{FILES}/{path.name}"


def _row(i: int, row: ReportRow, files: Path, classes: tuple[str, str]) -> str:
    cls = "none" if row.verdict is None else \
        "wrong" if row.truth is not None and row.verdict != row.truth else ""
    thumb = "" if row.image is None else \
        f'<img src="{_thumbnail(row.image, files / f"{i:05d}.jpg")}" alt="">'
    p = "" if row.p_success is None else f"{row.p_success:.4f}"
    cells = [thumb, html.escape(row.name), _word(row.truth, classes, "unlabelled"),
             _word(row.verdict, classes, "no verdict"), p, html.escape(row.detail)]
    return f'<tr class="{cls}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _figure(path: Path, out_dir: Path) -> str:
    rel = html.escape(path.relative_to(out_dir).as_posix())
    return f'<figure><img src="{rel}" alt="{rel}"><figcaption>{rel}</figcaption></figure>'


def write_report(out_dir: str | Path, title: str, text: str, figures: Sequence[Path],
                 rows: Sequence[ReportRow], classes: tuple[str, str] = ("success", "failure"),
                 unit: str = "image") -> Path:
    """Write ``out_dir/report.html`` (and its thumbnails); ``figures`` must lie in
    ``out_dir``; ``unit`` names what a row is. Returns the page's path."""
    out_dir = Path(out_dir)
    files = out_dir / FILES
    shutil.rmtree(files, ignore_errors=True)  # never an earlier run's thumbnails
    files.mkdir(parents=True)
    body = [f"<h1>{html.escape(title)}</h1>", '<p id="image-check">checking images...</p>',
            f"<pre>{html.escape(text)}</pre>", "<h2>Plots</h2>",
            *(_figure(Path(f).resolve(), out_dir.resolve()) for f in figures),
            f"<h2>Every {html.escape(unit)} ({len(rows)})</h2>",
            "<table><tr><th></th><th>name</th><th>truth</th><th>verdict</th>"
            "<th>P(success)</th><th>detail</th></tr>",
            *(_row(i, row, files, classes) for i, row in enumerate(rows)), "</table>"]
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{STYLE}</style>"
            f"<script>{CHECK_IMAGES}</script></head>\n<body>\n" + "\n".join(body)
            + "\n</body></html>\n")
    path = out_dir / "report.html"
    return write_text(path, page)
