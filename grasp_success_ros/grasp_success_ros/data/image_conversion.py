"""ROS image messages -> RGB uint8 frames, with cv_bridge's semantics and no cv_bridge.

rosbags-image does the colour work (every common encoding: mono, bgr/rgb(a), yuv422,
bayer, 16-bit); this module adds what a camera on a robot needs on top: the row
``step`` (padded rows), ``is_bigendian``, and a clear error for every malformed
message.  It accepts rclpy messages and rosbags messages alike.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from rosbags.image import image as rbimage

from grasp_success_ros.core.errors import ImageConversionError
from grasp_success_ros.data.preprocessing import MAX_PIXELS

_HALF_HEIGHT_PLANES = ("nv12", "nv21")


def to_rgb(msg: Any) -> np.ndarray:
    """Any sensor_msgs/Image or CompressedImage -> (H, W, 3) RGB uint8.

    Raises ImageConversionError, and nothing else, for any message it cannot convert (a
    decoder's own exception, e.g. OpenCV's on a corrupt BMP header, included)."""
    try:
        if hasattr(msg, "format"):
            return compressed_to_rgb(msg)
        return image_to_rgb(msg)
    except ImageConversionError:
        raise
    except Exception as exc:
        raise ImageConversionError(
            f"cannot decode image: {type(exc).__name__}: {str(exc).strip()[:300]}") from None


def _layout(msg: Any) -> tuple[str, np.dtype, int, int]:
    """(encoding, dtype, channels, rows) of an Image message, or a clear error."""
    encoding = str(msg.encoding)
    try:
        _, _, typestr, nchan = rbimage.to_cvtype(encoding)
    except Exception:
        raise ImageConversionError(f"unknown image encoding {encoding!r}") from None
    dtype = np.dtype(typestr)
    if dtype.kind == "f":
        raise ImageConversionError(f"encoding {encoding!r} is not a colour image (float data)")
    if msg.height == 0 or msg.width == 0:
        raise ImageConversionError(f"empty image ({msg.width}x{msg.height})")
    if msg.height * msg.width > MAX_PIXELS:
        raise ImageConversionError(f"image of {msg.width}x{msg.height} pixels is too large")
    rows = msg.height * 3 // 2 if encoding in _HALF_HEIGHT_PLANES else msg.height
    return encoding, dtype, nchan, rows


def image_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/Image -> RGB uint8, honouring step and byte order."""
    encoding, dtype, nchan, rows = _layout(msg)
    row_bytes = msg.width * nchan * dtype.itemsize
    if msg.step < row_bytes:
        raise ImageConversionError(
            f"step {msg.step} is smaller than width x channels x bytes = {row_bytes} ({encoding})"
        )
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != rows * msg.step:
        raise ImageConversionError(
            f"data has {data.size} bytes, expected height x step = {rows * msg.step}"
        )
    packed = data.reshape(rows, msg.step)[:, :row_bytes]
    order = ">" if msg.is_bigendian else "<"
    pixels = np.ascontiguousarray(packed).view(dtype.newbyteorder(order)).astype(dtype)
    shape = (rows, msg.width) if nchan == 1 else (rows, msg.width, nchan)
    return _convert(pixels.reshape(shape), encoding)


def _convert(pixels: np.ndarray, encoding: str) -> np.ndarray:
    try:
        rgb = rbimage.convert_color(pixels, encoding, "rgb8")
    except Exception as exc:
        raise ImageConversionError(f"cannot convert {encoding!r} to rgb8: {exc}") from None
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageConversionError(f"encoding {encoding!r} does not give a colour image")
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG, PNG, ...) -> RGB uint8; decoded by content."""
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise ImageConversionError(f"empty compressed image (format {msg.format!r})")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ImageConversionError(
            f"cannot decode compressed image of {data.size} bytes (format {msg.format!r})"
        )
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.dtype != np.uint8:
        raise ImageConversionError(f"compressed image decodes to {image.dtype}, not 8-bit")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(image, code)


def rgb_to_image_fields(rgb: np.ndarray, encoding: str = "rgb8") -> dict[str, Any]:
    """Fields of a sensor_msgs/Image holding ``rgb`` (for publishers and bag writers)."""
    if encoding == "bgr8":
        rgb = rgb[..., ::-1]
    elif encoding != "rgb8":
        raise ImageConversionError(f"cannot encode frames as {encoding!r}")
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    return {"height": h, "width": w, "encoding": encoding, "is_bigendian": 0, "step": w * 3,
            "data": rgb.tobytes()}
