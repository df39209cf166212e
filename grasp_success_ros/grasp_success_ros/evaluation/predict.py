"""Classifying image files, folders and grasp videos offline (the seeds' test tools).

Videos are judged with the video follow-up's rule: success when more than half of the
frames in the last fifth of the video say success (window and fraction are options).
OpenCV decodes video frames as BGR; they are converted to RGB before the classifier sees
them (the seed's video tool fed BGR frames to an RGB model).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from grasp_success_ros.core.errors import ConfigError, DatasetError, ImageConversionError
from grasp_success_ros.core.policy import (
    Decision,
    is_success,
    mean_rule,
    thresholds_for,
    verdicts,
    vote,
)
from grasp_success_ros.data.folders import (
    IMAGE_SUFFIXES,
    decode_parallel,
    image_files,
    read_or_reason,
)

CHUNK = 32


@dataclass
class ImagePrediction:
    """One file's verdict; ``error`` says why there is none (``uncertain: ...`` when its
    P(success) lies between the two thresholds: judged, but no verdict)."""

    file: str
    verdict: bool | None
    p_success: float | None
    confidence: float | None
    error: str | None = None


def _files(path: Path) -> list[Path]:
    """The image files at PATH: a folder's, searched recursively, or the one file given
    (whatever its suffix: ``predict_images`` gives it a row saying why it is not judged)."""
    if path.is_dir():
        files = image_files(path)
        if not files:
            raise DatasetError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {path}")
        return files
    if path.is_file():
        return [path]
    raise DatasetError(f"not found: {path}")


def _not_an_image(file: Path) -> str | None:
    """Why a file is not read as an image: one suffix rule, a folder's and a lone file's."""
    if file.suffix.lower() in IMAGE_SUFFIXES:
        return None
    return (f"not an image file ({file.suffix or 'no suffix'}; images are "
            f"{', '.join(IMAGE_SUFFIXES)})")


def _read(chunk: list[Path], size: int, pre) -> list[np.ndarray | str]:
    """Each file's image or why it has none (folders hold image suffixes only)."""
    if len(chunk) > 1:
        return decode_parallel(chunk, size, pre)
    return [_not_an_image(chunk[0]) or read_or_reason(chunk[0], size, pre)]


def predict_images(path: str | Path, classifier, threshold: float | None = None,
                   threshold_failure: float | None = None) -> list[ImagePrediction]:
    """Every image file at PATH (a file, or a folder searched recursively); a file that
    cannot be judged gets a row with the reason and the others are judged all the same.
    The thresholds are the card's unless given (``policy.thresholds_for``)."""
    card = classifier.card
    threshold, threshold_failure = thresholds_for(threshold, threshold_failure,
                                                  card.threshold, card.threshold_failure)
    files = _files(Path(path))
    out: list[ImagePrediction] = []
    for start in range(0, len(files), CHUNK):
        chunk = files[start:start + CHUNK]
        images = _read(chunk, card.input_size, card.preprocessing)
        good = [i for i, img in enumerate(images) if not isinstance(img, str)]
        probs = dict(zip(good, classifier.predict([images[i] for i in good]), strict=True)) \
            if good else {}
        for i, file in enumerate(chunk):
            if i not in probs:
                out.append(ImagePrediction(str(file), None, None, None, images[i]))
                continue
            p = float(probs[i])
            d = mean_rule([p], threshold, threshold_failure)
            out.append(ImagePrediction(str(file), d.verdict, p, d.confidence,
                                       None if d.verdict is not None else f"uncertain: {d.why}"))
    return out


def judged_exit_code(rows: Sequence[ImagePrediction]) -> int:
    """predict's exit status: 0 every file judged, 1 some could not be, 2 none was (an
    uncertain file was judged: it has its P(success))."""
    judged = sum(r.p_success is not None for r in rows)
    return 0 if judged == len(rows) else 1 if judged else 2


def _verdict_word(v: bool | None, judged: bool = False) -> str:
    """SUCCESS / FAILURE; for no verdict UNKNOWN when it was judged (uncertain), else -."""
    if v is None:
        return "UNKNOWN" if judged else "-"
    return "SUCCESS" if v else "FAILURE"


