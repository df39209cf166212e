"""Exporting a Keras grasp classifier to ONNX or TFLite, with its card and a parity check.

``m.keras`` -> ``m.onnx`` / ``m.tflite`` (``m.fp16.tflite``, ``m.int8.onnx`` ... when
quantized), each with its card beside it; ``m.bf16.keras`` is the Keras model computing in
bfloat16 (oneDNN's bf16 kernels on CPUs with AVX-512 BF16 or AMX, weights kept in float32).
The exported model takes the same float32 batch as the Keras model (the card's
preprocessing is applied outside the model), and its outputs
are compared with the Keras model's on sample inputs: the largest difference is reported
and written into the card.  With ``check_openvino="bf16"`` an ONNX export is also run in
OpenVINO bf16 against OpenVINO FP32 on the same inputs, and that record goes into its card
(the openvino runtime serves bf16 only with it).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from grasp_success_ros.core.errors import (
    ConfigError,
    DatasetError,
    GraspSuccessError,
    ModelCardError,
)
from grasp_success_ros.core.policy import is_success
from grasp_success_ros.data.atomic import atomic_pair, atomic_path
from grasp_success_ros.data.folders import image_files, read_resized
from grasp_success_ros.data.preprocessing import to_model_input
from grasp_success_ros.model.card import ModelCard, card_path_for
from grasp_success_ros.model.digest import check_card, file_digest, matches, recorded
from grasp_success_ros.model.forward import compiled_forward
from grasp_success_ros.model.loading import load_model
from grasp_success_ros.model.memory import check_export_memory
from grasp_success_ros.model.onnx_convert import convert_to_onnx
from grasp_success_ros.model.runtimes import PARITY_KEY, open_exported, openvino_parity

FORMATS = ("onnx", "tflite", "keras")
QUANTIZATIONS = ("fp16", "int8", "bf16")
# Which quantizations each format takes: a Keras "export" is only ever its bf16 variant.
QUANTIZATIONS_OF = {"onnx": (None, "fp16", "int8"), "tflite": (None, "fp16", "int8"),
                    "keras": ("bf16",)}
MAX_CALIBRATION_IMAGES = 200


def _load_checked(path: Path, allow_custom_code: bool):
    """``load_model`` for a file whose card ``export_model`` has checked already (or the
    card it has just written): the source is judged once, with the caller's choice."""
    return load_model(path, allow_custom_code=allow_custom_code, accept_card_mismatch=True)


def _check_source(source: Path, accept_card_mismatch: bool, log: Callable[[str], None]) -> None:
    """The source's card against the source (a seed .h5 may have none), before any work."""
    card_path = card_path_for(source)
    if source.is_file() and card_path.is_file():
        for note in check_card(ModelCard.load(card_path), card_path, [source],
                               accept_card_mismatch):
            log(f"note: {note}")


class ExportError(GraspSuccessError):
    """A model cannot be exported in the requested format."""


@dataclass
class ExportResult:
    """What was written and how closely it matches the Keras model."""

    path: str
    card_path: str
    format: str
    quantize: str | None
    size_bytes: int
    keras_size_bytes: int
    samples: int
    max_abs_diff: float
    verdicts_agree: int
    keras_ms: float
    exported_ms: float
    openvino_bf16: dict | None = None  # OpenVINO bf16 vs FP32 parity (check_openvino)

    def summary(self) -> str:
        q = f" ({self.quantize})" if self.quantize else ""
        ov = self.openvino_bf16
        return (f"wrote {self.path}{q}, {self.size_bytes / 1e6:.2f} MB (Keras "
                f"{self.keras_size_bytes / 1e6:.2f} MB) and {self.card_path}\n"
                f"parity on {self.samples} sample inputs: largest |P(success) difference| "
                f"{self.max_abs_diff:.2e}, {self.verdicts_agree} of {self.samples} verdicts "
                f"agree\nper image (batch 1): Keras {self.keras_ms:.1f} ms, {self.format}"
                f"{q} {self.exported_ms:.1f} ms" + ("" if ov is None else
                f"\nOpenVINO bf16 vs FP32 on {ov['samples']} inputs: largest |P(success) "
                f"difference| {ov['max_abs_diff']:.2e}, {ov['verdict_flips']} verdict(s) "
                f"flipped of {ov['counted']} more than {ov['flip_margin']} from the "
                f"threshold (written into the card)"))


