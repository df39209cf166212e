"""Image messages -> RGB frames: every common encoding, padded rows, byte order, and a clear
error for every malformed message.  Messages are real rclpy message objects."""

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from grasp_success_ros.core.errors import ImageConversionError
from grasp_success_ros.data.image_conversion import rgb_to_image_fields, to_rgb

RGB = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)


def image(encoding, pixels, step=None, bigendian=False, pad=0):
    h, w = pixels.shape[:2]
    row = pixels.reshape(h, -1).view(np.uint8).reshape(h, -1)
    if pad:
        row = np.hstack([row, np.zeros((h, pad), np.uint8)])
    return Image(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian),
                 step=step or row.shape[1], data=row.tobytes())


def test_rgb8_passes_through():
    assert np.array_equal(to_rgb(image("rgb8", RGB)), RGB)


def test_bgr8_is_reordered_to_rgb():
    assert np.array_equal(to_rgb(image("bgr8", RGB[..., ::-1].copy())), RGB)


def test_padded_rows_honour_step():
    assert np.array_equal(to_rgb(image("rgb8", RGB, pad=7)), RGB)


def test_rgba_and_bgra_drop_alpha():
    alpha = np.full(RGB.shape[:2] + (1,), 255, np.uint8)
    assert np.array_equal(to_rgb(image("rgba8", np.concatenate([RGB, alpha], 2))), RGB)
    bgra = np.concatenate([RGB[..., ::-1], alpha], 2)
    assert np.array_equal(to_rgb(image("bgra8", np.ascontiguousarray(bgra))), RGB)


def test_mono8_becomes_grey_rgb():
    out = to_rgb(image("mono8", RGB[..., 0].copy()))
    assert out.shape == RGB.shape and np.array_equal(out[..., 1], RGB[..., 0])


@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_in_either_byte_order_scales_to_8_bit(bigendian):
    values = np.array([[0, 65535], [32896, 257]], dtype=">u2" if bigendian else "<u2")
    out = to_rgb(image("mono16", values, bigendian=bigendian))
    assert out[..., 0].tolist() == [[0, 255], [128, 1]]


def test_rgb16_scales_to_8_bit():
    out = to_rgb(image("rgb16", RGB.astype("<u2") * 257))
    assert np.array_equal(out, RGB)


def test_yuv422_grey_decodes_to_grey():
    uyvy = np.tile(np.array([128, 100], np.uint8), (4, 6, 1)).reshape(4, 6, 2)
    out = to_rgb(image("yuv422", uyvy))
    assert out.shape == (4, 6, 3) and abs(int(out.mean()) - 100) <= 3


def test_bayer_uniform_decodes_to_uniform():
    out = to_rgb(image("bayer_rggb8", np.full((4, 6), 90, np.uint8)))
    assert out.shape == (4, 6, 3) and np.all(out == 90)


@pytest.mark.parametrize("mutate, reason", [
    (dict(encoding="rgb9"), "unknown image encoding"),
    (dict(encoding="RGB8"), "unknown image encoding"),
    (dict(data=bytes(10)), "expected height x step"),
    (dict(data=bytes(6 * 15 + 1)), "expected height x step"),
    (dict(step=14), "smaller than width"),
    (dict(width=0), "empty image"),
    (dict(height=100000, width=100000), "too large"),
    (dict(encoding="32FC1"), "float data"),
])
def test_malformed_images_raise_a_clear_error(mutate, reason):
    msg = image("rgb8", RGB)
    for key, value in mutate.items():
        setattr(msg, key, value)
    with pytest.raises(ImageConversionError, match=reason):
        to_rgb(msg)


def compressed(fmt, data):
    return CompressedImage(format=fmt, data=bytes(data))


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_compressed_images_decode_to_rgb(ext):
    smooth = np.zeros((32, 48, 3), np.uint8)
    smooth[..., 0], smooth[:, 24:, 2] = 200, 150  # red everywhere, blue on the right half
    ok, buf = cv2.imencode(ext, smooth[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = to_rgb(compressed(ext[1:], buf.tobytes()))
    assert out.shape == smooth.shape
    assert np.abs(out.astype(int) - smooth).mean() < 3


def test_compressed_grey_png_becomes_rgb():
    ok, buf = cv2.imencode(".png", RGB[..., 0])
    assert to_rgb(compressed("mono8; png compressed", buf.tobytes())).shape == RGB.shape


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_corrupt_compressed_images_raise_a_clear_error(data):
    with pytest.raises(ImageConversionError):
        to_rgb(compressed("png", data))


def test_truncated_jpeg_is_an_error_or_a_frame_never_a_crash():
    ok, buf = cv2.imencode(".jpg", RGB)
    try:
        out = to_rgb(compressed("jpeg", buf.tobytes()[:40]))
    except ImageConversionError:
        return
    assert out.ndim == 3


def test_rosbags_messages_convert_like_rclpy_messages():
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    Msg = store.types["sensor_msgs/msg/Image"]
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    fields = rgb_to_image_fields(RGB, "bgr8")
    fields["data"] = np.frombuffer(fields["data"], np.uint8)
    msg = Msg(header=Header(stamp=Time(sec=1, nanosec=0), frame_id="cam"), **fields)
    assert np.array_equal(to_rgb(msg), RGB)
