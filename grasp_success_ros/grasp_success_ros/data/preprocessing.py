"""The one preprocessing path shared by training, the node and offline tools."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from grasp_success_ros.core.errors import ImageConversionError, ModelCardError

_INTERPOLATION = {
    "area": cv2.INTER_AREA,
    "linear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST,
    "cubic": cv2.INTER_CUBIC,
}
INTERPOLATIONS = tuple(_INTERPOLATION)
# The largest frame or image file anything here decodes (a 50000x50000 header is refused).
MAX_PIXELS = 50_000_000


@dataclass(frozen=True)
class Preprocessing:
    """How an RGB uint8 frame becomes a model input: resize, order, x * scale + offset."""

    color_order: str = "RGB"
    scale: float = 1.0 / 255.0
    offset: float = 0.0
    interpolation: str = "area"

    def validate(self) -> None:
        if self.color_order not in ("RGB", "BGR"):
            raise ModelCardError(f"color_order must be RGB or BGR, not {self.color_order!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ModelCardError(
                f"interpolation must be one of {INTERPOLATIONS}, not {self.interpolation!r}"
            )


def check_rgb_frame(frame: np.ndarray) -> np.ndarray:
    """Refuse anything but an (H, W, 3) uint8 array, with the reason."""
    if not isinstance(frame, np.ndarray):
        raise ImageConversionError(f"expected a numpy array, got {type(frame).__name__}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ImageConversionError(
            f"expected an RGB uint8 frame of shape (H, W, 3), got {frame.dtype} {frame.shape}"
        )
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ImageConversionError(f"empty frame of shape {frame.shape}")
    return frame


def resize_frame(frame: np.ndarray, size: int, pre: Preprocessing) -> np.ndarray:
    """Resize an RGB uint8 frame to the model's square input, as the card says."""
    frame = check_rgb_frame(frame)
    if frame.shape[:2] != (size, size):
        frame = cv2.resize(frame, (size, size), interpolation=_INTERPOLATION[pre.interpolation])
    return frame


def to_model_input(resized: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """Resized RGB uint8 batch (N, S, S, 3) -> float32 model input: channel order, scale."""
    batch = resized[..., ::-1] if pre.color_order == "BGR" else resized
    batch = batch.astype(np.float32) * np.float32(pre.scale)
    if pre.offset:
        batch += np.float32(pre.offset)
    return batch


def prepare_batch(frames: Sequence[np.ndarray], size: int, pre: Preprocessing) -> np.ndarray:
    """RGB uint8 frames of any size -> float32 batch (N, size, size, 3) for the model."""
    resized = np.empty((len(frames), size, size, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        resized[i] = resize_frame(frame, size, pre)
    return to_model_input(resized, pre)


def declared_size(data: np.ndarray) -> tuple[int, int] | None:
    """(width, height) a PNG or BMP header declares, read before anything is decoded; None
    for other formats (OpenCV's own pixel limit, 2**30, guards them)."""
    head = data[:26].tobytes()
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        return struct.unpack(">II", head[16:24])
    if head[:2] == b"BM" and len(head) >= 26:
        width, height = struct.unpack("<ii", head[18:26])
        return abs(width), abs(height)
    return None


def load_image_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8 (grey and alpha images too).

    Raises ImageConversionError, and nothing else a file can cause, with the reason (the
    caller names the file): an empty file, a header declaring more than MAX_PIXELS (refused
    before any memory is taken for it), or the decoder's own error, as
    ``image_conversion.to_rgb`` does for messages; so one foreign file never ends a run."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise ImageConversionError(f"cannot read file: {exc.strerror or exc}") from None
    if data.size == 0:
        raise ImageConversionError("empty file")
    size = declared_size(data)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise ImageConversionError(
            f"header declares {size[0]}x{size[1]} pixels, more than {MAX_PIXELS}")
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        reason = str(exc).strip().splitlines()[-1][:200]
        raise ImageConversionError(f"cannot decode image: {reason}") from None
    if image is None:
        raise ImageConversionError("cannot decode image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
