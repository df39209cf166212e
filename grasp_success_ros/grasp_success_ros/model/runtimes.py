"""What runs a model: one ``Runtime`` protocol, one function that opens any model file.

``open_runtime(path)`` picks the runtime by file type: ``.keras`` / ``.h5`` in Keras (on
TensorFlow's GPU when it sees one), ``.onnx`` in ONNX Runtime or OpenVINO (an
``OnnxRuntimeChoice``), ``.tflite`` in LiteRT. Each opens the model with its card beside it
(``m.onnx`` -> ``m.card.json``), checked to belong together, so ``GraspClassifier`` treats
every format alike through the protocol alone.

The exported runtimes import nothing of TensorFlow or Keras (the robot runtime: their
packages are imported inside the functions that need them); the Keras one does.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from grasp_success_ros.core.errors import (
    ModelCardError,
    ModelLoadError,
    ModelShapeError,
    missing_dependency,
)
from grasp_success_ros.core.params import OnnxRuntimeChoice
from grasp_success_ros.core.policy import is_success
from grasp_success_ros.model.card import ModelCard
from grasp_success_ros.model.forward import compiled_forward
from grasp_success_ros.model.loading import LoadedModel, checked_card, load_model

EXPORTED_SUFFIXES = (".onnx", ".tflite")
RUNTIMES = ("keras", "onnx", "tflite", "openvino")  # openvino: an .onnx file run by OpenVINO
# ONNX Runtime execution providers, best first; short names accepted for each.
ONNX_PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
CPU_PROVIDER = ONNX_PROVIDERS["cpu"]
# Where the card keeps the OpenVINO bf16-against-FP32 parity record (``openvino_parity``).
PARITY_KEY = "openvino_bf16"
# bf16 is refused for a model whose verdicts flip on more than this share of its parity
# inputs (flips within FLIP_MARGIN of the threshold are not counted: FP32 itself is a coin
# toss there).
MAX_BF16_FLIP_SHARE, FLIP_MARGIN = 0.01, 0.01


@runtime_checkable
class Runtime(Protocol):
    """A model's forward pass, whatever runs it: all ``GraspClassifier`` knows of a model.

    ``predict`` takes a float32 batch (N, S, S, 3) prepared as the card says
    (``data/preprocessing.prepare_batch``, S = ``input_size``) and returns the model's raw
    output, (N, 1): what the card's ``output`` says it is, P(success) or, for the seed's
    models, P(unsuccessful) (``ModelCard.p_success`` turns it into P(success)). It may be
    called from several threads (OpenVINO and LiteRT run one batch at a time: they take
    turns).
    """

    name: str  # keras, onnx, openvino or tflite (RUNTIMES)
    source: str  # the model file ("" for a Keras model handed over in memory)
    input_size: int  # S
    device: str  # what runs it: GPU:0 / CPU, an ONNX Runtime provider, openvino:CPU bf16

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """The raw output for a prepared batch, (N, 1)."""
        ...

    def warm_up(self, batch_sizes: Iterable[int] = (1,)) -> None:
        """Run once per batch size (Keras traces its graph, LiteRT sizes its tensors), so the
        first real batch is not the slow one."""
        ...


def _run_zeros(runtime: Runtime, batch_sizes: Iterable[int]) -> None:
    size = runtime.input_size
    for n in sorted(set(batch_sizes)):
        runtime.predict(np.zeros((n, size, size, 3), np.float32))


def choose_providers(requested: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """The ONNX Runtime providers to use, in order: by default the best available of
    TensorRT, CUDA, CPU; else the requested ones (short or full names), each of which must
    be available. The CPU provider always comes last, as the fallback for operators the
    others do not run."""
    if not requested:
        chosen = [p for p in ONNX_PROVIDERS.values() if p in available]
    else:
        chosen = [ONNX_PROVIDERS.get(name.strip().lower(), name.strip()) for name in requested]
        missing = [p for p in chosen if p not in available]
        if missing:
            raise ModelLoadError(
                f"ONNX Runtime provider(s) {', '.join(missing)} not available here; available: "
                f"{', '.join(available)} (CUDA and TensorRT need the onnxruntime-gpu package "
                "and their libraries)")
    chosen = list(dict.fromkeys(p for p in chosen if p != CPU_PROVIDER))
    return chosen + [CPU_PROVIDER]


def keras_device() -> str:
    """Where TensorFlow runs a Keras model: its first GPU when it sees one (its default
    placement), else the CPU."""
    import tensorflow as tf

    return "GPU:0" if tf.config.list_logical_devices("GPU") else "CPU"


def runtime_for(path: str | Path) -> str:
    """``keras``, ``onnx`` or ``tflite``, by file type."""
    suffix = Path(path).suffix.lower()
    return {".onnx": "onnx", ".tflite": "tflite"}.get(suffix, "keras")


class KerasModel:
    """A Keras model (in memory) run through its one compiled forward pass
    (``model/forward.py``), on TensorFlow's GPU when it sees one."""

    name = "keras"

    def __init__(self, model, source: str = "") -> None:
        self.keras_model = model  # for what reaches into its layers
        self.source = source
        self.input_size = int(model.inputs[0].shape[1])
        self._forward = compiled_forward(model)

    @cached_property
    def device(self) -> str:
        return keras_device()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self._forward(batch)

    def warm_up(self, batch_sizes: Iterable[int] = (1,)) -> None:
        _run_zeros(self, batch_sizes)


