"""Whole-model Keras 2 HDF5 files (``model.h5``) as the seed's TF 2.x notebook wrote them.

Keras 2 stored InceptionResNetV2's residual scaling as a ``Lambda`` (Python bytecode,
which cannot be loaded safely, nor at all across Python versions) or as
``Custom>CustomScaleLayer``.  Both are recognised by name and arguments and replaced
by :class:`~grasp_success_ros.model.layers.ResidualScale`; any other ``Lambda`` is code
and is refused unless the caller opts in.

The model is built with zero initialisers and its weights are copied in from the file one
slice at a time, so loading holds one copy of the weights (plus one slice), not three:
Keras' random initialisers keep about two extra copies of a large kernel alive, and Keras'
own loader reads each layer whole into NumPy first.
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
_ZEROS = {"class_name": "Zeros", "config": {}}
ASSIGN_CHUNK_BYTES = 32 * 2**20


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


def zero_initializers(config: Any) -> None:
    """Make every initialiser in a model config ``Zeros``, in place: the weights are loaded
    over them, and zeros cost neither time nor the random initialisers' extra copies."""
    if isinstance(config, dict):
        for key, value in config.items():
            if key.endswith("_initializer") and isinstance(value, dict) and "class_name" in value:
                config[key] = {**value, **_ZEROS}
            else:
                zero_initializers(value)
    elif isinstance(config, list):
        for item in config:
            zero_initializers(item)


def _assign(variable, dataset) -> None:
    """``variable = dataset``, a block of rows at a time (TensorFlow variables) so that no
    full-size NumPy copy of a large kernel is made.  ``variable[a:b].assign`` would read, and
    so copy, the whole variable first, and ``scatter_update`` would switch it to copying on
    every read; the strided-slice assignment does neither."""
    if tuple(variable.shape) != dataset.shape:
        raise ModelLoadError(f"weight {variable.path}: the file holds shape {dataset.shape}, "
                             f"the model expects {tuple(variable.shape)}")
    row_bytes = dataset.dtype.itemsize * (dataset.size // max(1, dataset.shape[0])
                                          if dataset.ndim else 1)
    rows = max(1, ASSIGN_CHUNK_BYTES // max(1, row_bytes))
    target = getattr(variable, "value", None)
    if dataset.ndim == 0 or dataset.shape[0] <= rows or not hasattr(target, "handle"):
        variable.assign(dataset[()])
        return
    import tensorflow as tf

    for start in range(0, dataset.shape[0], rows):
        stop = min(start + rows, dataset.shape[0])
        tf.raw_ops.ResourceStridedSliceAssign(
            ref=target.handle, begin=[start], end=[stop], strides=[1],
            value=dataset[start:stop])


def load_h5_weights(group, model) -> None:
    """Keras 2's order-based weight loading (layers with weights, in order; each layer's
    trainable then non-trainable weights), assigning straight from the HDF5 datasets."""
    layers = [ly for ly in model.layers if ly.trainable_weights + ly.non_trainable_weights]
    names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["layer_names"]]
    saved = [(n, [w.decode() if isinstance(w, bytes) else w
                  for w in group[n].attrs.get("weight_names", [])]) for n in names]
    saved = [(n, w) for n, w in saved if w]
    if len(saved) != len(layers):
        raise ModelLoadError(f"the file holds weights for {len(saved)} layers, the model has "
                             f"{len(layers)} layers with weights")
    for layer, (name, weight_names) in zip(layers, saved, strict=True):
        variables = layer.trainable_weights + layer.non_trainable_weights
        if len(variables) != len(weight_names):
            raise ModelLoadError(f"layer {layer.name} ({name} in the file) has "
                                 f"{len(variables)} weights, the file {len(weight_names)}")
        for variable, weight_name in zip(variables, weight_names, strict=True):
            _assign(variable, group[name][weight_name])


def load_h5_model(path: Path, allow_custom_code: bool = False):
    """Load a whole-model Keras 2 HDF5 file with Keras 3."""
    import h5py
    from keras.src.legacy.saving import saving_options, saving_utils
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
        zero_initializers(config)
        custom = {_SAFE_SCALE: ResidualScale, "ResidualScale": ResidualScale}
        with saving_options.keras_option_scope(use_legacy_config=True), \
                serialization_lib.SafeModeScope(not allow_custom_code):
            model = saving_utils.model_from_config(config, custom_objects=custom)
            weights = f["model_weights"] if "model_weights" in f else f
            load_h5_weights(weights, model)
    return model
