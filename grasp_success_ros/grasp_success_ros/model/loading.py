"""Saving and loading models together with their cards."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from grasp_success_ros.core.errors import (
    ModelCardError,
    ModelLoadError,
    ModelShapeError,
    UnsafeModelError,
)
from grasp_success_ros.data.atomic import atomic_pair
from grasp_success_ros.model.card import ModelCard, card_path_for, seed_card
from grasp_success_ros.model.digest import check_card, recorded

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
M = TypeVar("M")


@dataclass
class LoadedModel(Generic[M]):
    """A model as its loader returned it, the card checked to describe it, and what the
    loader had to assume (notes, for the log). ``model`` is a keras.Model from
    ``load_model`` (for training, export and the tools that reach into its layers), or a
    ``Runtime`` from ``runtimes.open_runtime`` / ``load_exported`` (for serving)."""

    model: M
    card: ModelCard
    path: Path
    notes: list[str] = field(default_factory=list)


def save_model(model, path: str | Path, card: ModelCard) -> Path:
    """Write ``path`` (.keras) and its card beside it as a pair (``data/atomic.py``: the
    card renamed into place last), so a node reloading the path never reads a partial
    model or a card of another one; the card records the model's digest alone (a new model:
    whatever else it described before is another model's). Returns the card's path."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelLoadError(f"models are saved as .keras files, not {path.suffix or path.name}")
    card.validate()
    with atomic_pair(path, card_path_for) as (model_tmp, card_tmp):
        model.save(model_tmp)
        recorded(card, [path], keep=False, written_at={path.name: model_tmp}).save(card_tmp)
    return card_path_for(path)


def _load_keras_file(path: Path, allow_custom_code: bool):
    import keras

    import grasp_success_ros.model.layers  # noqa: F401  (registers ResidualScale)

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not allow_custom_code)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "Lambda" in str(exc):
            raise UnsafeModelError(
                f"{path} needs custom code (a Lambda layer) to load; loading it would run that "
                "code. Load it only if you trust the file (allow_custom_code / "
                "--allow-custom-code)"
            ) from None
        raise ModelLoadError(f"cannot load {path}: {exc}") from None
    except Exception as exc:  # zip, h5 and deserialisation errors have no common base
        raise ModelLoadError(f"cannot load {path}: {type(exc).__name__}: {exc}") from None


def _model_input_size(model, path: Path) -> int:
    shape = tuple(model.inputs[0].shape) if getattr(model, "inputs", None) else ()
    if len(model.inputs) != 1 or len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2] \
            or shape[1] is None:
        raise ModelShapeError(
            f"{path}: input shape {shape} does not fit; expected (None, S, S, 3)"
        )
    out = tuple(model.outputs[0].shape)
    if len(model.outputs) != 1 or out[1:] != (1,):
        raise ModelShapeError(f"{path}: output shape {out} does not fit; expected (None, 1)")
    return int(shape[1])


def checked_card(path: Path, accept_card_mismatch: bool, notes: list[str],
                 how_to_write: str = "train with 'grasp-success train' or write a card (see "
                 "README, 'Model card')") -> ModelCard | None:
    """The card beside ``path``, checked against the file before the model is loaded (a
    mismatch costs no load; its notes added to ``notes``); None for a seed .h5 without one
    (``_seed_card``). A missing card's error says ``how_to_write`` one."""
    card_path = card_path_for(path)
    if card_path.is_file():
        card = ModelCard.load(card_path)
        notes += check_card(card, card_path, [path], accept_card_mismatch)
        return card
    if path.suffix in (".h5", ".hdf5"):
        return None
    raise ModelCardError(f"no model card beside {path} (expected {card_path}); {how_to_write}")


def _seed_card(path: Path, input_size: int, notes: list[str]) -> ModelCard:
    notes.append(
        f"no model card beside {path.name} ({card_path_for(path).name}): assuming the seed's "
        f"conventions (RGB scaled by 1/255, output = P(unsuccessful), threshold 0.5, "
        f"{input_size} px from the model's input)"
    )
    return seed_card(input_size=input_size)


def load_model(path: str | Path, allow_custom_code: bool = False,
               accept_card_mismatch: bool = False) -> LoadedModel:
    """Load a ``.keras`` or seed-format ``.h5`` model (a keras.Model) and its card, and
    check they fit (the card's digest: ``model/digest.py``; ``accept_card_mismatch`` loads
    a file the card does not describe, with a note). To serve a model, ``open_runtime``."""
    path = Path(path).expanduser()
    if not str(path) or not path.is_file():
        raise ModelLoadError(f"model file not found: '{path}'")
    if path.suffix not in MODEL_SUFFIXES:
        raise ModelLoadError(
            f"{path}: unknown model format {path.suffix!r}; expected one of {MODEL_SUFFIXES}"
        )
    notes: list[str] = []
    card = checked_card(path, accept_card_mismatch, notes)
    if path.suffix == ".keras":
        model = _load_keras_file(path, allow_custom_code)
    else:
        from grasp_success_ros.model.legacy_h5 import load_h5_model

        try:
            model = load_h5_model(path, allow_custom_code)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"cannot load {path}: {type(exc).__name__}: {exc}") from None
    input_size = _model_input_size(model, path)
    card = card or _seed_card(path, input_size, notes)
    if card.input_size != input_size:
        raise ModelShapeError(
            f"{path}: the card says {card.input_size} px but the model takes {input_size} px"
        )
    return LoadedModel(model=model, card=card, path=path, notes=notes)
