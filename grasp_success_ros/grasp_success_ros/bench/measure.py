"""The measurements made in this process or a child of it: the bare forward pass, the seed's
``model.predict``, ``grasp-success predict``, offline ``bag-eval`` and every variant's
accuracy."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from grasp_success_ros.bench.results import (
    AccuracyRow,
    BagEvalRun,
    ForwardResult,
    ProcessRun,
    SeedPredict,
    Stats,
    Variant,
)
from grasp_success_ros.bench.system import run_measured


def once_ms(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def time_ms(fn: Callable[[], object], runs: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    return [once_ms(fn) for _ in range(runs)]


def runtime_choice(variant: Variant, device: str = "CPU"):
    """The OnnxRuntimeChoice of a bench variant: OpenVINO for the ``openvino`` runtime (on
    ``device``, at the variant's precision), else None (ONNX Runtime for .onnx files)."""
    from grasp_success_ros.core.params import OnnxRuntimeChoice

    if variant.runtime != "openvino":
        return None
    return OnnxRuntimeChoice("openvino", device, variant.precision)


def onnx_providers(path: Path, providers: tuple[str, ...]) -> tuple[str, ...]:
    """The ONNX Runtime providers for an .onnx file; none for the other runtimes."""
    return providers if Path(path).suffix == ".onnx" else ()


def classifier(path: Path, variant: Variant | None = None, providers: tuple[str, ...] = (),
               device: str = "CPU"):
    """The classifier of one bench variant, on ONNX Runtime's ``providers`` or OpenVINO."""
    from grasp_success_ros.model.classifier import GraspClassifier

    choice = None if variant is None else runtime_choice(variant, device)
    return GraspClassifier.from_path(path, providers=onnx_providers(path, providers),
                                     onnx_runtime=choice)[0]


def bench_forward(path: Path, runs: int, batch: int, providers: tuple[str, ...] = (),
                  variant: Variant | None = None, device: str = "CPU") -> ForwardResult:
    """Load time, then batch 1 and batch ``batch`` timed ``runs`` times after warm-up."""
    t = time.perf_counter()
    clf = classifier(path, variant, providers, device)
    load_s = time.perf_counter() - t
    size = clf.input_size
    rng = np.random.default_rng(0)
    batches = {}
    for n in (1, batch):
        x = rng.random((n, size, size, 3), dtype=np.float32)
        batches[n] = Stats.of(time_ms(lambda x=x: clf.predict_prepared(x), runs))
    return ForwardResult(load_s=load_s, device=clf.device, batches=batches)


def bench_seed_predict(path: Path, runs: int, workdir: Path) -> SeedPredict:
    """The seed's predict.py: load the image, resize, RGB, /255, expand_dims, model.predict."""
    import cv2

    from grasp_success_ros.data.synth import render_scene
    from grasp_success_ros.model.loading import load_model

    model = load_model(path).model
    size = int(model.inputs[0].shape[1])
    image = workdir / "seed_image.jpg"
    cv2.imwrite(str(image), render_scene(np.random.default_rng(0), True, 480, 640)[..., ::-1])

    def seed_way():
        img = cv2.imread(str(image))
        img = cv2.resize(img, (size, size))
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype("float32") / 255.0
        return model.predict(np.expand_dims(img, axis=0), verbose=0)

    x = np.zeros((1, size, size, 3), np.float32)
    return SeedPredict(
        with_image_load=Stats.of(time_ms(seed_way, runs)),
        predict_only=Stats.of(time_ms(lambda: model.predict(x, verbose=0), runs)))


def bench_predict_process(path: Path, workdir: Path) -> ProcessRun:
    """``grasp-success predict`` on one image as its own process: wall time, peak RSS."""
    image = workdir / "seed_image.jpg"
    cmd = [sys.executable, "-m", "grasp_success_ros", "predict", str(image), str(path), "--json"]
    return run_measured(cmd, workdir / "predict.log")


def bench_bag_eval(path: Path, workdir: Path, grasps: int = 20,
                   providers: tuple[str, ...] = (), variant: Variant | None = None,
                   device: str = "CPU") -> dict[str, BagEvalRun]:
    """Offline ``bag-eval`` on a synthetic 640x480 session: events and frames per second,
    first_after (one frame per event) and n_after (five)."""
    from grasp_success_ros.bags.evaluate import evaluate_bag
    from grasp_success_ros.bags.writer import write_session
    from grasp_success_ros.core.params import NodeConfig

    bag = workdir / "bench_session"
    if not bag.exists():
        write_session(bag, n_grasps=grasps, seed=3, height=480, width=640)
    clf = classifier(path, variant, providers, device)
    out = {}
    for policy_name in ("first_after", "n_after"):
        policy = NodeConfig.from_values({"model_path": str(path),
                                         "frame_selection": policy_name}).policy(
            clf.card.threshold, clf.card.threshold_failure)
        t = time.perf_counter()
        results, _ = evaluate_bag(bag, clf, policy)
        wall = time.perf_counter() - t
        judged = sum(len(r.record.frame_stamps) for r in results)
        out[policy_name] = BagEvalRun(events=len(results), frames_judged=judged, wall_s=wall,
                                      events_per_s=len(results) / wall,
                                      frames_per_s=judged / wall)
    return out


def bench_accuracy(paths: dict[str, Path], variants: dict[str, Variant], data: str | Path,
                   providers: tuple[str, ...] = (), device: str = "CPU"
                   ) -> dict[str, AccuracyRow]:
    """Accuracy of every variant on the same labelled folders (the quantization cost)."""
    from grasp_success_ros.evaluation.evaluate import evaluate_folder

    rows, p_success = {}, {}
    for name, path in paths.items():
        ev = evaluate_folder(data, classifier(path, variants[name], providers, device))
        rows[name] = AccuracyRow(accuracy=ev.metrics()["accuracy"], images=len(ev.truth))
        p_success[name] = ev.p_success
    reference = rows.get("keras")
    if reference is not None:
        for name, row in rows.items():
            row.accuracy_change_points = 100.0 * (row.accuracy - reference.accuracy)
            row.max_abs_dp_vs_keras = float(np.max(np.abs(p_success[name]
                                                          - p_success["keras"])))
    return rows
