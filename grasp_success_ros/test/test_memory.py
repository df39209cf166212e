"""The seed's model, loaded and exported, costs memory in proportion to its weights; an export
the machine cannot hold is refused up front, in one line.

The seed architecture (Keras 2 InceptionResNetV2 cut at mixed_7a, Flatten head) is built here
at 75 px with a wide Dense layer, so the weights (about 190 MB) outweigh the fixed costs as
they do at full size (815 MB), and the peaks are checked as multiples of the weights' size.
"""

import json
import subprocess
import sys
import textwrap

import pytest

from grasp_success_ros.model.memory import (
    ExportMemoryError,
    check_export_memory,
    export_needs_bytes,
    parameter_count,
)

SEED_SCRIPT = textwrap.dedent("""
    import sys, tf_keras as k
    base = k.applications.InceptionResNetV2(include_top=False, weights=None,
                                            input_shape=(75, 75, 3))
    cut = k.Model(base.input, base.get_layer("mixed_7a").output)
    x = k.layers.Dropout(0.2)(k.layers.Dense(8192, activation="relu")(
        k.layers.Flatten()(cut.output)))
    model = k.Model(cut.input, k.layers.Dense(1, activation="sigmoid")(x))
    model.save(sys.argv[1])
""")

MEASURE_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path

    def hwm():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024

    import onnx, onnxruntime, tensorflow, tf2onnx  # noqa: F401  (in the baseline)
    from grasp_success_ros.model.export import export_model
    from grasp_success_ros.model.loading import load_model
    model, what = sys.argv[1], sys.argv[2]
    baseline, log = hwm(), []
    if what == "load":
        load_model(model)
    else:
        export_model(model, what, out=Path(model).with_suffix("." + what), log=log.append)
    print(json.dumps({"baseline": baseline, "peak": hwm(), "log": log}))
""")


@pytest.fixture(scope="module")
def seed_h5(tmp_path_factory):
    path = tmp_path_factory.mktemp("seed_memory") / "seed.h5"
    subprocess.run([sys.executable, "-c", SEED_SCRIPT, str(path)], check=True,
                   capture_output=True)
    return path


def measure(model, what: str) -> dict:
    """Peak resident memory of loading or exporting ``model`` in a fresh process, over the
    process' own after importing TensorFlow and the converters, in multiples of the weights."""
    done = subprocess.run([sys.executable, "-c", MEASURE_SCRIPT, str(model), what],
                          check=True, capture_output=True, text=True)
    row = json.loads(done.stdout.splitlines()[-1])
    row["ratio"] = (row["peak"] - row["baseline"]) / (4 * parameter_count(model))
    return row


@pytest.fixture(scope="module")
def onnx_export(seed_h5):
    return measure(seed_h5, "onnx")


@pytest.mark.slow
def test_loading_the_seed_h5_peaks_under_one_and_three_quarter_times_its_weights(seed_h5):
    # 3.1 with Keras' random initialisers; 2.0 with zeros and block-wise strided-slice
    # assignment; 1.35 now (unwritten weights, each read into the buffer the variable keeps)
    assert measure(seed_h5, "load")["ratio"] < 1.75


@pytest.mark.slow
def test_onnx_export_of_the_seed_h5_peaks_under_six_and_a_half_times_its_weights(onnx_export):
    # 56 through Keras' model.export (tf2onnx's optimizer passes kept every replaced
    # attribute alive); 7.9 with fresh protobufs per pass; 6.9 with the head's large MatMul
    # kernel kept out of tf2onnx (most of the weights at full size); 5.5 now that loading
    # holds the weights once
    assert onnx_export["ratio"] < 6.5


@pytest.mark.slow
def test_export_says_when_the_card_it_writes_is_also_the_source_models_card(onnx_export):
    assert any("also the card of seed.h5" in line for line in onnx_export["log"])


def test_the_parameter_count_is_read_from_the_file_without_loading_the_model(seed_h5):
    assert 40e6 < parameter_count(seed_h5) < 50e6


def test_an_export_the_machine_cannot_hold_is_refused_in_one_line(seed_h5):
    with pytest.raises(ExportMemoryError) as refusal:
        check_export_memory(seed_h5, "onnx", None, available=2**30)
    message = str(refusal.value)
    needs = export_needs_bytes(parameter_count(seed_h5), "onnx", None) / 2**30
    assert "\n" not in message and f"needs about {needs:.1f} GB" in message
    assert "1.0 GB is free" in message and "close other programs" in message


def test_an_export_the_machine_can_hold_goes_ahead(seed_h5):
    check_export_memory(seed_h5, "tflite", "int8", available=2**40)
