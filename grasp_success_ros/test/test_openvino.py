"""The OpenVINO runtime for .onnx models: FP32 as ONNX Runtime computes it, bf16 only where the
CPU has it and the card's parity record allows it, devices that are not there refused in one
line; and over real DDS the node serving through it, its device and precision in
/diagnostics."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from grasp_success_ros.cli import main as cli
from grasp_success_ros.core.errors import ConfigError, ModelCardError, ModelLoadError
from grasp_success_ros.core.params import NodeConfig, OnnxRuntimeChoice
from grasp_success_ros.model.card import ModelCard, card_path_for
from grasp_success_ros.model.classifier import GraspClassifier
from grasp_success_ros.model.runtimes import (
    PARITY_KEY,
    OnnxModel,
    OpenVinoModel,
    bf16_capable,
    parity_record,
    usable_cores,
)

ov = pytest.importorskip("openvino", reason="the openvino package (the [openvino] extra, in "
                         "requirements-dev.txt) is not installed")
CPU_BF16 = bf16_capable(ov.Core(), "CPU")
FP32 = OnnxRuntimeChoice("openvino", "CPU", "fp32")
BF16 = OnnxRuntimeChoice("openvino", "CPU", "bf16")


@pytest.fixture(scope="module")
def trained_onnx(trained_exports):
    """The trained test model in ONNX (conftest.py, shared by the run), with the bf16 parity
    record in its card where this CPU has bf16 (measured on the 40 synthetic scenes beside
    it, which it has not seen)."""
    assert (trained_exports["onnx"].openvino_bf16 is not None) == CPU_BF16
    return trained_exports["onnx"]


@pytest.fixture
def unchecked_onnx(trained_onnx, tmp_path):
    """The same ONNX file with a card that has no bf16 parity record."""
    path = shutil.copy(trained_onnx.path, tmp_path / "unchecked.onnx")
    card = ModelCard.load(card_path_for(trained_onnx.path))
    training = {k: v for k, v in card.training.items() if k != PARITY_KEY}
    card.replace(training=training).save(card_path_for(path))
    return path


def batch(size: int, n=6, seed=1):
    return np.random.default_rng(seed).random((n, size, size, 3), np.float32)


def test_fp32_gives_onnx_runtimes_outputs_within_1e_5(trained_onnx):
    openvino, onnxruntime = OpenVinoModel(trained_onnx.path, choice=FP32), \
        OnnxModel(trained_onnx.path)
    x = batch(onnxruntime.input_size)
    assert np.max(np.abs(openvino.predict(x) - onnxruntime.predict(x))) < 1e-5


def test_fp32_is_asked_for_explicitly_and_threads_are_one_per_usable_core(trained_onnx):
    compiled = OpenVinoModel(trained_onnx.path, choice=FP32).compiled
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    assert compiled.get_property("INFERENCE_NUM_THREADS") == usable_cores()


def test_the_classifier_names_runtime_device_and_precision(trained_onnx):
    clf, notes = GraspClassifier.from_path(trained_onnx.path, onnx_runtime=FP32)
    assert (clf.runtime, clf.device) == ("openvino", "openvino:CPU fp32")
    assert notes[-1].endswith("with the openvino runtime on openvino:CPU fp32")


@pytest.mark.skipif(not CPU_BF16, reason="this CPU has no bf16 (AVX-512 BF16 / AMX)")
def test_bf16_runs_in_bf16_where_the_cpu_has_it_close_to_fp32(trained_onnx):
    clf, _ = GraspClassifier.from_path(trained_onnx.path, onnx_runtime=BF16)
    assert clf.device == "openvino:CPU bf16"
    assert clf.model.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.bf16
    fp32, _ = GraspClassifier.from_path(trained_onnx.path, onnx_runtime=FP32)
    x = batch(clf.input_size)
    assert 0 < np.max(np.abs(clf.predict_prepared(x) - fp32.predict_prepared(x))) < 0.05


@pytest.mark.skipif(CPU_BF16, reason="this CPU has bf16: the fall-back is not taken here")
def test_bf16_falls_back_to_fp32_saying_why_where_the_cpu_lacks_it(unchecked_onnx):
    clf, notes = GraspClassifier.from_path(unchecked_onnx, onnx_runtime=BF16)
    assert clf.device == "openvino:CPU fp32 (bf16 unavailable)"
    assert "no bf16" in notes[-1]


@pytest.mark.skipif(not CPU_BF16, reason="this CPU has no bf16: no parity record is written")
def test_export_stores_the_bf16_parity_record_in_the_card_and_the_loader_reads_it(
        trained_onnx):
    record = ModelCard.load(card_path_for(trained_onnx.path)).training[PARITY_KEY]
    assert record == json.loads(json.dumps(trained_onnx.openvino_bf16))
    assert record["samples"] == 40 + 8 and record["counted"] > 40  # scenes + random images
    assert 0 < record["max_abs_diff"] < 0.05 and record["flip_share"] <= 0.01


def test_bf16_is_refused_in_one_line_for_a_card_without_a_parity_record(unchecked_onnx):
    if not CPU_BF16:
        pytest.skip("this CPU has no bf16: bf16 falls back to fp32 before the card is read")
    with pytest.raises(ModelCardError) as err:
        GraspClassifier.from_path(unchecked_onnx, onnx_runtime=BF16)
    assert "bf16 refused: its card has no OpenVINO bf16 parity record" in str(err.value)
    assert "\n" not in str(err.value)


def test_bf16_is_refused_for_a_model_whose_verdicts_flipped_on_over_1_percent(unchecked_onnx):
    if not CPU_BF16:
        pytest.skip("this CPU has no bf16: bf16 falls back to fp32 before the card is read")
    card = ModelCard.load(card_path_for(unchecked_onnx))
    record = parity_record(np.array([0.2, 0.7, 0.9]), np.array([0.6, 0.7, 0.9]), 0.5)
    card.replace(training={**card.training, PARITY_KEY: record}).save(
        card_path_for(unchecked_onnx))
    with pytest.raises(ModelCardError, match=r"verdicts flipped on 33.3 % of the parity inputs"):
        GraspClassifier.from_path(unchecked_onnx, onnx_runtime=BF16)


def test_a_flip_counts_only_where_fp32_is_clear_of_the_threshold():
    fp32 = np.array([0.505, 0.495, 0.2, 0.8, 0.9])
    bf16 = np.array([0.495, 0.505, 0.6, 0.8, 0.9])  # two flips within 0.01, one clear
    record = parity_record(fp32, bf16, 0.5)
    assert (record["verdict_flips"], record["counted"]) == (1, 3)
    assert record["flip_share"] == pytest.approx(1 / 3)
    assert record["max_abs_diff"] == pytest.approx(0.4)


def test_a_device_that_is_not_here_is_refused_in_one_line_naming_the_present_ones(
        trained_onnx):
    present = ov.Core().available_devices
    missing = next((d for d in ("NPU", "GPU") if not any(p.startswith(d) for p in present)),
                   None)
    if missing is None:
        pytest.skip("this machine has every OpenVINO device")
    with pytest.raises(ModelLoadError) as err:
        GraspClassifier.from_path(trained_onnx.path,
                                  onnx_runtime=OnnxRuntimeChoice("openvino", missing))
    assert f"OpenVINO device {missing} not available here; available: " \
           f"{', '.join(present)}" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("field,value", [("onnx_runtime", "tensorflow"),
                                         ("openvino_device", "TPU"),
                                         ("openvino_precision", "fp16")])
def test_an_unknown_runtime_device_or_precision_is_a_config_error(field, value):
    with pytest.raises(ConfigError, match=f"{field} must be one of"):
        NodeConfig.from_values({"model_path": "m.onnx", field: value})


def test_the_cli_option_evaluates_through_openvino_with_the_same_accuracy(trained_onnx,
                                                                          capsys):
    scenes = Path(trained_onnx.path).parent / "samples"
    results = {}
    for runtime in ("onnxruntime", "openvino"):
        code = cli.main(["evaluate", str(scenes), trained_onnx.path, "--json",
                         "--onnx-runtime", runtime])
        out = capsys.readouterr()
        assert code == 0, out.err
        results[runtime] = json.loads(out.out)
    assert "with the openvino runtime on openvino:CPU fp32" in out.err
    assert results["openvino"]["accuracy"] == results["onnxruntime"]["accuracy"]


# --------------------------------------------------------------------------- over real DDS


def _diagnostics(player, fqn: str) -> dict:
    from diagnostic_msgs.msg import DiagnosticArray
    from rosnode import frame

    seen = []
    sub = player.create_subscription(DiagnosticArray, "/diagnostics", seen.append, 10)
    deadline, mine = time.monotonic() + 10.0, []
    while not mine and time.monotonic() < deadline:
        player.publish_frame(frame(1, True))
        time.sleep(0.1)
        mine = [s for a in list(seen) for s in a.status if s.hardware_id == fqn]
    player.destroy_subscription(sub)
    return {kv.key: kv.value for kv in mine[-1].values}


def _serves_every_event(player) -> None:
    from grasp_success_ros.data.synth import grasp_stream

    player.clear()
    labels = player.play(grasp_stream(seed=8, n_grasps=6, approach_s=0.4, hold_s=1.0))
    results = player.wait_for_results(len(labels), timeout=30.0)
    assert len(results) == len(labels) == 6
    assert all(r["verdict"] is not None for r in results), results


@pytest.mark.ros
def test_the_node_serves_through_openvino_fp32_then_bf16_showing_them_in_diagnostics(
        ros, ros_install, trained_onnx, tmp_path):
    import rosnode

    log = tmp_path / "node.log"
    with rosnode.node_and_player(ros_install, trained_onnx.path, log, "/ov",
                                 "-p", "onnx_runtime:=openvino") as (player, proc):
        _serves_every_event(player)
        assert _diagnostics(player, "/ov/grasp_success_node")["device"] == "openvino:CPU fp32"
        changed = rosnode.set_parameter(player, "/ov/grasp_success_node",
                                        "openvino_precision", "bf16")
        assert changed.successful, changed.reason
        _serves_every_event(player)
        values = _diagnostics(player, "/ov/grasp_success_node")
        assert values["device"] == ("openvino:CPU bf16" if CPU_BF16 else
                                    "openvino:CPU fp32 (bf16 unavailable)"), values
        assert values["last_load_error"] == ""
    assert "model swapped" in log.read_text()


def test_bench_times_the_openvino_variants_naming_device_and_precision(trained_onnx):
    from grasp_success_ros.bench.measure import bench_forward
    from grasp_success_ros.bench.results import Variant

    for precision in ("fp32", "bf16") if CPU_BF16 else ("fp32",):
        row = bench_forward(Path(trained_onnx.path), runs=2, batch=2,
                            variant=Variant("openvino", precision))
        assert row.device == f"openvino:CPU {precision}"
        assert row.batch(2).n == 2 and row.batch(1).p50 > 0
