"""Whole-model Keras 2 HDF5 files (``model.h5``) as the seed's TF 2.x notebook wrote them.

Keras 2 stored InceptionResNetV2's residual scaling as a ``Lambda`` (Python bytecode,
which cannot be loaded safely, nor at all across Python versions) or as
``Custom>CustomScaleLayer``.  Both are recognised by name and arguments and replaced
by :class:`~grasp_success_ros.model.layers.ResidualScale`; any other ``Lambda`` is code
and is refused unless the caller opts in.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from grasp_success_ros.core.errors import ModelLoadError, UnsafeModelError

_IRV2_BLOCK = re.compile(r"^block(35|17|8)_\d+$")
_SCALE_CLASSES = ("CustomScaleLayer", "Custom>CustomScaleLayer")
_SAFE_SCALE = "grasp_success_ros>ResidualScale"


def _residual_scale(layer: dict[str, Any]) -> float | None:
    """The scale of an InceptionResNetV2 residual-scaling layer, else None."""
    cfg = layer.get("config", {})
    if layer.get("class_name") in _SCALE_CLASSES and "scale" in cfg:
        return float(cfg["scale"])
    args = cfg.get("arguments") or {}
    if layer.get("class_name") == "Lambda" and _IRV2_BLOCK.match(cfg.get("name", "")) \
            and set(args) == {"scale"}:
        return float(args["scale"])
    return None


def patch_config(config: dict[str, Any], allow_custom_code: bool) -> list[str]:
    """Replace known residual-scaling layers in place; return names of code layers left."""
    code_layers: list[str] = []
    for layer in config.get("config", {}).get("layers", []):
        scale = _residual_scale(layer)
        if scale is not None:
            cfg = layer["config"]
            layer["class_name"] = _SAFE_SCALE
            layer["config"] = {"name": cfg["name"], "trainable": cfg.get("trainable", True),
                               "dtype": cfg.get("dtype", "float32"), "scale": scale}
        elif layer.get("class_name") == "Lambda":
            code_layers.append(layer["config"].get("name", "?"))
        elif "layers" in layer.get("config", {}):
            code_layers += patch_config(layer, allow_custom_code)
    if code_layers and not allow_custom_code:
        raise UnsafeModelError(
            f"the model holds Lambda layers with Python code ({', '.join(code_layers[:5])}); "
            "loading it would run that code. Load it only if you trust the file "
            "(allow_custom_code / --allow-custom-code)"
        )
    return code_layers


def load_h5_model(path: Path, allow_custom_code: bool = False):
    """Load a whole-model Keras 2 HDF5 file with Keras 3."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format, saving_options, saving_utils
    from keras.src.saving import serialization_lib

    from grasp_success_ros.model.layers import ResidualScale

    try:
        f = h5py.File(path, mode="r")
    except OSError as exc:
        raise ModelLoadError(f"{path} is not a readable HDF5 file: {exc}") from None
    with f:
        raw = f.attrs.get("model_config")
        if raw is None:
            raise ModelLoadError(
                f"{path} holds weights only, no model; save the whole model (model.save)"
            )
        config = json.loads(raw.decode("utf-8") if hasattr(raw, "decode") else raw)
        patch_config(config, allow_custom_code)
        custom = {_SAFE_SCALE: ResidualScale, "ResidualScale": ResidualScale}
        with saving_options.keras_option_scope(use_legacy_config=True), \
                serialization_lib.SafeModeScope(not allow_custom_code):
            model = saving_utils.model_from_config(config, custom_objects=custom)
            weights = f["model_weights"] if "model_weights" in f else f
            legacy_h5_format.load_weights_from_hdf5_group(weights, model)
    return model
