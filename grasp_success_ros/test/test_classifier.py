"""The classifier applies the card's preprocessing and output meaning exactly."""

import keras
import numpy as np
import pytest

from grasp_success_ros.model.card import ModelCard, Preprocessing
from grasp_success_ros.model.classifier import GraspClassifier


def red_minus_blue_model(size=32):
    """sigmoid(mean(R) - mean(B)) of the model input: exposes channel order and scaling."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(1, 1, use_bias=False)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Activation("sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.layers[1].set_weights([np.array([1.0, 0.0, -1.0]).reshape(1, 1, 3, 1)])
    return model


def solid(rgb, shape=(45, 70)):
    return np.full(shape + (3,), rgb, np.uint8)


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def card(**kw):
    return ModelCard(backbone="test", input_size=32, **kw)


def test_frames_are_fed_as_rgb_scaled_by_the_card():
    clf = GraspClassifier(red_minus_blue_model(), card())
    p = clf.predict([solid((255, 0, 0)), solid((0, 0, 255))])
    np.testing.assert_allclose(p, [sigmoid(1.0), sigmoid(-1.0)], rtol=1e-5)


def test_scale_and_offset_come_from_the_card():
    clf = GraspClassifier(red_minus_blue_model(),
                          card(preprocessing=Preprocessing(scale=2 / 255, offset=-1.0)))
    np.testing.assert_allclose(clf.predict([solid((255, 0, 0))]), [sigmoid(2.0)], rtol=1e-5)


def test_bgr_models_get_bgr_input():
    bgr = card(preprocessing=Preprocessing(color_order="BGR"))
    clf = GraspClassifier(red_minus_blue_model(), bgr)
    np.testing.assert_allclose(clf.predict([solid((255, 0, 0))]), [sigmoid(-1.0)], rtol=1e-5)


def test_p_failure_models_are_turned_into_p_success():
    clf = GraspClassifier(red_minus_blue_model(), card(output="p_failure"))
    np.testing.assert_allclose(clf.predict([solid((255, 0, 0))]), [1 - sigmoid(1.0)], rtol=1e-5)


def test_a_batch_equals_frame_by_frame_whatever_the_frame_sizes():
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(32, 32), (480, 640),
                                                                            (50, 20)]]
    clf = GraspClassifier(red_minus_blue_model(), card())
    batch = clf.predict(frames)
    single = [clf.predict([f])[0] for f in frames]
    np.testing.assert_allclose(batch, single, rtol=1e-6)


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32),
                                 np.zeros((10, 10, 4), np.uint8)])
def test_non_rgb_frames_are_refused(bad):
    from grasp_success_ros.core.errors import ImageConversionError

    with pytest.raises(ImageConversionError):
        GraspClassifier(red_minus_blue_model(), card()).predict([bad])
