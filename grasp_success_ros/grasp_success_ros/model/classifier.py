"""RGB frames in, P(success) out: the model plus its card's preprocessing and output meaning.

The model is a Keras model or an exported one (ONNX / TFLite, see ``runtimes``); the
runtime is chosen by file type in ``from_path`` (an ``.onnx`` one by ``onnx_runtime`` too).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from grasp_success_ros.core.errors import missing_dependency
from grasp_success_ros.core.params import OnnxRuntimeChoice
from grasp_success_ros.data.preprocessing import prepare_batch
from grasp_success_ros.model.card import ModelCard
from grasp_success_ros.model.forward import compiled_forward
from grasp_success_ros.model.loading import load_model


class GraspClassifier:
    """Batched P(success) for RGB uint8 frames of any size, preprocessed as in training."""

    def __init__(self, model, card: ModelCard, source: str = "") -> None:
        self.model = model
        self.card = card.validate()
        self.source = source
        from grasp_success_ros.model.runtimes import ExportedModel

        # an exported model is already a forward pass over prepared batches
        self._forward = model if isinstance(model, ExportedModel) else compiled_forward(model)

    @classmethod
    def from_path(cls, path: str | Path, allow_custom_code: bool = False,
                  providers: Sequence[str] | None = None,
                  onnx_runtime: OnnxRuntimeChoice | None = None,
                  accept_card_mismatch: bool = False):
        """Load a model and its card, checked to belong together (``accept_card_mismatch``:
        a card written for another file is used anyway, with a note); returns (classifier,
        loader notes).

        ``.keras`` / ``.h5`` run in Keras (on TensorFlow's GPU when it sees one), ``.onnx``
        in ONNX Runtime (on ``providers``, default the best available) or in OpenVINO
        (``onnx_runtime``), ``.tflite`` in LiteRT.
        """
        from grasp_success_ros.model.runtimes import load_exported, runtime_for

        kind = runtime_for(path)
        if kind == "keras":
            try:
                loaded = load_model(path, allow_custom_code=allow_custom_code,
                                    accept_card_mismatch=accept_card_mismatch)
            except ModuleNotFoundError as exc:  # the robot runtime: exported models only
                raise missing_dependency(exc, f"a {Path(path).suffix} model") or exc from None
        else:
            loaded = load_exported(path, providers=providers, choice=onnx_runtime,
                                   accept_card_mismatch=accept_card_mismatch)
        notes = list(loaded.notes)
        if onnx_runtime is not None and onnx_runtime.openvino and kind != "onnx":
            notes.append(f"the openvino runtime applies to .onnx models only; ignored for "
                         f"this {kind} model")
        if providers and kind != "onnx":
            notes.append(f"ONNX Runtime providers ({', '.join(providers)}) apply to .onnx "
                         f"models only; ignored for this {kind} model")
        return cls(loaded.model, loaded.card, source=str(loaded.path)), notes

    @property
    def runtime(self) -> str:
        """``keras``, ``onnx``, ``openvino`` or ``tflite``."""
        return getattr(self.model, "runtime", "keras")

    @cached_property
    def device(self) -> str:
        """What runs the forward pass: an ONNX Runtime provider, an OpenVINO device and
        precision (``openvino:CPU bf16``), ``GPU:0`` or ``CPU``."""
        from grasp_success_ros.model.runtimes import ExportedModel, keras_device

        return self.model.device if isinstance(self.model, ExportedModel) else keras_device()

    @property
    def input_size(self) -> int:
        return self.card.input_size

    def prepare(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        return prepare_batch(frames, self.card.input_size, self.card.preprocessing)

    def predict_prepared(self, batch: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """P(success) for an already prepared float32 batch (``ModelCard.p_success``)."""
        return self.card.p_success(self._forward(batch), calibrated)

    def predict(self, frames: Sequence[np.ndarray], calibrated: bool = True) -> np.ndarray:
        """P(success) for each RGB uint8 frame, shape (N,); ``calibrated=False`` leaves out
        the card's calibration (to fit or compare one)."""
        if len(frames) == 0:
            return np.empty(0)
        return self.predict_prepared(self.prepare(frames), calibrated)

    def warm_up(self, batch_sizes: Sequence[int] = (1,)) -> None:
        """Trace and run the graph once per batch size so the first event is not slow."""
        size = self.card.input_size
        for n in sorted(set(batch_sizes)):
            self.predict_prepared(np.zeros((n, size, size, 3), np.float32))
