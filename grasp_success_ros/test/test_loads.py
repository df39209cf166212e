"""One model load in flight (core/loads.py): the node's model swaps go through it."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest

from grasp_success_ros.core.errors import ModelLoadError
from grasp_success_ros.core.loads import OneLoad


class Model:
    """Stands for a loaded model: only its lifetime matters here."""


def wait_for(late: list, timeout_s: float = 2.0) -> None:
    """Until the timed-out load has reported its end (or the timeout passes)."""
    for _ in range(int(timeout_s / 0.01)):
        if late:
            return
        threading.Event().wait(0.01)


def test_a_load_returns_its_model_and_frees_the_slot():
    loads = OneLoad()
    model = loads.run(Model, "a.onnx", timeout_s=5.0)
    assert isinstance(model, Model) and loads.busy is None


def test_a_load_that_raises_raises_to_its_caller_and_frees_the_slot():
    loads = OneLoad()

    def broken():
        raise ValueError("not a model")

    with pytest.raises(ValueError, match="not a model"):
        loads.run(broken, "bad.onnx", timeout_s=5.0)
    assert loads.busy is None


def test_a_second_load_is_refused_while_a_timed_out_one_runs_on():
    release, late = threading.Event(), []
    loads = OneLoad(on_late=late.append)
    with pytest.raises(ModelLoadError, match="took over"):
        loads.run(lambda: release.wait() and Model(), "slow.onnx", timeout_s=0.05)
    with pytest.raises(ModelLoadError, match=r"in flight \(slow.onnx"):
        loads.run(Model, "next.onnx", timeout_s=5.0)
    release.set()
    wait_for(late)
    assert late and "slow.onnx" in late[0] and "dropped" in late[0]
    assert isinstance(loads.run(Model, "next.onnx", timeout_s=5.0), Model)


def test_the_model_of_a_timed_out_load_is_released_when_it_ends():
    release, refs, late = threading.Event(), [], []

    def slow():
        release.wait()
        model = Model()
        refs.append(weakref.ref(model))
        return model

    loads = OneLoad(on_late=late.append)
    with pytest.raises(ModelLoadError):
        loads.run(slow, "slow.onnx", timeout_s=0.05)
    release.set()
    wait_for(late)
    gc.collect()
    assert refs and refs[0]() is None