def as_runtime(model, source: str = "") -> Runtime:
    """``model`` when it is a Runtime already; else a Keras model (what training and tests
    hand ``GraspClassifier``), run as a ``KerasModel``."""
    return model if isinstance(model, Runtime) else KerasModel(model, source)


class ExportedModel:
    """Base of the exported-model runtimes (a ``Runtime``): the file, its input size and
    the checks of its card."""

    name = ""
    device = "CPU"  # what runs the forward pass (ONNX: the first provider in use)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.source = str(path)
        self.input_size = 0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def warm_up(self, batch_sizes: Iterable[int] = (1,)) -> None:
        _run_zeros(self, batch_sizes)

    def verify(self, card: ModelCard) -> list[str]:
        """Refuse a card that does not describe this model (its input size); the note
        saying what runs it."""
        if card.input_size != self.input_size:
            raise ModelShapeError(
                f"{self.path}: the card says {card.input_size} px but the model takes "
                f"{self.input_size} px")
        return [f"running {self.path.name} with the {self.name} runtime on {self.device}"]

    def _check_input(self, shape) -> int:
        dims = list(shape)
        if len(dims) != 4 or dims[3] != 3 or dims[1] != dims[2] or not isinstance(dims[1], int):
            raise ModelShapeError(
                f"{self.path}: input shape {dims} does not fit; expected (None, S, S, 3)")
        return int(dims[1])


def usable_cores() -> int:
    """The cores this process may run on (its affinity, e.g. a container's cpuset), which
    ``os.cpu_count`` overstates."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def session_options(ort, threads: int | None = None):
    """ONNX Runtime session options for serving beside other threads: ``threads`` intra-op
    threads (default: one per usable core) that spin only while a run is under way.
    Spinning between operators takes the thread wake-ups out of a forward pass (the node's
    full-size FP32 pass 6-9 % faster); stopping at the end of each run leaves the cores to
    the node's executor, its DDS threads and the camera between passes, which threads left
    spinning after a run had held (measured: BENCHMARKS.md, "The node's overhead" and
    "Spinning within a run")."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or usable_cores()
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


class OnnxModel(ExportedModel):
    """An ONNX model run by ONNX Runtime on its best available provider, or the requested
    ones (``choose_providers``)."""

    name = "onnx"

    def __init__(self, path: Path, threads: int | None = None,
                 providers: Sequence[str] | None = None) -> None:
        super().__init__(path)
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelLoadError(
                f"{path}: ONNX models need the onnxruntime package (pip install onnxruntime)"
            ) from None
        options = session_options(ort, threads)
        chosen = choose_providers(providers, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(path), options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own exception classes
            raise ModelLoadError(f"cannot load {path}: {type(exc).__name__}: {exc}") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelShapeError(f"{path}: expected one input and one output")
        self.input_name = inputs[0].name
        self.input_size = self._check_input(inputs[0].shape)
        self.device = self.session.get_providers()[0]  # a provider that failed is dropped

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.asarray(batch, np.float32)})[0]


