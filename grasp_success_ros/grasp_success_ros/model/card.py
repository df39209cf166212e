"""The model card: what a model expects and what its output means.

Every model is stored with a card beside it (``model.keras`` ->
``model.card.json``).  The node, ``predict``, ``evaluate`` and the bag tools
configure their preprocessing, output meaning, calibration and thresholds from it, so
one model file can never be read with two different conventions.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grasp_success_ros.core.errors import ModelCardError
from grasp_success_ros.data.atomic import write_text
from grasp_success_ros.data.preprocessing import Preprocessing
from grasp_success_ros.model.calibration import Calibration

CARD_SUFFIX = ".card.json"
OUTPUT_P_SUCCESS = "p_success"
OUTPUT_P_FAILURE = "p_failure"


@dataclass(frozen=True)
class ModelCard:
    """Facts about one trained model (see the README's "Model card" section)."""

    backbone: str
    input_size: int
    head: str = "gap"
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    output: str = OUTPUT_P_SUCCESS
    threshold: float = 0.5
    success_class: str = "success"
    failure_class: str = "failure"
    training: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    format_version: int = 1
    # None: one threshold; else failure at or below it, no verdict between it and threshold
    threshold_failure: float | None = None
    calibration: Calibration | None = None  # None: outputs are used as they are
    # file name (beside the card) -> {"sha256": hex, "size": bytes} of each file this card
    # describes (model/digest.py); empty: an older or hand-written card, not checked
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    def validate(self) -> ModelCard:
        self.preprocessing.validate()
        if self.calibration is not None:
            self.calibration.validate()
        if self.output not in (OUTPUT_P_SUCCESS, OUTPUT_P_FAILURE):
            raise ModelCardError(
                f"output must be {OUTPUT_P_SUCCESS!r} or {OUTPUT_P_FAILURE!r}, not {self.output!r}"
            )
        if not 0.0 <= self.threshold <= 1.0:
            raise ModelCardError(f"threshold must be in [0, 1], not {self.threshold}")
        if self.threshold_failure is not None and \
                not 0.0 <= self.threshold_failure <= self.threshold:
            raise ModelCardError(f"threshold_failure must be in [0, threshold], not "
                                 f"{self.threshold_failure}")
        if self.input_size < 32:
            raise ModelCardError(f"input_size {self.input_size} is too small")
        _check_files(self.files)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        data = dict(data)
        try:
            pre = Preprocessing(**data.pop("preprocessing", {}))
            calibration = data.pop("calibration", None)
            if calibration is not None:
                data["calibration"] = Calibration(**calibration)
            known = {f.name for f in dataclasses.fields(cls)}
            unknown = sorted(set(data) - known)
            if unknown:
                raise ModelCardError(f"unknown model card keys: {', '.join(unknown)}")
            return cls(preprocessing=pre, **data).validate()
        except TypeError as exc:
            raise ModelCardError(f"malformed model card: {exc}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def save(self, path: str | Path) -> Path:
        """Write the card atomically: a node reloading the model never reads half a card."""
        return write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> ModelCard:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelCardError(f"cannot read model card {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ModelCardError(f"model card {path} is not a JSON object")
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> ModelCard:
        return dataclasses.replace(self, **changes).validate()

    def p_success(self, raw, calibrated: bool = True) -> np.ndarray:
        """The model's raw outputs as P(success), flat float64: the one place where a
        P(failure) model (the seed's) is turned around and the card's calibration applied
        (``calibrated=False``: before calibration, for fitting and comparing it)."""
        p = np.asarray(raw, dtype=np.float64).reshape(-1)
        p = 1.0 - p if self.output == OUTPUT_P_FAILURE else p
        return self.calibrated(p) if calibrated else p

    def calibrated(self, p_uncalibrated) -> np.ndarray:
        """Uncalibrated P(success) (``p_success(raw, calibrated=False)``) -> the card's
        P(success); unchanged without a calibration."""
        p = np.asarray(p_uncalibrated, dtype=np.float64).reshape(-1)
        return p if self.calibration is None else self.calibration.apply(p)

    def with_calibration(self, calibration: Calibration | None) -> ModelCard:
        """This card with another calibration, its thresholds carried over so that every
        verdict stays the same (up to float rounding): each is undone through the old
        calibration and mapped through the new one. 0 and 1 stay as they are."""
        def carried(t: float | None) -> float | None:
            if t is None:
                return None
            raw = t if self.calibration is None else float(self.calibration.invert(t))
            return raw if calibration is None else float(calibration.apply(raw))

        return self.replace(calibration=calibration, threshold=carried(self.threshold),
                            threshold_failure=carried(self.threshold_failure))


def _check_files(files: Any) -> None:
    """``files`` as the digest writers leave it: name -> 64 hex digits and a size."""
    def fits(entry: Any) -> bool:
        return isinstance(entry, dict) and set(entry) == {"sha256", "size"} \
            and isinstance(entry["sha256"], str) and len(entry["sha256"]) == 64 \
            and all(c in "0123456789abcdef" for c in entry["sha256"]) \
            and isinstance(entry["size"], int) and entry["size"] >= 0

    if not isinstance(files, dict) or not all(
            isinstance(name, str) and name and fits(e) for name, e in files.items()):
        raise ModelCardError("files must map file names to {\"sha256\": 64 hex digits, "
                             "\"size\": bytes}")


def seed_card(input_size: int = 350, backbone: str = "unknown (seed .h5)") -> ModelCard:
    """The seed notebook's conventions: RGB/255, output = P(unsuccessful).

    Keras' ``flow_from_directory`` sorted the folders ``succ`` < ``zon_desk``, so the
    sigmoid learned P(zon_desk) = P(unsuccessful); its images were resized with
    ``load_img``'s default nearest-neighbour interpolation.
    """
    return ModelCard(
        backbone=backbone,
        input_size=input_size,
        head="flatten",
        preprocessing=Preprocessing(scale=1.0 / 255.0, interpolation="nearest"),
        output=OUTPUT_P_FAILURE,
        threshold=0.5,
        success_class="succ",
        failure_class="zon_desk",
        notes="seed conventions assumed: no model card was found beside the model",
    )


def card_path_for(model_path: str | Path) -> Path:
    """``models/x.keras`` -> ``models/x.card.json``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + CARD_SUFFIX)
