"""Which ONNX Runtime execution providers run an .onnx model: the choice is a pure function
of what is asked for and what this onnxruntime build offers, so it is tested here without
a GPU (the CI has none)."""

from __future__ import annotations

import pytest

from grasp_success_ros.core.errors import ConfigError, ModelLoadError
from grasp_success_ros.core.params import NodeConfig, parse_providers
from grasp_success_ros.model.runtimes import choose_providers

TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
GPU_BUILD = [TRT, CUDA, "AzureExecutionProvider", CPU]  # onnxruntime-gpu's order


def test_by_default_the_best_available_provider_comes_first():
    assert choose_providers((), GPU_BUILD) == [TRT, CUDA, CPU]
    assert choose_providers(None, [CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers((), ["AzureExecutionProvider", CPU]) == [CPU]


def test_requested_providers_are_used_in_their_order_by_short_or_full_name():
    assert choose_providers(["cuda", TRT], GPU_BUILD) == [CUDA, TRT, CPU]


def test_cpu_is_always_the_last_fallback():
    assert choose_providers(["cpu", "cuda"], GPU_BUILD) == [CUDA, CPU]
    assert choose_providers(["tensorrt"], GPU_BUILD) == [TRT, CPU]


def test_an_unavailable_provider_is_refused_naming_the_available_ones():
    with pytest.raises(ModelLoadError) as err:
        choose_providers(["cuda"], ["AzureExecutionProvider", CPU])
    assert f"{CUDA} not available here; available: AzureExecutionProvider, {CPU}" in str(err.value)


def test_the_node_parameter_takes_a_comma_string_or_a_list():
    assert NodeConfig.from_values({"model_path": "m.onnx", "onnx_providers": " cuda, cpu"}
                                  ).providers == ("cuda", "cpu")
    assert NodeConfig.from_values({"model_path": "m.onnx", "onnx_providers": ["tensorrt"]}
                                  ).providers == ("tensorrt",)
    assert NodeConfig.from_values({"model_path": "m.onnx"}).providers == ()


@pytest.mark.parametrize("value", ["cuda,,cpu", "cuda,cuda", ","])
def test_an_empty_or_repeated_provider_name_is_a_config_error(value):
    with pytest.raises(ConfigError, match="distinct comma-separated names"):
        NodeConfig.from_values({"model_path": "m.onnx", "onnx_providers": value})
    with pytest.raises(ConfigError):
        parse_providers(value)


def test_onnx_sessions_use_one_thread_per_usable_core_spinning_only_within_a_run():
    import os

    import onnxruntime as ort

    from grasp_success_ros.model.runtimes import session_options

    options = session_options(ort)
    assert options.intra_op_num_threads == len(os.sched_getaffinity(0))
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"
    assert session_options(ort, threads=1).intra_op_num_threads == 1


def _matmul_chain(path):
    """An ONNX model of four 256x256 MatMuls: enough work for ONNX Runtime's thread pool."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.eye(256, dtype=np.float32), "w")
    nodes = [helper.make_node("MatMul", [f"x{i}", "w"], [f"x{i + 1}"]) for i in range(4)]
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x0", TensorProto.FLOAT, [256, 256])],
        [helper.make_tensor_value_info("x4", TensorProto.FLOAT, [256, 256])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)


def _cpu_s_after_runs(ort, model: str, options) -> float:
    """This process's CPU seconds in the 0.2 s after a run, the median of five runs."""
    import statistics
    import time

    import numpy as np

    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    x = np.ones((256, 256), np.float32)
    session.run(None, {"x0": x})
    used = []
    for _ in range(5):
        session.run(None, {"x0": x})
        before = time.process_time()  # all of this process's threads
        time.sleep(0.2)
        used.append(time.process_time() - before)
    return statistics.median(used)


def test_onnx_threads_stop_spinning_when_a_run_ends(tmp_path):
    import onnxruntime as ort

    from grasp_success_ros.model.runtimes import session_options

    model = _matmul_chain(tmp_path / "chain.onnx")
    left_spinning = session_options(ort, threads=2)
    left_spinning.add_session_config_entry("session.force_spinning_stop", "0")
    assert _cpu_s_after_runs(ort, model, left_spinning) >= 0.01  # the pool spins on
    assert _cpu_s_after_runs(ort, model, session_options(ort, threads=2)) < 0.005
