"""One Runtime protocol for every model file: ``open_runtime`` picks the runtime by file type
(and, for .onnx, ONNX Runtime or OpenVINO), each one offers what the protocol states, and the
classifier, which knows only the protocol, gives the same P(success) through any of them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_classifier import red_minus_blue_model, sigmoid, solid

import grasp_success_ros
from grasp_success_ros.core.params import OnnxRuntimeChoice
from grasp_success_ros.model.card import ModelCard, card_path_for
from grasp_success_ros.model.classifier import GraspClassifier
from grasp_success_ros.model.digest import recorded
from grasp_success_ros.model.loading import save_model
from grasp_success_ros.model.runtimes import (
    KerasModel,
    OnnxModel,
    OpenVinoModel,
    Runtime,
    TFLiteModel,
    open_runtime,
)

SIZE = 32
OPENVINO = OnnxRuntimeChoice("openvino", "CPU", "fp32")
# (file, onnx_runtime choice, the class open_runtime returns, its name)
CASES = [("m.keras", None, KerasModel, "keras"),
         ("m.onnx", None, OnnxModel, "onnx"),
         ("m.onnx", OPENVINO, OpenVinoModel, "openvino"),
         ("m.tflite", None, TFLiteModel, "tflite")]


def _onnx_red_minus_blue(path) -> None:
    """sigmoid(mean(R) - mean(B)) in ONNX: the Keras test model's own function."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.array([[1.0], [0.0], [-1.0]], np.float32), "w")
    nodes = [helper.make_node("ReduceMean", ["x"], ["mean"], axes=[1, 2], keepdims=0),
             helper.make_node("MatMul", ["mean", "w"], ["logit"]),
             helper.make_node("Sigmoid", ["logit"], ["p"])]
    graph = helper.make_graph(
        nodes, "red_minus_blue",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, SIZE, SIZE, 3])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [None, 1])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def _tflite_red_minus_blue(model, path) -> None:
    import tensorflow as tf

    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The same model as .keras, .onnx and .tflite, with the card that describes them."""
    out = tmp_path_factory.mktemp("runtimes")
    card = ModelCard(backbone="test", input_size=SIZE)
    keras_model = red_minus_blue_model(SIZE)
    save_model(keras_model, out / "m.keras", card)
    _onnx_red_minus_blue(out / "m.onnx")
    _tflite_red_minus_blue(keras_model, out / "m.tflite")
    card_path = card_path_for(out / "m.keras")  # one card for the three: m.card.json
    recorded(ModelCard.load(card_path), [out / "m.onnx", out / "m.tflite"]).save(card_path)
    return out


def _skip_without_openvino(choice) -> None:
    if choice is not None:
        pytest.importorskip("openvino", reason="the openvino package is not installed")


@pytest.mark.parametrize("file, choice, kind, name", CASES)
def test_open_runtime_picks_the_runtime_by_file_type(models, file, choice, kind, name):
    _skip_without_openvino(choice)
    loaded = open_runtime(models / file, choice=choice)
    assert type(loaded.model) is kind and loaded.model.name == name
    assert loaded.card.input_size == SIZE and loaded.path == models / file


@pytest.mark.parametrize("file, choice, kind, name", CASES)
def test_every_runtime_offers_what_the_protocol_states(models, file, choice, kind, name):
    _skip_without_openvino(choice)
    runtime = open_runtime(models / file, choice=choice).model
    assert isinstance(runtime, Runtime)
    assert (runtime.source, runtime.input_size) == (str(models / file), SIZE)
    assert isinstance(runtime.device, str) and runtime.device
    batch = np.zeros((2, SIZE, SIZE, 3), np.float32)
    batch[0, ..., 0] = 1.0  # all red: sigmoid(1)
    np.testing.assert_allclose(runtime.predict(batch), [[sigmoid(1.0)], [0.5]], rtol=1e-5)
    assert runtime.warm_up((1, 2)) is None


@pytest.mark.parametrize("file, choice, kind, name", CASES)
def test_the_classifier_gives_the_same_p_success_through_every_runtime(
        models, file, choice, kind, name):
    _skip_without_openvino(choice)
    clf, _ = GraspClassifier.from_path(models / file, onnx_runtime=choice)
    assert (clf.runtime, clf.source) == (name, str(models / file))
    p = clf.predict([solid((255, 0, 0)), solid((0, 0, 255))])
    np.testing.assert_allclose(p, [sigmoid(1.0), sigmoid(-1.0)], rtol=1e-5)


def test_a_keras_model_handed_over_in_memory_runs_as_the_keras_runtime():
    clf = GraspClassifier(red_minus_blue_model(SIZE), ModelCard(backbone="test",
                                                                input_size=SIZE))
    assert isinstance(clf.model, KerasModel) and isinstance(clf.model, Runtime)
    assert (clf.runtime, clf.source, clf.model.input_size) == ("keras", "", SIZE)


def test_options_for_another_file_type_are_ignored_with_a_note(models):
    loaded = open_runtime(models / "m.tflite", providers=["cpu"], choice=OPENVINO)
    assert type(loaded.model) is TFLiteModel
    assert any("openvino runtime applies to .onnx models only" in n for n in loaded.notes)
    assert any("providers (cpu) apply to .onnx models only" in n for n in loaded.notes)


AUDITED = """
import sys
LEFT_OUT = {"tensorflow", "keras", "tf_keras", "h5py", "onnx", "tf2onnx"}
sys.addaudithook(lambda event, args: event == "import" and str(args[0]).split(".")[0]
                 in LEFT_OUT and print("IMPORT ATTEMPT", args[0], file=sys.stderr))
import numpy as np
from grasp_success_ros.model.classifier import GraspClassifier
for path in sys.argv[1:]:
    clf, _ = GraspClassifier.from_path(path)
    clf.warm_up((1, 2))
    clf.predict([np.zeros((40, 60, 3), np.uint8)])
"""


def test_the_exported_runtimes_open_and_run_without_trying_to_import_tensorflow(models):
    package = str(Path(grasp_success_ros.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (package, os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([sys.executable, "-c", AUDITED, str(models / "m.onnx"),
                           str(models / "m.tflite")], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "IMPORT ATTEMPT" not in done.stderr, done.stderr
