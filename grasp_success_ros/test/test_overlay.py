"""The debug image's drawing: the verdict and P(success) on top, the decision band below."""

from __future__ import annotations

import numpy as np

from grasp_success_ros.data.overlay import AMBER, BAR_HEIGHT, GREEN, RED, annotate


def grey(h=120, w=200):
    return np.full((h, w, 3), 128, np.uint8)


def bar_row(image):
    return image[-BAR_HEIGHT // 2]


def test_the_frame_itself_is_left_untouched():
    frame = grey()
    annotate(frame, True, 0.9, 0.5)
    assert (frame == 128).all()


def test_the_bar_is_red_below_and_green_from_the_threshold_with_a_tick_at_p():
    row = bar_row(annotate(grey(), True, 0.8, 0.5))
    assert tuple(row[40]) == RED and tuple(row[120]) == GREEN
    assert tuple(row[160]) == (255, 255, 255)  # P(success) 0.8 of 200 px


def test_two_thresholds_draw_the_no_verdict_band_between_them():
    row = bar_row(annotate(grey(), None, 0.5, 0.7, threshold_failure=0.3))
    assert tuple(row[20]) == RED and tuple(row[80]) == AMBER and tuple(row[180]) == GREEN


def test_the_verdict_is_written_in_its_colour_at_the_top():
    top = annotate(grey(), False, 0.1, 0.5)[:30]
    assert (top == RED).all(axis=-1).any()
    assert not (annotate(grey(), True, 0.9, 0.5)[:30] == RED).all(axis=-1).any()