def _openvino_core(path: Path):
    try:
        import openvino as ov
    except ImportError:
        raise ModelLoadError(
            f"{path}: the openvino runtime needs the openvino package (pip install "
            "'grasp_success_ros[openvino]' or pip install openvino)") from None
    return ov, ov.Core()


def _check_openvino_device(core, device: str, path: Path) -> None:
    present = list(core.available_devices)
    if device != "AUTO" and not any(d.split(".")[0] == device for d in present):
        raise ModelLoadError(
            f"{path}: OpenVINO device {device} not available here; available: "
            f"{', '.join(present) or 'none'} (GPU needs Intel's GPU driver and OpenCL, NPU "
            "its driver)")


def bf16_capable(core, device: str) -> bool:
    """Whether OpenVINO says ``device`` computes in bf16 (its OPTIMIZATION_CAPABILITIES:
    on CPUs, AVX-512 BF16 or AMX)."""
    try:
        return "BF16" in core.get_property(device, "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 (a device that cannot answer is taken as without bf16)
        return False


def check_parity(card: ModelCard, path: Path) -> None:
    """Refuse bf16 for a model whose card has no OpenVINO bf16 parity record, or whose
    verdicts flipped on more than MAX_BF16_FLIP_SHARE of its parity inputs."""
    record = card.training.get(PARITY_KEY)
    if not isinstance(record, dict) or "flip_share" not in record:
        raise ModelCardError(
            f"{path}: bf16 refused: its card has no OpenVINO bf16 parity record; run "
            "'grasp-success export MODEL.keras --format onnx --check-openvino bf16 --samples "
            "DIR' (or use openvino precision fp32)")
    if record["flip_share"] > MAX_BF16_FLIP_SHARE:
        raise ModelCardError(
            f"{path}: bf16 refused: verdicts flipped on {100 * record['flip_share']:.1f} % of "
            f"the parity inputs (over {100 * MAX_BF16_FLIP_SHARE:.0f} %); use fp32")


class OpenVinoModel(ExportedModel):
    """An ONNX model run by OpenVINO on ``device`` in FP32 or bf16. FP32 is asked for
    explicitly: on CPUs with bf16 OpenVINO's own default is bf16. bf16 asked for where the
    device lacks it runs FP32, ``fallback`` saying why (a fleet's one configuration runs
    on every robot; FP32 is the exact model, only slower)."""

    name = "openvino"

    def __init__(self, path: Path, threads: int | None = None,
                 choice: OnnxRuntimeChoice | None = None) -> None:
        super().__init__(path)
        choice = choice or OnnxRuntimeChoice("openvino")
        ov, core = _openvino_core(path)
        _check_openvino_device(core, choice.device, path)
        self.precision, self.fallback = choice.precision, ""
        if self.precision == "bf16" and not bf16_capable(core, choice.device):
            self.precision = "fp32"
            why = " (no AVX-512 BF16 / AMX)" if choice.device == "CPU" else ""
            self.fallback = (f"bf16 asked for, but OpenVINO's {choice.device} has no bf16"
                             f"{why}: running fp32")
        config = {"INFERENCE_PRECISION_HINT": ov.Type.bf16 if self.precision == "bf16"
                  else ov.Type.f32, "PERFORMANCE_HINT": "LATENCY"}
        if choice.device == "CPU":  # sized like the other runtimes: one per usable core
            config["INFERENCE_NUM_THREADS"] = threads or usable_cores()
        try:
            model = core.read_model(str(path))
            self.compiled = core.compile_model(model, choice.device, config)
        except Exception as exc:  # OpenVINO raises RuntimeError with long texts
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
            raise ModelLoadError(f"cannot load {path} with OpenVINO on {choice.device}: "
                                 f"{type(exc).__name__}: {first}") from None
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ModelShapeError(f"{path}: expected one input and one output")
        shape = model.inputs[0].get_partial_shape()
        self.input_size = self._check_input(
            [d.get_length() if d.is_static else None for d in shape])
        self.device = f"openvino:{choice.device} {self.precision}" + \
            (" (bf16 unavailable)" if self.fallback else "")
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()  # one infer request runs one batch at a time

    def verify(self, card: ModelCard) -> list[str]:
        """As every exported model, and bf16 only with the card's parity record
        (``check_parity``); the note on a bf16 that fell back to FP32."""
        if self.precision == "bf16":
            check_parity(card, self.path)
        return super().verify(card) + ([self.fallback] if self.fallback else [])

    def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, np.float32)
        with self._lock:
            return self._request.infer({0: batch})[0].copy()