def format_images(rows: Sequence[ImagePrediction], fmt: str = "table") -> str:
    """As an aligned table, CSV or JSON."""
    if fmt == "json":
        return json.dumps([asdict(r) for r in rows], indent=1)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["file", "verdict", "p_success", "confidence", "error"])
        for r in rows:
            writer.writerow([r.file, "" if r.verdict is None else ("success" if r.verdict
                                                                    else "failure"),
                             "" if r.p_success is None else f"{r.p_success:.6f}",
                             "" if r.confidence is None else f"{r.confidence:.6f}",
                             r.error or ""])
        return buf.getvalue().rstrip("\n")
    width = max([len("file")] + [len(r.file) for r in rows])
    lines = [f"{'file':<{width}}  {'verdict':<7}  {'P(success)':>10}  {'confidence':>10}"]
    for r in rows:
        if r.p_success is None:
            lines.append(f"{r.file:<{width}}  {'-':<7}  {'-':>10}  {'-':>10}  {r.error}")
        elif r.verdict is None:
            lines.append(f"{r.file:<{width}}  {'UNKNOWN':<7}  {r.p_success:>10.4f}  "
                         f"{'-':>10}  {r.error}")
        else:
            lines.append(f"{r.file:<{width}}  {_verdict_word(r.verdict):<7}  "
                         f"{r.p_success:>10.4f}  {r.confidence:>10.4f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- video


def video_decision(p_success: Sequence[float], threshold: float, window: float = 0.2,
                   fraction: float = 0.5, threshold_failure: float | None = None
                   ) -> tuple[Decision, int]:
    """The video follow-up's rule; returns the decision and the first frame of the window.

    The frames in the last ``window`` of the video vote with ``policy.vote``: success when
    more than ``fraction`` of them reach the threshold (with ``fraction`` 0.5 this is
    ``policy.decide(..., combine='vote')`` on the window).  Confidence is the share of the
    window's frames that voted for the verdict; with ``threshold_failure``, frames in the
    band are unsure and may leave the video without a verdict (``policy.vote``).
    """
    if not 0.0 < window <= 1.0:
        raise ConfigError(f"window must be in (0, 1], not {window}")
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"fraction must be in [0, 1), not {fraction}")
    p = np.asarray(p_success, np.float64)
    if p.size == 0:
        raise ConfigError("the video has no frames")
    start = min(int(math.floor(p.size * (1.0 - window))), p.size - 1)
    return vote(p[start:], threshold, fraction, threshold_failure), start


@dataclass
class VideoPrediction:
    file: str
    fps: float
    p_success: np.ndarray
    threshold: float
    window: float
    fraction: float
    decision: Decision
    window_start: int
    threshold_failure: float | None = None

    def to_dict(self) -> dict:
        return {"file": self.file, "verdict": self.decision.verdict,
                "confidence": self.decision.confidence,
                "p_success": self.decision.p_success, "frames": int(self.p_success.size),
                "fps": self.fps, "window": self.window, "fraction": self.fraction,
                "window_start": self.window_start, "threshold": self.threshold,
                "threshold_failure": self.threshold_failure,
                "error": f"uncertain: {self.decision.why}" if self.decision.why else None,
                "frame_p_success": [round(float(v), 6) for v in self.p_success]}

    def summary(self) -> str:
        d = self.decision
        n = self.p_success.size - self.window_start
        yes = int(np.count_nonzero(is_success(self.p_success[self.window_start:],
                                              self.threshold)))
        said = f"confidence {d.confidence:.3f}" if d.verdict is not None else \
            f"uncertain: {d.why}"
        return (f"{self.file}: {_verdict_word(d.verdict, judged=True)} ({said}): "
                f"{yes} of the last {n} frames say success (needs more than "
                f"{self.fraction:.0%}); {self.p_success.size} frames at {self.fps:.3g} fps")

    def frames_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["frame", "time_s", "p_success", "verdict", "in_window"])
        said = verdicts(self.p_success, self.threshold, self.threshold_failure)
        for i, (p, v) in enumerate(zip(self.p_success, said, strict=True)):
            writer.writerow([i, f"{i / self.fps:.4f}", f"{p:.6f}",
                             "uncertain" if v is None else "success" if v else "failure",
                             int(i >= self.window_start)])
        return buf.getvalue().rstrip("\n")


def read_video_rgb(path: str | Path, chunk: int = CHUNK):
    """The video's fps, then chunks of RGB uint8 frames (OpenCV's BGR converted)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"video not found: {path}")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ImageConversionError(f"cannot open video {path}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0

    def frames():
        try:
            batch = []
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                batch.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                if len(batch) == chunk:
                    yield batch
                    batch = []
            if batch:
                yield batch
        finally:
            cap.release()

    return float(fps), frames()


def predict_video(path: str | Path, classifier, threshold: float | None = None,
                  window: float = 0.2, fraction: float = 0.5,
                  threshold_failure: float | None = None) -> VideoPrediction:
    """Classify every frame, then decide with the video rule (the card's thresholds
    unless given)."""
    card = classifier.card
    threshold, threshold_failure = thresholds_for(threshold, threshold_failure,
                                                  card.threshold, card.threshold_failure)
    fps, chunks = read_video_rgb(path)
    probs = [classifier.predict(batch) for batch in chunks]
    if not probs:
        raise ImageConversionError(f"no frames could be read from {path}")
    p = np.concatenate(probs)
    decision, start = video_decision(p, threshold, window, fraction, threshold_failure)
    return VideoPrediction(str(path), fps, p, threshold, window, fraction, decision, start,
                           threshold_failure)


def video_plot(pred: VideoPrediction, path: str | Path) -> Path:
    from grasp_success_ros.evaluation.plots import frames_plot

    verdict = _verdict_word(pred.decision.verdict, judged=True)
    return frames_plot(pred.p_success, pred.fps, pred.threshold, path, pred.window_start,
                       title=f"{Path(pred.file).name}: {verdict}")
