"""Whole-model Keras 2 HDF5 files (``model.h5``) as the seed's TF 2.x notebook wrote them.

Keras 2 stored InceptionResNetV2's residual scaling as a ``Lambda`` (Python bytecode,
which cannot be loaded safely, nor at all across Python versions) or as
``Custom>CustomScaleLayer``.  Both are recognised by name and arguments and replaced
by :class:`~grasp_success_ros.model.layers.ResidualScale`; any other ``Lambda`` is code
and is refused unless the caller opts in.

The model is built with unwritten weights (``layers.Unwritten``) and each weight is read
from the file into an array that then becomes the variable's buffer, so loading holds one
copy of the weights: Keras' random initialisers keep about two extra copies of a large
kernel alive, and zeros would be written and then kept by TensorFlow's allocator.
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
_UNWRITTEN = {"class_name": "grasp_success_ros>Unwritten", "config": {}}


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


def unwritten_initializers(config: Any) -> None:
    """Make every initialiser in a model config ``Unwritten``, in place: the weights are
    loaded over them, and unwritten memory costs neither time nor resident memory."""
    if isinstance(config, dict):
        for key, value in config.items():
            if key.endswith("_initializer") and isinstance(value, dict) and "class_name" in value:
                config[key] = dict(_UNWRITTEN)
            else:
                unwritten_initializers(value)
    elif isinstance(config, list):
        for item in config:
            unwritten_initializers(item)


def _assign(variable, dataset) -> None:
    """``variable = dataset``: the file's float32 weights are read into a 64-byte-aligned
    NumPy array that becomes the variable's buffer (through DLPack, no copy), so loading
    holds one copy of the weights.  Not a block of rows at a time with
    ``ResourceStridedSliceAssign``: that switches the variable to copying on every read, so
    each forward pass copied the Flatten head's 690 MB kernel (and TensorFlow's allocator
    kept the copy's memory); nor ``variable.assign(dataset[()])``, which converts the array
    into a second, TensorFlow-owned copy."""
    import numpy as np

    if tuple(variable.shape) != dataset.shape:
        raise ModelLoadError(f"weight {variable.path}: the file holds shape {dataset.shape}, "
                             f"the model expects {tuple(variable.shape)}")
    target = getattr(variable, "value", None)
    if dataset.dtype != np.float32 or variable.dtype != "float32" or dataset.size == 0 \
            or not hasattr(target, "handle"):
        variable.assign(dataset[()])
        return
    import tensorflow as tf

    array = _aligned_empty(dataset.shape)
    dataset.read_direct(array)
    target.assign(tf.experimental.dlpack.from_dlpack(array.__dlpack__()))


def _aligned_empty(shape: tuple[int, ...], align: int = 64):
    """An uninitialised float32 array whose data starts on an ``align``-byte boundary
    (TensorFlow's kernels check it on the buffers they are given)."""
    import numpy as np

    size = int(np.prod(shape))
    raw = np.empty(size + align // 4, np.float32)
    start = (-raw.ctypes.data % align) // 4
    return raw[start:start + size].reshape(shape)


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

    from grasp_success_ros.model.layers import ResidualScale, Unwritten

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
        unwritten_initializers(config)
        custom = {_SAFE_SCALE: ResidualScale, "ResidualScale": ResidualScale,
                  _UNWRITTEN["class_name"]: Unwritten}
        with saving_options.keras_option_scope(use_legacy_config=True), \
                serialization_lib.SafeModeScope(not allow_custom_code):
            model = saving_utils.model_from_config(config, custom_objects=custom)
            weights = f["model_weights"] if "model_weights" in f else f
            load_h5_weights(weights, model)
    return model