def openvino_parity(path: Path, card: ModelCard, samples: np.ndarray,
                    threads: int | None = None) -> dict:
    """bf16 against FP32 OpenVINO on ``samples`` (prepared inputs): the largest
    |P(success) difference| and the verdicts that flip, a flip counted only where FP32's
    P(success) is more than FLIP_MARGIN from the card's threshold. Refused (ModelLoadError)
    on a CPU without bf16, where both would be FP32."""
    outputs = {}
    for precision in ("fp32", "bf16"):
        model = OpenVinoModel(path, threads, OnnxRuntimeChoice("openvino", "CPU", precision))
        if model.fallback:
            raise ModelLoadError(f"{path}: no bf16 parity here: {model.fallback}")
        outputs[precision] = card.p_success(
            np.concatenate([model.predict(samples[i:i + 16]) for i in range(0, len(samples), 16)]))
    import openvino

    return {**parity_record(outputs["fp32"], outputs["bf16"], card.threshold),
            "openvino": openvino.__version__.split("-")[0]}


def parity_record(fp32: np.ndarray, bf16: np.ndarray, threshold: float) -> dict:
    """bf16's P(success) against FP32's: the largest difference and the verdicts that flip,
    counted only among the inputs whose FP32 P(success) is more than FLIP_MARGIN from
    ``threshold`` (their share is what ``check_parity`` bounds)."""
    clear = np.abs(fp32 - threshold) > FLIP_MARGIN
    flips = int(np.sum(clear & (is_success(fp32, threshold) != is_success(bf16, threshold))))
    counted = int(np.sum(clear))
    return {"samples": len(fp32), "max_abs_diff": float(np.max(np.abs(bf16 - fp32))),
            "verdict_flips": flips, "counted": counted, "flip_share": flips / max(1, counted),
            "threshold": threshold, "flip_margin": FLIP_MARGIN}


def _tflite_interpreter(path: Path, threads: int | None):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter  # noqa: N806 (deprecated; LiteRT preferred)
        except ImportError:
            raise ModelLoadError(
                f"{path}: TFLite models need ai-edge-litert (pip install ai-edge-litert)"
            ) from None
    # Left unset, LiteRT runs XNNPACK on one thread; every core is about 15% faster on 2.
    threads = threads or usable_cores()
    try:
        return Interpreter(model_path=str(path), num_threads=threads)
    except Exception as exc:  # the interpreter raises ValueError/RuntimeError
        raise ModelLoadError(f"cannot load {path}: {type(exc).__name__}: {exc}") from None


class TFLiteModel(ExportedModel):
    """A TFLite model run by the LiteRT interpreter (``ai-edge-litert``), XNNPACK on CPU."""

    name = "tflite"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        super().__init__(path)
        self.interpreter = _tflite_interpreter(path, threads)
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelShapeError(f"{path}: expected one input and one output")
        self._in, self._out = inputs[0], outputs[0]
        self.input_size = self._check_input([int(v) for v in self._in["shape"]])
        self._batch = -1
        self._lock = threading.Lock()  # an interpreter runs one batch at a time

    def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, np.float32)
        with self._lock:
            if batch.shape[0] != self._batch:
                self.interpreter.resize_tensor_input(self._in["index"], list(batch.shape))
                self.interpreter.allocate_tensors()
                self._batch = batch.shape[0]
            self.interpreter.set_tensor(self._in["index"], batch)
            self.interpreter.invoke()
            return self.interpreter.get_tensor(self._out["index"]).copy()


