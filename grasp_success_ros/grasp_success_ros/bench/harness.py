"""A whole bench run, everything measured in one run on one machine, so the ratios (node
latency over bare forward pass, over the seed's ``model.predict``, 5 frames over 1 frame)
mean something even on a busy machine where the absolute numbers are noisy:

1. bare forward latency (batch 1 and batch N) for each runtime (Keras ``tf.function``,
   ONNX Runtime, LiteRT, OpenVINO on the ONNX file);
2. the seed's way: load / resize / RGB / 255, ``np.expand_dims``, ``model.predict``;
3. event-to-verdict latency through the live node over DDS (its own process), camera at
   30 Hz, single-frame (``first_after``) and 5-frame (``n_after``) policies;
4. time from process start to lifecycle state ``active``;
5. the node's peak resident memory (``VmHWM``), and that of ``predict`` and of each export,
   each run as its own process, with the model's load time;
6. offline ``bag-eval`` throughput on a synthetic 640x480 session.

Beside each node configuration the bench records how much CPU other processes took while it
ran: on a shared machine that, not the node, is what moves event-to-verdict between runs.

With ``--quantize`` the fp16 / int8 exports (and the bf16 Keras and OpenVINO variants) are
measured beside FP32 (forward, node), and with ``--accuracy-data`` every variant's accuracy
on the same labelled images (the quantization cost). The best FP32 speed is stated in GFLOP/s
and as the clock at which it is the peak.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from grasp_success_ros.bench.config import BenchConfig, resolution_label
from grasp_success_ros.bench.measure import (
    bench_accuracy,
    bench_bag_eval,
    bench_forward,
    bench_predict_process,
    bench_seed_predict,
)
from grasp_success_ros.bench.models import prepare_models
from grasp_success_ros.bench.results import BenchReport, ConfigRecord, Variant, p50
from grasp_success_ros.bench.summary import summarise
from grasp_success_ros.bench.system import machine_info
from grasp_success_ros.bench.table import show


def config_record(cfg: BenchConfig) -> ConfigRecord:
    """The run's settings as the report states them."""
    return ConfigRecord(
        model=cfg.model or f"{cfg.backbone} {cfg.input_size} px, GAP head, random weights",
        runtimes=list(cfg.runtimes), providers=list(cfg.providers),
        openvino_device=cfg.openvino_device, runs=cfg.runs, batch=cfg.batch,
        events_per_config=cfg.events, fps=cfg.fps, cameras=cfg.cameras,
        resolutions=[resolution_label(r) for r in cfg.resolutions])


def run_bench(cfg: BenchConfig) -> BenchReport:
    """Prepare the models, then measure: forward passes, bag-eval, accuracy, the seed's
    predict, the live node; the summary last."""
    from grasp_success_ros.core.errors import ConfigError
    from grasp_success_ros.model.runtimes import RUNTIMES

    for r in cfg.runtimes:
        if r not in RUNTIMES:
            raise ConfigError(f"runtime must be one of {RUNTIMES}, not {r!r}")
    report = BenchReport(machine=machine_info(), config=config_record(cfg))
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="grasp_bench_") as tmp:
        workdir = Path(tmp)
        paths = prepare_models(cfg, workdir, report.export)
        report.variants = {v.name: v for v in paths}
        timed = _timed_variants(cfg, paths)
        chosen = timed[0]
        _measure_in_process(report, cfg, paths, timed, workdir)
        if cfg.dds:
            _measure_node(report, cfg, paths, timed, workdir)
    report.wall_s = time.monotonic() - t_start
    report.summary = summarise(report, chosen.name, cfg)
    return report


def _timed_variants(cfg: BenchConfig, paths: dict[Variant, Path]) -> list[Variant]:
    """The runtimes asked for, in order (the first is the headline one), then the quantized
    variants of them."""
    from grasp_success_ros.core.errors import ConfigError

    runtimes = [Variant(r) for r in cfg.runtimes if Variant(r) in paths]
    if not runtimes:
        raise ConfigError(f"{cfg.model} runs only in the "
                          f"{', '.join(v.name for v in paths)} runtime; "
                          f"pass --runtime {', '.join(v.name for v in paths)}")
    return runtimes + [v for v in paths if v.quantized and v not in runtimes]


def _measure_in_process(report: BenchReport, cfg: BenchConfig, paths: dict[Variant, Path],
                        timed: list[Variant], workdir: Path) -> None:
    """Forward passes of every variant, bag-eval and accuracy, the seed's way."""
    chosen = timed[0]
    for v in timed:
        f = report.forward[v.name] = bench_forward(paths[v], cfg.runs, cfg.batch, cfg.providers,
                                                   v, cfg.openvino_device)
        cfg.log(f"forward {v.name:11s} on {f.device}: load {f.load_s:.1f} s, batch 1 p50 "
                f"{show(p50(f.batch(1)))} ms, batch {cfg.batch} p50 "
                f"{show(p50(f.batch(cfg.batch)))} ms")
    report.bag_eval = bench_bag_eval(paths[chosen], workdir, providers=cfg.providers,
                                     variant=chosen, device=cfg.openvino_device)
    for policy, row in report.bag_eval.items():
        cfg.log(f"bag-eval {chosen.name} {policy}: {row.frames_per_s:.1f} frames/s, "
                f"{row.events_per_s:.1f} events/s ({row.events} events, 640x480)")
    if cfg.accuracy_data:
        report.accuracy = bench_accuracy({v.name: p for v, p in paths.items()},
                                         report.variants, cfg.accuracy_data, cfg.providers,
                                         cfg.openvino_device)
        for name, row in report.accuracy.items():
            cfg.log(f"accuracy {name:11s}: {row.accuracy:.4f} on {row.images} images")
    keras = paths.get(Variant("keras"))
    if keras is not None:
        report.seed_predict_ms = bench_seed_predict(keras, cfg.runs, workdir)
        cfg.log(f"seed model.predict: p50 {show(report.seed_predict_ms.with_image_load.p50)}"
                " ms")
        report.predict_process = bench_predict_process(keras, workdir)
        cfg.log(f"grasp-success predict (own process): {report.predict_process.wall_s:.1f} s,"
                f" peak RSS {show(report.predict_process.peak_rss_mb, 0)} MB")


def _measure_node(report: BenchReport, cfg: BenchConfig, paths: dict[Variant, Path],
                  timed: list[Variant], workdir: Path) -> None:
    """The live node over DDS: every timed variant, quantized ones included (which one to
    deploy is decided by the node's latency, not by the bare forward pass alone), then the
    first runtime with ``cfg.cameras`` cameras."""
    from grasp_success_ros.bench.node_run import bench_cameras, bench_node_policies, dds_session

    with dds_session(cfg) as (namespace, frames):
        report.node = {v.name: bench_node_policies(paths[v], cfg, workdir, namespace, frames, v)
                       for v in timed}
        if cfg.cameras > 1:
            report.cameras = bench_cameras(paths[timed[0]], cfg, workdir, namespace,
                                           frames[cfg.resolutions[0]])
