"""Property tests (hypothesis, no ROS): the shared policy/judge path always gives exactly one
record per event and never judges a frame outside the policy's window; image conversion
round-trips every valid layout and turns garbage into ImageConversionError only."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grasp_success_ros.core.errors import ImageConversionError
from grasp_success_ros.core.judge import Frame, GraspEvent, judge_selected
from grasp_success_ros.core.policy import PolicyConfig, decide, is_success, select_frames
from grasp_success_ros.data.image_conversion import to_rgb

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
ERROR_CODES = {"no_fresh_frame", "no_frame", "stale_frame", "bad_image", "inference_error"}

stamps_st = st.lists(st.floats(0.0, 100.0, allow_nan=False, allow_infinity=False),
                     max_size=60).map(sorted)
events_st = st.lists(st.floats(-5.0, 105.0, allow_nan=False, allow_infinity=False),
                     min_size=1, max_size=20)


@st.composite
def policies(draw):
    settle = draw(st.sampled_from([0.0, 0.05, 0.3, 1.0]))
    return PolicyConfig(
        selection=draw(st.sampled_from(["first_after", "latest", "n_after"])),
        n_frames=draw(st.integers(1, 8)),
        combine=draw(st.sampled_from(["mean", "vote"])),
        settle_s=settle,
        deadline_s=settle + draw(st.sampled_from([0.05, 0.5, 2.0, 10.0])),
        max_frame_age_s=draw(st.sampled_from([0.01, 0.5, 3.0])),
        threshold=draw(st.floats(0.0, 1.0)),
    ).validate()


def fake_predict(images):
    """P(success) from the frame's content (a constant image per frame)."""
    return np.array([float(img[0, 0, 0]) / 255.0 for img in images])


def fake_decode(msg):
    if msg == "bad":
        raise ImageConversionError("bad frame")
    return np.full((2, 2, 3), msg, np.uint8)


@SETTINGS
@given(stamps=stamps_st, events=events_st, cfg=policies(), data=st.data())
def test_every_event_gets_exactly_one_consistent_record(stamps, events, cfg, data):
    contents = data.draw(st.lists(st.one_of(st.integers(0, 255), st.just("bad")),
                                  min_size=len(stamps), max_size=len(stamps)))
    frames = [Frame(s, c) for s, c in zip(stamps, contents, strict=True)]
    stamps = [f.stamp for f in frames]
    records = [judge_selected(GraspEvent(i, t), frames, select_frames(stamps, t, cfg), fake_predict,
                              fake_decode, cfg) for i, t in enumerate(events)]
    assert [r.event_id for r in records] == list(range(len(events)))
    for event_t, record in zip(events, records, strict=True):
        record.to_json()  # always serialisable (no NaN)
        assert (record.verdict is None) == (record.error_code is not None)
        if record.verdict is None:
            assert record.error_code in ERROR_CODES and record.error
            continue
        assert 0.0 <= record.confidence <= 1.0
        assert len(record.frame_stamps) == cfg.frames_needed
        for s in record.frame_stamps:
            if cfg.selection == "latest":
                assert s <= event_t and event_t - s <= cfg.max_frame_age_s
            else:
                assert event_t + cfg.settle_s <= s <= event_t + cfg.deadline_s


@SETTINGS
@given(p=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30), threshold=st.floats(0.0, 1.0))
def test_every_combination_agrees_with_the_per_frame_rule(p, threshold):
    frames = [bool(is_success(x, threshold)) for x in p]
    mean = decide(p, PolicyConfig(threshold=threshold))
    assert mean.verdict is bool(is_success(float(np.mean(p)), threshold))
    voted = decide(p, PolicyConfig(combine="vote", threshold=threshold))
    assert voted.verdict is (2 * sum(frames) > len(p))
    assert voted.confidence == (sum(frames) if voted.verdict else len(p) - sum(frames)) / len(p)

@SETTINGS
@given(p=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30),
       band=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)).map(sorted),
       combine=st.sampled_from(["mean", "vote"]))
def test_a_band_only_withholds_verdicts_and_never_turns_one_around(p, band, combine):
    t_fail, t = band
    one = decide(p, PolicyConfig(combine=combine, threshold=t))
    two = decide(p, PolicyConfig(combine=combine, threshold=t, threshold_failure=t_fail))
    assert two.verdict in (None, one.verdict)
    assert two.p_success == one.p_success
    if two.verdict is not None and combine == "mean":
        assert two.confidence == one.confidence


@SETTINGS
@given(stamps=stamps_st, event_t=st.floats(-5.0, 105.0), cfg=policies(),
       now=st.floats(-5.0, 120.0))
def test_live_selection_only_waits_before_the_deadline(stamps, event_t, cfg, now):
    selection = select_frames(stamps, event_t, cfg, now=now)
    assert selection.status in {"ready", "wait", "fail"}
    if selection.status == "wait":
        assert cfg.selection != "latest" and now <= event_t + cfg.deadline_s
    if selection.ready:
        assert len(selection.indices) == cfg.frames_needed
        assert all(0 <= i < len(stamps) for i in selection.indices)
    # Past the deadline (or offline) there is always an answer.
    assert select_frames(stamps, event_t, cfg, now=None).status != "wait"


