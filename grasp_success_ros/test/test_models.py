"""Building, saving and loading every model kind; the seed's Keras 2 .h5 files; refusals."""

import json
import subprocess
import sys
import textwrap

import h5py
import keras
import numpy as np
import pytest

from grasp_success_ros.core.errors import (
    ModelCardError,
    ModelLoadError,
    ModelShapeError,
    UnsafeModelError,
)
from grasp_success_ros.model.builder import build_model
from grasp_success_ros.model.card import ModelCard
from grasp_success_ros.model.classifier import GraspClassifier
from grasp_success_ros.model.loading import load_model, save_model

KINDS = [("inception_resnet_v2", 75, "gap"), ("inception_resnet_v2", 75, "flatten"),
         ("inception_v3", 75, "gap"), ("mobilenet_v3_small", 48, "flatten")]


def frames(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (60 + 7 * i, 80, 3), dtype=np.uint8) for i in range(n)]


@pytest.mark.parametrize("backbone, size, head", KINDS)
def test_every_model_kind_round_trips_save_load_predict(tmp_path, backbone, size, head):
    model, card = build_model(backbone, size, head, weights=None, dense_units=8)
    before = GraspClassifier(model, card).predict(frames(3))
    save_model(model, tmp_path / "m.keras", card)
    loaded = load_model(tmp_path / "m.keras")
    assert loaded.card.replace(files={}) == card and loaded.notes == []
    assert set(loaded.card.files) == {"m.keras"}  # the card records the file it describes
    after = GraspClassifier(loaded.model, loaded.card).predict(frames(3))
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)


def test_inception_resnet_v2_scaling_layers_survive_the_round_trip(tmp_path):
    model, card = build_model("inception_resnet_v2", 75, "gap", weights=None, dense_units=8)
    def scales(m):
        cut = m.get_layer("inception_resnet_v2_cut")
        return [layer.scale for layer in cut.layers if type(layer).__name__ == "CustomScaleLayer"]

    assert scales(model) == [0.17] * 10 + [0.1] * 20  # block35 x 10, block17 x 20
    save_model(model, tmp_path / "m.keras", card)
    assert scales(load_model(tmp_path / "m.keras").model) == scales(model)


@pytest.mark.slow
def test_full_size_inception_resnet_v2_is_cut_at_mixed_7a():
    model, card = build_model("inception_resnet_v2", 350, "gap", weights=None)
    assert model.get_layer("inception_resnet_v2_cut").output.shape == (None, 9, 9, 2080)
    assert model.output.shape == (None, 1) and card.input_size == 350
    assert 30e6 < model.count_params() < 40e6


def test_local_backbone_weights_file_is_loaded(tmp_path):
    base = keras.applications.MobileNetV3Small(include_top=False, weights=None,
                                               input_shape=(48, 48, 3),
                                               include_preprocessing=False, minimalistic=True)
    base.save_weights(tmp_path / "notop.weights.h5")
    model, _ = build_model("mobilenet_v3_small", 48, weights=tmp_path / "notop.weights.h5")
    got = model.get_layer("MobileNetV3Small").get_weights()
    for a, b in zip(got, base.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="model file not found"):
        load_model(tmp_path / "nope.keras")


def test_a_keras_model_without_a_card_is_refused(tmp_path):
    model, _ = build_model("mobilenet_v3_small", 48, weights=None, dense_units=4)
    model.save(tmp_path / "m.keras")
    with pytest.raises(ModelCardError, match="no model card"):
        load_model(tmp_path / "m.keras")


def test_a_card_that_contradicts_the_model_is_refused(tmp_path):
    model, card = build_model("mobilenet_v3_small", 48, weights=None, dense_units=4)
    save_model(model, tmp_path / "m.keras", card.replace(input_size=64))
    with pytest.raises(ModelShapeError, match="64 px"):
        load_model(tmp_path / "m.keras")


def test_a_model_with_the_wrong_output_shape_is_refused(tmp_path):
    inputs = keras.Input((48, 48, 3))
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(inputs))
    save_model(keras.Model(inputs, outputs), tmp_path / "m.keras",
               ModelCard(backbone="x", input_size=48))
    with pytest.raises(ModelShapeError, match="output shape"):
        load_model(tmp_path / "m.keras")


