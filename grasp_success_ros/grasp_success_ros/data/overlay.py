"""A judged frame with its verdict drawn on it: what the node saw, for rviz2 / Foxglove.

ROS-free (an RGB array in, an RGB array out) so the node's debug image and any offline
viewer draw the same picture.
"""

from __future__ import annotations

import cv2
import numpy as np

GREEN, RED, AMBER, GREY = (40, 180, 60), (220, 50, 40), (240, 170, 20), (90, 90, 90)
BAR_HEIGHT = 14


def _label(verdict: bool | None, p_success: float | None) -> tuple[str, tuple[int, int, int]]:
    if verdict is None:
        text = "NOT SURE" if p_success is not None else "NO VERDICT"
        return text, AMBER
    return ("SUCCESS", GREEN) if verdict else ("FAILURE", RED)


def _bar(width: int, p_success: float | None, threshold: float,
         threshold_failure: float | None) -> np.ndarray:
    """P(success) on a 0..1 bar: red below the failure threshold, amber in the band (no
    verdict), green from the success threshold; a white tick at P."""
    bar = np.empty((BAR_HEIGHT, width, 3), np.uint8)
    low = threshold if threshold_failure is None else threshold_failure
    x_low, x_high = int(round(low * width)), int(round(threshold * width))
    bar[:, :x_low], bar[:, x_low:x_high], bar[:, x_high:] = RED, AMBER, GREEN
    if p_success is not None:
        x = min(width - 2, max(0, int(round(p_success * width)) - 1))
        bar[:, x:x + 3] = 255
    return bar


def annotate(rgb: np.ndarray, verdict: bool | None, p_success: float | None,
             threshold: float, threshold_failure: float | None = None) -> np.ndarray:
    """A copy of ``rgb`` (HxWx3 uint8) with the verdict and P(success) written on top and
    the decision band drawn as a bar along the bottom."""
    out = np.ascontiguousarray(rgb, dtype=np.uint8).copy()
    height, width = out.shape[:2]
    text, colour = _label(verdict, p_success)
    if p_success is not None:
        text += f"  P(success) {p_success:.3f}"
    scale = max(0.4, width / 900.0)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(out, (0, 0), (min(width, tw + 12), th + base + 10), GREY, cv2.FILLED)
    cv2.putText(out, text, (6, th + 5), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1,
                cv2.LINE_AA)
    if height > 2 * BAR_HEIGHT:
        out[height - BAR_HEIGHT:] = _bar(width, p_success, threshold, threshold_failure)
    return out
