"""The model files benched: ``--model`` (its card checked first) or a fresh random-weight
model, and its exports, each export run as its own process."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from grasp_success_ros.bench.config import BenchConfig
from grasp_success_ros.bench.results import ProcessRun, Variant
from grasp_success_ros.bench.system import run_measured
from grasp_success_ros.bench.table import show


def prepare_models(cfg: BenchConfig, workdir: Path,
                   exports: dict[str, ProcessRun] | None = None) -> dict[Variant, Path]:
    """The model file of each variant (a fresh random-weight model without --model); each
    export runs as its own process, its wall time and peak RSS go into ``exports``."""
    from grasp_success_ros.model.runtimes import runtime_for

    exports = {} if exports is None else exports
    if cfg.model:
        path = checked_model(Path(cfg.model).expanduser(), cfg, workdir)
        kind = runtime_for(path)
        if kind == "onnx" and "openvino" in cfg.runtimes:  # the file as it is, its card's
            return {Variant("onnx"): path, **_openvino_variants(path, cfg)}  # bf16 parity
        if kind != "keras":
            return {Variant(kind): path}
    else:
        path = _random_model(cfg, workdir)
    paths = {Variant("keras"): path, **_exports(path, cfg, workdir, exports)}
    if "openvino" in cfg.runtimes:
        openvino = _openvino_variants(paths[Variant("onnx")], cfg)
        paths.update(openvino)
        exports.update({v.name: exports["onnx"] for v in openvino})
        if "onnx" not in cfg.runtimes:
            del paths[Variant("onnx")]
    return paths


def _random_model(cfg: BenchConfig, workdir: Path) -> Path:
    """The configured backbone with the GAP head and random weights, saved with its card."""
    from grasp_success_ros.model.builder import build_model
    from grasp_success_ros.model.loading import save_model

    t = time.perf_counter()
    model, card = build_model(cfg.backbone, cfg.input_size, head="gap", weights=None)
    path = workdir / f"bench_{cfg.backbone}_{cfg.input_size}.keras"
    save_model(model, path, card)
    cfg.log(f"built {cfg.backbone} at {cfg.input_size} px (GAP head, random weights) in "
            f"{time.perf_counter() - t:.1f} s: {path}")
    return path


def _exports(path: Path, cfg: BenchConfig, workdir: Path,
             exports: dict[str, ProcessRun]) -> dict[Variant, Path]:
    """Every export of the Keras model the runtimes and ``--quantize`` ask for (the ONNX one
    also for OpenVINO, which runs it)."""
    from grasp_success_ros.model.export import QUANTIZATIONS_OF

    formats = [f for f in cfg.runtimes if f != "openvino"]
    if "openvino" in cfg.runtimes and "onnx" not in formats:
        formats.append("onnx")
    paths = {}
    for fmt in formats:
        if fmt != "keras":
            paths[Variant(fmt)] = workdir / f"{path.stem}.{fmt}"
            exports[fmt] = _export_process(path, fmt, None, paths[Variant(fmt)], cfg, workdir)
        for q in (q for q in cfg.quantize if q in QUANTIZATIONS_OF[fmt] and fmt in cfg.runtimes):
            variant = Variant(fmt, q)
            paths[variant] = workdir / f"{path.stem}.{q}.{fmt}"
            exports[variant.name] = _export_process(path, fmt, q, paths[variant], cfg, workdir)
    return paths


def checked_model(path: Path, cfg: BenchConfig, workdir: Path) -> Path:
    """``--model`` with its card checked before minutes of benchmarking; a mismatch the
    user accepted is benched from a copy in ``workdir`` whose card records it, so every later
    load (exports, the node, predict in its own process) serves the same file."""
    import shutil

    from grasp_success_ros.model.card import ModelCard, card_path_for
    from grasp_success_ros.model.digest import check_card, matches, recorded

    card_path = card_path_for(path)
    if not path.is_file() or not card_path.is_file():
        return path  # the loaders say what is missing
    card = ModelCard.load(card_path)
    for note in check_card(card, card_path, [path], cfg.accept_card_mismatch):
        cfg.log(f"note: {note}")
    if not card.files or matches(card, path):
        return path
    copy = workdir / path.name
    shutil.copy(path, copy)
    recorded(card, [copy], keep=False).save(card_path_for(copy))
    cfg.log(f"benching a copy of {path} with its card bound to it: {copy}")
    return copy


def _openvino_variants(onnx: Path, cfg: BenchConfig) -> dict[Variant, Path]:
    """``openvino`` (FP32) and, with ``--quantize bf16``, ``openvino-bf16``: the ONNX file
    run by OpenVINO (``measure.runtime_choice``)."""
    variants = {Variant("openvino"): onnx}
    if "bf16" in cfg.quantize:
        variants[Variant("openvino", "bf16")] = onnx
    return variants


def _export_process(path: Path, fmt: str, quantize: str | None, out: Path, cfg: BenchConfig,
                    workdir: Path) -> ProcessRun:
    """``grasp-success export`` as its own process (its peak is the export's alone); int8
    calibrates on --calibration, else on synthetic scenes (never on the accuracy set, so the
    accuracy cost is measured on images it has not seen)."""
    cmd = [sys.executable, "-m", "grasp_success_ros", "export", str(path), "--format", fmt,
           "--out", str(out)]
    if quantize:
        calibration = _calibration_dir(cfg, workdir)
        cmd += ["--quantize", quantize, "--calibration", str(calibration),
                "--samples", str(calibration)]
    elif fmt == "onnx" and "openvino" in cfg.runtimes and "bf16" in cfg.quantize:
        cmd += ["--check-openvino", "bf16", "--samples", str(_calibration_dir(cfg, workdir))]
    name = Variant(fmt, quantize or "fp32").name
    row = run_measured(cmd, workdir / f"export_{name}.log")
    cfg.log(f"exported to {name} in {row.wall_s:.1f} s, peak RSS {show(row.peak_rss_mb, 0)} MB")
    return row


def _calibration_dir(cfg: BenchConfig, workdir: Path) -> Path:
    """--calibration, else 64 synthetic scenes (int8 calibration, bf16 parity samples)."""
    if cfg.calibration is not None:
        return Path(cfg.calibration)
    from grasp_success_ros.data.synth import write_dataset

    calibration = workdir / "calibration"
    if not calibration.is_dir():
        write_dataset(calibration, 64, seed=5)
    return calibration