def test_models_with_python_code_are_refused_unless_allowed(tmp_path):
    inputs = keras.Input((48, 48, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(x))
    save_model(keras.Model(inputs, outputs), tmp_path / "m.keras",
               ModelCard(backbone="x", input_size=48))
    with pytest.raises(UnsafeModelError, match="Lambda"):
        load_model(tmp_path / "m.keras")
    assert load_model(tmp_path / "m.keras", allow_custom_code=True).card.input_size == 48


SEED_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, tf_keras as k
    out = sys.argv[1]
    base = k.applications.InceptionResNetV2(include_top=False, weights=None,
                                            input_shape=(75, 75, 3))
    cut = k.Model(base.input, base.get_layer("mixed_7a").output)
    x = k.layers.Flatten()(cut.output)
    x = k.layers.Dense(16, activation="relu")(x)
    x = k.layers.Dropout(0.2)(x)
    model = k.Model(cut.input, k.layers.Dense(1, activation="sigmoid")(x))
    model.compile(optimizer=k.optimizers.RMSprop(1e-4), loss="binary_crossentropy",
                  metrics=["accuracy"])
    model.save(out + "/seed.h5")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 75, 75, 3)).astype("uint8")
    np.save(out + "/images.npy", images)
    np.save(out + "/keras2_out.npy", model.predict(images / 255.0, verbose=0).ravel())
""")


@pytest.fixture(scope="module")
def seed_h5(tmp_path_factory):
    """The seed architecture saved by Keras 2 (tf-keras) as a whole-model HDF5 file."""
    out = tmp_path_factory.mktemp("seed")
    subprocess.run([sys.executable, "-c", SEED_SCRIPT, str(out)], check=True,
                   capture_output=True)
    return out


def test_seed_h5_loads_with_the_seed_conventions(seed_h5):
    clf, notes = GraspClassifier.from_path(seed_h5 / "seed.h5")
    assert clf.card.output == "p_failure" and clf.card.preprocessing.scale == pytest.approx(1 / 255)
    assert any("seed's conventions" in note for note in notes)
    images = list(np.load(seed_h5 / "images.npy"))
    p_unsuccessful = np.load(seed_h5 / "keras2_out.npy")
    np.testing.assert_allclose(clf.predict(images), 1.0 - p_unsuccessful, atol=1e-5)


def _as_keras_2_lambdas(src, dst):
    """Rewrite a tf-keras file the way TF 2.0-2.2 stored the residual scaling: as Lambdas."""
    with h5py.File(src) as f_in, h5py.File(dst, "w") as f_out:
        for key in f_in:
            f_in.copy(key, f_out)
        for key, value in f_in.attrs.items():
            f_out.attrs[key] = value
        text = f_in.attrs["model_config"]
        text = text.decode() if isinstance(text, bytes) else text
        config = json.loads(text)
        for i, layer in enumerate(ly for ly in config["config"]["layers"]
                                  if ly["class_name"] == "Custom>CustomScaleLayer"):
            old, new = layer["config"]["name"], f"block35_{i + 1}"
            layer["class_name"] = "Lambda"
            layer["config"] = {"name": old, "trainable": True, "dtype": "float32",
                               "function": ["4wIAAAAAAAAA", None, None],
                               "function_type": "lambda", "module": "inception_resnet_v2",
                               "output_shape": None, "output_shape_type": "raw",
                               "arguments": {"scale": layer["config"]["scale"]}}
            text = json.dumps(config).replace(f'"{old}"', f'"{new}"')
            config = json.loads(text)
        f_out.attrs["model_config"] = json.dumps(config)


def test_seed_h5_with_keras_2_lambda_scaling_loads_without_running_code(seed_h5, tmp_path):
    _as_keras_2_lambdas(seed_h5 / "seed.h5", tmp_path / "old.h5")
    clf, _ = GraspClassifier.from_path(tmp_path / "old.h5")
    p_unsuccessful = np.load(seed_h5 / "keras2_out.npy")
    np.testing.assert_allclose(clf.predict(list(np.load(seed_h5 / "images.npy"))),
                               1.0 - p_unsuccessful, atol=1e-5)


def test_seed_h5_card_beside_it_wins_over_the_seed_defaults(seed_h5, tmp_path):
    (tmp_path / "seed.h5").write_bytes((seed_h5 / "seed.h5").read_bytes())
    card = ModelCard(backbone="inception_resnet_v2", input_size=75, head="flatten",
                     output="p_failure", threshold=0.3)
    card.save(tmp_path / "seed.card.json")
    loaded = load_model(tmp_path / "seed.h5")
    assert loaded.card.threshold == 0.3
    assert len(loaded.notes) == 1 and "records no digest" in loaded.notes[0]  # hand-written