def default_output(model_path: str | Path, fmt: str, quantize: str | None) -> Path:
    model_path = Path(model_path)
    middle = f".{quantize}" if quantize else ""
    return model_path.with_name(f"{model_path.stem}{middle}.{fmt}")


def sample_batch(folder: str | Path | None, card: ModelCard, limit: int = MAX_CALIBRATION_IMAGES,
                 random_images: int = 8, seed: int = 0) -> np.ndarray:
    """Model inputs from the images under ``folder`` (recursively; class folders or not),
    plus a few random images, through the one preprocessing path."""
    frames = []
    if folder is not None:
        folder = Path(folder)
        if not folder.is_dir():
            raise DatasetError(f"folder not found: {folder}")
        files = image_files(folder)
        if not files:
            raise DatasetError(f"no images under {folder}")
        step = max(1, len(files) // limit)
        for path in files[::step][:limit]:
            image = read_resized(path, card.input_size, card.preprocessing)
            if image is not None:
                frames.append(image)
    rng = np.random.default_rng(seed)
    size = card.input_size
    frames += [rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
               for _ in range(random_images)]
    return to_model_input(np.stack(frames), card.preprocessing)


def _export_onnx(box: list, path: Path, quantize: str | None,
                 calibration: np.ndarray | None) -> None:
    for name in ("tf2onnx", "onnx", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            raise ExportError(f"ONNX export needs the {name} package (pip install {name})") \
                from None
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "model.onnx" if quantize else path
        try:
            with warnings.catch_warnings():  # tf2onnx's NumPy deprecation warnings
                warnings.simplefilter("ignore", FutureWarning)
                convert_to_onnx(box, plain)
        except Exception as exc:  # tf2onnx raises many kinds
            raise ExportError(f"ONNX export failed: {type(exc).__name__}: {exc}") from None
        if quantize == "fp16":
            import onnx
            from onnxruntime.transformers.float16 import convert_float_to_float16

            onnx.save(convert_float_to_float16(onnx.load(str(plain)), keep_io_types=True),
                      str(path))
        elif quantize == "int8":
            _onnx_int8(plain, path, calibration, Path(tmp))


def _onnx_int8(plain: Path, path: Path, calibration: np.ndarray, tmp: Path) -> None:
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = ort.InferenceSession(str(plain), providers=["CPUExecutionProvider"]) \
        .get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calibration[i:i + 1] for i in range(len(calibration)))

        def get_next(self):
            item = next(self.items, None)
            return None if item is None else {name: item}

    prepped = tmp / "prepped.onnx"
    try:
        quant_pre_process(str(plain), str(prepped), skip_symbolic_shape=True)
    except Exception:  # pre-processing only helps; quantize the plain model without it
        prepped = plain
    quantize_static(str(prepped), str(path), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True)


def _in_own_process(fn: Callable, *args):
    """``fn(*args)`` in a fresh (spawned) Python process: what a step allocates -- the Keras
    model, TensorFlow's copies of the weights, pages the allocator keeps -- goes back to the
    system when that process exits, so the next step starts without it."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(fn, *args).result()
        except BrokenProcessPool:
            raise ExportError(f"the process running {fn.__name__.strip('_')} died (out of "
                              "memory?)") from None


def _write_saved_model(source: Path, allow_custom_code: bool, saved: Path) -> ModelCard:
    """Load the Keras model and write it as a SavedModel with one endpoint,
    ``serving_default``; returns its card.  Runs in its own process (``_export_tflite``).

    Not ``model.export``: it stores every weight twice (the Keras variable and the
    ``tf.Variable`` it wraps, keras-team/keras#23553), and the converter would restore
    both; nor does it print "Saved artifact at ..." (hushing that would mean swapping the
    process-wide ``sys.stdout``)."""
    import tensorflow as tf

    loaded = _load_checked(source, allow_custom_code)
    model, size = loaded.model, loaded.card.input_size
    module = tf.Module()
    module.weights_once = [getattr(v, "value", v) for v in model.variables]
    module.serve = tf.function(lambda x: model(x, training=False),
                               input_signature=[tf.TensorSpec((None, size, size, 3), tf.float32)])
    try:
        tf.saved_model.save(module, str(saved),
                            signatures={"serving_default": module.serve.get_concrete_function()})
    except Exception as exc:  # tracing and saving raise many kinds
        raise ExportError(f"TFLite conversion failed: {type(exc).__name__}: {exc}") from None
    return loaded.card


def _convert_saved_model(saved: Path, path: Path, quantize: str | None,
                         calibration: Path | None, calibrate_only: bool = False) -> bool:
    """SavedModel -> ``path`` (.tflite); runs in its own process (``_export_tflite``).

    With ``calibrate_only`` (int8) and a TensorFlow that allows it, ``path`` gets the float
    model with the calibration's value ranges in it, for ``_quantize_calibrated``; returns
    whether it did (else ``path`` is the converter's own quantized model)."""
    import tensorflow as tf

    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        _quantize_tflite(converter, quantize,
                         None if calibration is None else np.load(calibration, mmap_mode="r"))
        apart = calibrate_only and _can_quantize_apart(converter)
        if apart:
            converter._experimental_calibrate_only = True  # see _can_quantize_apart
        path.write_bytes(converter.convert())
    except Exception as exc:  # the converter raises ConverterError and others
        raise ExportError(f"TFLite conversion failed: {type(exc).__name__}: {exc}") from None
    return apart


def _can_quantize_apart(converter) -> bool:
    """Whether this TensorFlow has what ``_tflite_int8`` uses to calibrate and quantize in
    separate processes: private API (the public converter does both in one call, with no way
    to let go of the calibrator between them; TF's own QuantizationDebugger calibrates and
    quantizes apart the same way), checked on TF 2.21 (requirements.txt pins 2.21.*) and
    looked for here by name so that another version falls back to one call."""
    import inspect

    try:
        from tensorflow.lite.python import convert
    except ImportError:
        return False
    quantize = getattr(convert, "mlir_quantize", None)
    wanted = {"disable_per_channel", "input_data_type", "output_data_type"}
    return (getattr(converter, "_experimental_calibrate_only", None) is False
            and getattr(converter, "experimental_new_quantizer", False) is True
            and hasattr(convert, "deduplicate_readonly_buffers") and quantize is not None
            and wanted <= set(inspect.signature(quantize).parameters))


def _quantize_calibrated(calibrated: Path, path: Path) -> None:
    """The calibrated float model -> the int8 ``path``, as the converter's ``_quantize``
    and ``_optimize_tflite_model`` finish it (TF 2.21): ``mlir_quantize`` with the
    converter's defaults (per-channel, float32 input and output), then deduplication of
    the read-only buffers.  Runs in its own process (``_tflite_int8``)."""
    import tensorflow as tf
    from tensorflow.lite.python.convert import deduplicate_readonly_buffers, mlir_quantize

    try:
        model = mlir_quantize(calibrated.read_bytes(), disable_per_channel=False,
                              input_data_type=tf.float32, output_data_type=tf.float32)
        path.write_bytes(deduplicate_readonly_buffers(model))
    except Exception as exc:  # the quantizer raises several kinds
        raise ExportError(f"TFLite int8 quantization failed: {type(exc).__name__}: {exc}") \
            from None


def _tflite_int8(saved: Path, path: Path, calibration: Path, tmp: Path,
                 log: Callable[[str], None]) -> None:
    """Calibrate in one process and quantize in the next: in one ``convert()`` the converter
    keeps its float model, the calibrator (an interpreter holding every tensor) and the
    calibrated model alive while its MLIR quantizer runs (9.9 GB for the seed's 815 MB
    model, 7.5 GB apart; BENCHMARKS.md, "Memory").  The model is the converter's own but for its
    conversion metadata, which records the calibrated model's structure hash."""
    calibrated = tmp / "calibrated.tflite"
    if _in_own_process(_convert_saved_model, saved, calibrated, "int8", calibration, True):
        _in_own_process(_quantize_calibrated, calibrated, path)
        return
    log("this TensorFlow cannot calibrate and quantize apart: quantized in one step, which "
        "needs more memory")
    shutil.move(calibrated, path)


def _export_tflite(source: Path, path: Path, quantize: str | None,
                   calibration: Callable[[ModelCard], np.ndarray | None],
                   allow_custom_code: bool, log: Callable[[str], None]) -> ModelCard:
    """Keras -> SavedModel -> TFLite (int8: calibrated, then quantized), each step in a
    process of its own: the converter holds about four copies of the weights, and neither
    the Keras model nor what TensorFlow keeps after writing the SavedModel (1.7 GB for the
    seed's 815 MB model) is held beside them.  The caller never loads the model; returns
    its card."""
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "saved_model"
        card = _in_own_process(_write_saved_model, source, allow_custom_code, saved)
        batch = calibration(card)
        if batch is not None:
            np.save(Path(tmp) / "calibration.npy", batch)
        log(f"exporting {source} to tflite{f' ({quantize})' if quantize else ''} ...")
        if quantize == "int8":
            _tflite_int8(saved, path, Path(tmp) / "calibration.npy", Path(tmp), log)
        else:
            _in_own_process(_convert_saved_model, saved, path, quantize, None)
    return card


def _export_keras_bf16(source: Path, path: Path, card_path: Path | None,
                       allow_custom_code: bool,
                       log: Callable[[str], None]) -> ModelCard:
    """The model rebuilt with every float32 layer but its outputs on the ``mixed_bfloat16``
    policy (bf16 compute, float32 weights; the outputs stay float32, as Keras' mixed
    precision guide advises, so P(success) keeps its resolution), weights copied over."""
    loaded = _load_checked(source, allow_custom_code)
    log(f"exporting {source} to keras (bf16) ...")
    config = loaded.model.get_config()
    outputs = config["output_layers"]
    outputs = {outputs[0]} if isinstance(outputs[0], str) else {o[0] for o in outputs}
    model = type(loaded.model).from_config(_on_bf16(config, outputs))
    model.set_weights(loaded.model.get_weights())
    model.save(path)
    if card_path is not None:  # for the parity check's load; the export's card replaces it
        loaded.card.save(card_path)
    return loaded.card


def _on_bf16(config, keep: set[str]):
    """A layer config tree with its float32 dtype policies turned to ``mixed_bfloat16``,
    except in the layers named in ``keep``."""
    if isinstance(config, list):
        return [_on_bf16(c, keep) for c in config]
    if not isinstance(config, dict) or config.get("name") in keep:
        return config
    out = {k: _on_bf16(v, keep) for k, v in config.items()}
    policy = out.get("dtype")
    if isinstance(policy, dict) and policy.get("class_name") == "DTypePolicy" \
            and policy["config"].get("name") == "float32":
        out["dtype"] = {**policy, "config": {**policy["config"], "name": "mixed_bfloat16"}}
    return out


def _quantize_tflite(converter, quantize: str | None, calibration: np.ndarray | None) -> None:
    import tensorflow as tf

    if quantize == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        def representative():
            for i in range(len(calibration)):
                yield [np.asarray(calibration[i:i + 1])]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]


def _median_ms(fn, x: np.ndarray, repeats: int = 10) -> float:
    fn(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t0) * 1000.0)
    return float(np.median(times))


def export_model(model_path: str | Path, fmt: str, quantize: str | None = None,
                 calibration_dir: str | Path | None = None, out: str | Path | None = None,
                 samples_dir: str | Path | None = None, allow_custom_code: bool = False,
                 log: Callable[[str], None] = print,
                 accept_card_mismatch: bool = False,
                 check_openvino: str | None = None) -> ExportResult:
    """Export MODEL to ``fmt`` (onnx | tflite), write its card, check it against Keras
    (``check_openvino="bf16"``, plain onnx only: and OpenVINO bf16 against FP32).

    Refuses (``ExportMemoryError``) before loading anything when the machine has too little
    memory free.  The Keras model is let go during the conversion (for TFLite it is only
    ever loaded in a process of its own) and loaded again for the parity check, so at most
    one copy of its weights is held beside the converter's.  The source's card must belong
    to it (``model/digest.py``) unless ``accept_card_mismatch``."""
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {FORMATS}, not {fmt!r}")
    if quantize not in QUANTIZATIONS_OF[fmt]:
        allowed = " or ".join(q for q in QUANTIZATIONS_OF[fmt] if q)
        raise ConfigError(f"{fmt} export takes quantize {allowed}"
                          + (f", not {quantize}" if quantize else ""))
    if check_openvino is not None and (fmt != "onnx" or quantize or check_openvino != "bf16"):
        raise ConfigError("check_openvino takes bf16, for a plain onnx export")
    if quantize == "int8" and calibration_dir is None:
        raise ConfigError("int8 quantization needs a calibration folder (--calibration DIR) "
                          "of images like the ones the robot will see")
    check_export_memory(model_path, fmt, quantize)
    source = Path(model_path).expanduser()
    _check_source(source, accept_card_mismatch, log)
    path = Path(out) if out else default_output(source, fmt, quantize)
    if path.suffix != f".{fmt}":
        raise ConfigError(f"a {fmt} model must be written to a .{fmt} file, not {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)

    def calibration(card: ModelCard) -> np.ndarray | None:
        return sample_batch(calibration_dir, card) if quantize == "int8" else None

    with _staged(path, source) as (written, card_tmp):
        if fmt == "tflite":
            card = _export_tflite(source, written, quantize, calibration, allow_custom_code,
                                  log)
        elif fmt == "keras":
            card = _export_keras_bf16(source, written, card_tmp, allow_custom_code, log)
        else:
            loaded = _load_checked(source, allow_custom_code)
            card, box = loaded.card, [loaded.model]  # the converter takes the model, lets it go
            del loaded
            log(f"exporting {source} to onnx{f' ({quantize})' if quantize else ''} ...")
            _export_onnx(box, written, quantize, calibration(card))
        gc.collect()
        samples = sample_batch(samples_dir or calibration_dir, card, limit=64)
        result = _parity(path, written, source, fmt, quantize, card, samples,
                         allow_custom_code)
        if card_tmp is not None:
            _write_card(result, card, source, log, written, card_tmp)
    if card_tmp is None:  # the source's card, once the export is in place (card last)
        _share_card(result, card, source, log)
    if check_openvino:
        result.openvino_bf16 = _record_openvino_parity(path, card, samples)
    return result


@contextlib.contextmanager
def _staged(path: Path, source: Path) -> Iterator[tuple[Path, Path | None]]:
    """Where the export is written before it is renamed into place (``data/atomic.py``):
    the model and its card as a pair (card last), or the model alone where it shares the
    source's card (``m.keras`` -> ``m.onnx``); yields (model temp, card temp or None)."""
    card_path = card_path_for(path)
    if card_path == card_path_for(source) and card_path.is_file():
        with atomic_path(path) as written:
            yield written, None
    else:
        with atomic_pair(path, card_path_for) as pair:
            yield pair


def _record_openvino_parity(path: Path, card: ModelCard, samples: np.ndarray) -> dict:
    """OpenVINO bf16 against FP32 on ``samples``, written into the card of ``path`` (the
    record the openvino runtime needs to serve bf16); also when that card is the Keras
    model's, which a float ONNX export shares."""
    record = openvino_parity(path, card, samples)
    written = ModelCard.load(card_path_for(path))
    written.replace(training={**written.training, PARITY_KEY: record}).save(card_path_for(path))
    return record


def _in_batches(forward: Callable[[np.ndarray], np.ndarray], samples: np.ndarray,
                size: int = 16) -> np.ndarray:
    """``forward`` over ``samples`` 16 at a time: one batch of all 72 int8 parity inputs
    at 350 px took the seed's Keras model to 3.7 GB (2.4 GB at batch 1)."""
    return np.concatenate([forward(samples[i:i + size]) for i in range(0, len(samples), size)])


def _parity(path: Path, written: Path, source: Path, fmt: str, quantize: str | None,
            card: ModelCard, samples: np.ndarray, allow_custom_code: bool) -> ExportResult:
    """Compare the exported model (``written``, the temporary file that becomes ``path``)
    with the Keras model (loaded again) on ``samples``; the exported model is let go
    before the Keras model is loaded."""
    exported = (compiled_forward(_load_checked(written, allow_custom_code).model,
                                 card.input_size)
                if fmt == "keras" else open_exported(written).predict)
    got = card.p_success(_in_batches(exported, samples))
    exported_ms = _median_ms(exported, samples[:1])
    del exported
    gc.collect()
    keras_fn = compiled_forward(_load_checked(source, allow_custom_code).model, card.input_size)
    reference = card.p_success(_in_batches(keras_fn, samples))
    diff = float(np.max(np.abs(got - reference)))
    agree = int(np.sum(is_success(got, card.threshold) == is_success(reference, card.threshold)))
    return ExportResult(
        path=str(path), card_path=str(card_path_for(path)), format=fmt, quantize=quantize,
        size_bytes=os.path.getsize(written), keras_size_bytes=os.path.getsize(source),
        samples=len(samples), max_abs_diff=diff, verdicts_agree=agree,
        keras_ms=_median_ms(keras_fn, samples[:1]), exported_ms=exported_ms)


def _sibling_exports(card_path: Path, source_digest: dict) -> dict:
    """The files a card already at ``card_path`` describes when it holds exports of the same
    source (``out/m.onnx`` and ``out/m.tflite`` share ``out/m.card.json``); else none: a card
    of another model's exports is replaced whole."""
    try:
        existing = ModelCard.load(card_path) if card_path.is_file() else None
    except ModelCardError:
        return {}
    same = existing is not None and \
        existing.training.get("export", {}).get("from_digest") == source_digest
    return dict(existing.files) if same else {}


def _share_card(result: ExportResult, card: ModelCard, source: Path,
                log: Callable[[str], None]) -> None:
    """m.keras and m.onnx share m.card.json: a float export means the same thing, and a
    threshold chosen for one holds for the other.  The card now records both files (and no
    others unless it described the source: those may be another model's)."""
    path = Path(result.path)
    card_path = card_path_for(path)
    recorded(card, [source, path], keep=matches(card, source)).save(card_path)
    log(f"{path.name} shares the card {card_path.name} with {source.name}")


def _write_card(result: ExportResult, card: ModelCard, source: Path,
                log: Callable[[str], None], written: Path, card_tmp: Path) -> None:
    """The exported model's card, to ``card_tmp`` (renamed beside it with the model),
    recording its digest (taken from ``written``, the file that becomes the export) and its
    source's; says so when that is also the source's card."""
    path, fmt, quantize = Path(result.path), result.format, result.quantize
    info = {k: v for k, v in asdict(result).items()
            if k not in ("path", "card_path", "openvino_bf16")}
    card_path = card_path_for(path)
    shared, source_digest = card_path == card_path_for(source), file_digest(source)
    exported_card = card.replace(
        files=_sibling_exports(card_path, source_digest),
        training={**card.training, "export": {"from": source.name,
                                              "from_digest": source_digest, **info}},
        notes=(card.notes + " " if card.notes else "") +
        f"Exported from {source.name} to {fmt}{f' ({quantize})' if quantize else ''}; "
        f"largest |P(success) difference| to Keras {result.max_abs_diff:.2e} on "
        f"{result.samples} inputs.")
    recorded(exported_card, [source, path] if shared else [path],
             written_at={path.name: written}).save(card_tmp)
    if shared:
        log(f"wrote {card_path}: it is also the card of {source.name} from now on (it was "
            "read with the seed's assumed conventions; they are written down in it)")
