"""RGB frames in, P(success) out: a model's runtime plus its card's preprocessing and output
meaning.

The runtime is any ``runtimes.Runtime`` (Keras, ONNX Runtime, OpenVINO, LiteRT), opened by
file type in ``from_path`` (``runtimes.open_runtime``); the classifier knows only the
protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from grasp_success_ros.core.params import OnnxRuntimeChoice
from grasp_success_ros.data.preprocessing import prepare_batch
from grasp_success_ros.model.card import ModelCard
from grasp_success_ros.model.runtimes import Runtime, as_runtime, open_runtime


class GraspClassifier:
    """Batched P(success) for RGB uint8 frames of any size, preprocessed as in training."""

    def __init__(self, model, card: ModelCard, source: str = "") -> None:
        """``model``: a ``Runtime``, or a Keras model (run as a ``KerasModel``)."""
        self.model: Runtime = as_runtime(model, source)
        self.card = card.validate()
        self.source = source or self.model.source

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
        (``onnx_runtime``), ``.tflite`` in LiteRT (``runtimes.open_runtime``).
        """
        loaded = open_runtime(path, allow_custom_code=allow_custom_code, providers=providers,
                              choice=onnx_runtime, accept_card_mismatch=accept_card_mismatch)
        return cls(loaded.model, loaded.card, source=str(loaded.path)), loaded.notes

    @property
    def runtime(self) -> str:
        """``keras``, ``onnx``, ``openvino`` or ``tflite``."""
        return self.model.name

    @property
    def device(self) -> str:
        """What runs the forward pass: an ONNX Runtime provider, an OpenVINO device and
        precision (``openvino:CPU bf16``), ``GPU:0`` or ``CPU``."""
        return self.model.device

    @property
    def input_size(self) -> int:
        return self.card.input_size

    def prepare(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        return prepare_batch(frames, self.card.input_size, self.card.preprocessing)

    def predict_prepared(self, batch: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """P(success) for an already prepared float32 batch (``ModelCard.p_success``)."""
        return self.card.p_success(self.model.predict(batch), calibrated)

    def predict(self, frames: Sequence[np.ndarray], calibrated: bool = True) -> np.ndarray:
        """P(success) for each RGB uint8 frame, shape (N,); ``calibrated=False`` leaves out
        the card's calibration (to fit or compare one)."""
        if len(frames) == 0:
            return np.empty(0)
        return self.predict_prepared(self.prepare(frames), calibrated)

    def warm_up(self, batch_sizes: Sequence[int] = (1,)) -> None:
        """Run the model once per batch size so the first event is not slow."""
        self.model.warm_up(batch_sizes)