def open_exported(path: str | Path, threads: int | None = None,
                  providers: Sequence[str] | None = None,
                  choice: OnnxRuntimeChoice | None = None) -> ExportedModel:
    """An exported model's runtime, without its card; ``providers`` (ONNX Runtime's) and
    ``choice`` (ONNX Runtime or OpenVINO) apply to ``.onnx``."""
    path = Path(path)
    kind = runtime_for(path)
    if kind == "onnx" and choice is not None and choice.openvino:
        return OpenVinoModel(path, threads, choice.validate())
    if kind == "onnx":
        return OnnxModel(path, threads, providers)
    if kind == "tflite":
        return TFLiteModel(path, threads)
    raise ModelLoadError(f"{path}: not an exported model ({', '.join(EXPORTED_SUFFIXES)})")


def load_exported(path: str | Path, threads: int | None = None,
                  providers: Sequence[str] | None = None,
                  choice: OnnxRuntimeChoice | None = None,
                  accept_card_mismatch: bool = False) -> LoadedModel[ExportedModel]:
    """An exported model's runtime and its card, checked against each other: the card's
    digest before the runtime opens the file (``model/digest.py``), then the input size
    and, for OpenVINO bf16, the card's parity record (``ExportedModel.verify``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelLoadError(f"model file not found: '{path}'")
    notes: list[str] = []
    card = checked_card(path, accept_card_mismatch, notes, "'grasp-success export' writes one")
    model = open_exported(path, threads, providers, choice)
    notes += model.verify(card)
    return LoadedModel(model=model, card=card, path=path, notes=notes)


def _open_keras(path: Path, allow_custom_code: bool,
                accept_card_mismatch: bool) -> LoadedModel[KerasModel]:
    try:
        loaded = load_model(path, allow_custom_code=allow_custom_code,
                            accept_card_mismatch=accept_card_mismatch)
    except ModuleNotFoundError as exc:  # the robot runtime: exported models only
        raise missing_dependency(exc, f"a {path.suffix} model") or exc from None
    return LoadedModel(model=KerasModel(loaded.model, str(loaded.path)), card=loaded.card,
                       path=loaded.path, notes=loaded.notes)


def _ignored_options(kind: str, providers: Sequence[str] | None,
                     choice: OnnxRuntimeChoice | None) -> list[str]:
    notes = []
    if choice is not None and choice.openvino and kind != "onnx":
        notes.append(f"the openvino runtime applies to .onnx models only; ignored for "
                     f"this {kind} model")
    if providers and kind != "onnx":
        notes.append(f"ONNX Runtime providers ({', '.join(providers)}) apply to .onnx "
                     f"models only; ignored for this {kind} model")
    return notes


def open_runtime(path: str | Path, *, allow_custom_code: bool = False,
                 threads: int | None = None, providers: Sequence[str] | None = None,
                 choice: OnnxRuntimeChoice | None = None,
                 accept_card_mismatch: bool = False) -> LoadedModel[Runtime]:
    """Any model file's runtime with its card, checked to belong together (a card written
    for another file refused unless ``accept_card_mismatch``, then noted), and the notes
    for the log. The runtime is chosen by file type: ``.keras`` / ``.h5`` in Keras
    (``allow_custom_code``: a Lambda layer's code may run), ``.onnx`` in ONNX Runtime on
    ``providers`` (default: the best available) or in OpenVINO (``choice``), ``.tflite``
    in LiteRT; ``threads`` sizes the exported ones (default: one per usable core).
    Options that do not apply to the file's type are ignored, with a note."""
    path = Path(path).expanduser()
    kind = runtime_for(path)
    if kind == "keras":
        loaded: LoadedModel = _open_keras(path, allow_custom_code, accept_card_mismatch)
    else:
        loaded = load_exported(path, threads, providers, choice, accept_card_mismatch)
    loaded.notes += _ignored_options(kind, providers, choice)
    return loaded