@SETTINGS
@given(cfg=policies(), n=st.integers(1, 5))
def test_a_failing_model_is_a_record_not_an_exception(cfg, n):
    frames = [Frame(float(i), 100) for i in range(n + 10)]
    selection = select_frames([f.stamp for f in frames], 0.0, cfg, now=None)

    def broken(images):
        raise RuntimeError("model exploded")

    def nan_model(images):
        return np.full(len(images), np.nan)

    for predict in (broken, nan_model):
        record = judge_selected(GraspEvent(1, 0.0), frames, selection, predict, fake_decode, cfg)
        assert record.verdict is None
        if selection.ready:
            assert record.error_code == "inference_error"


# --- image conversion ----------------------------------------------------------------------

LAYOUTS = {  # encoding -> (channels, dtype, rgb channel order or None for mono)
    "rgb8": (3, "u1", [0, 1, 2]), "bgr8": (3, "u1", [2, 1, 0]),
    "rgba8": (4, "u1", [0, 1, 2]), "bgra8": (4, "u1", [2, 1, 0]),
    "mono8": (1, "u1", None),
    "rgb16": (3, "u2", [0, 1, 2]), "bgr16": (3, "u2", [2, 1, 0]),
    "rgba16": (4, "u2", [0, 1, 2]), "bgra16": (4, "u2", [2, 1, 0]),
    "mono16": (1, "u2", None),
}


@SETTINGS
@given(encoding=st.sampled_from(sorted(LAYOUTS)), width=st.integers(1, 17),
       height=st.integers(1, 9), pad=st.integers(0, 9), bigendian=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_valid_layouts_round_trip(encoding, width, height, pad, bigendian, seed):
    channels, kind, order = LAYOUTS[encoding]
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if order is None:
        rgb = np.repeat(rgb[..., :1], 3, axis=2)
        pixels = rgb[..., :1]
    else:
        pixels = rgb[..., order]
        if channels == 4:
            pixels = np.dstack([pixels, np.full((height, width), 255, np.uint8)])
    if kind == "u2":  # 16-bit: the high byte is the 8-bit value, the low byte noise
        low = rng.integers(0, 256, pixels.shape, dtype=np.uint16)
        pixels = (pixels.astype(np.uint16) << 8) | low
    dtype = np.dtype(kind).newbyteorder(">" if bigendian else "<")
    rows = np.ascontiguousarray(pixels, dtype=dtype).reshape(height, -1).view(np.uint8)
    if pad:
        rows = np.hstack([rows, rng.integers(0, 256, (height, pad), dtype=np.uint8)])
    msg = SimpleNamespace(encoding=encoding, width=width, height=height, step=rows.shape[1],
                          is_bigendian=int(bigendian), data=rows.tobytes())
    out = to_rgb(msg)
    assert out.shape == (height, width, 3) and out.dtype == np.uint8
    # 16-bit values scale to 8 bits (within one level, as cv_bridge's conversion rounds)
    np.testing.assert_allclose(out, rgb, atol=0 if kind == "u1" else 1)


ENCODINGS = ["rgb8", "bgr8", "mono8", "mono16", "rgb16", "bgra16", "yuv422", "yuv422_yuy2",
             "nv21", "bayer_rggb8", "bayer_gbrg16", "8UC3", "16UC1", "32FC1", "32FC3", "64FC1",
             "8SC1", "rgb9", "", "RGB8", "uyvy"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(encoding=st.one_of(st.sampled_from(ENCODINGS), st.text(max_size=12)),
       width=st.one_of(st.integers(0, 40), st.integers(0, 2**32 - 1)),
       height=st.one_of(st.integers(0, 40), st.integers(0, 2**32 - 1)),
       step=st.one_of(st.integers(0, 200), st.integers(0, 2**32 - 1)),
       bigendian=st.integers(0, 255), data=st.binary(max_size=4000))
def test_garbage_images_raise_only_image_conversion_error(encoding, width, height, step,
                                                          bigendian, data):
    msg = SimpleNamespace(encoding=encoding, width=width, height=height, step=step,
                          is_bigendian=bigendian, data=data)
    try:
        out = to_rgb(msg)
    except ImageConversionError:
        return
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3


@st.composite
def compressed_garbage(draw):
    import cv2

    kind = draw(st.sampled_from(["random", "truncated", "flipped"]))
    if kind == "random":
        return draw(st.binary(max_size=3000))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    img = rng.integers(0, 256, (draw(st.integers(1, 24)), draw(st.integers(1, 24)), 3),
                       dtype=np.uint8)
    ok, buf = cv2.imencode(draw(st.sampled_from([".jpg", ".png", ".bmp", ".webp"])), img)
    data = bytearray(buf.tobytes())
    if kind == "truncated":
        return bytes(data[:draw(st.integers(0, len(data)))])
    for _ in range(draw(st.integers(1, 20))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=compressed_garbage(), fmt=st.sampled_from(["jpeg", "png", "", "rgb8; jpeg"]))
def test_garbage_compressed_images_raise_only_image_conversion_error(data, fmt):
    try:
        out = to_rgb(SimpleNamespace(format=fmt, data=data))
    except ImageConversionError:
        return
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
