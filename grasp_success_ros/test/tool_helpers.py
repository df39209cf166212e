"""Helpers for the train / predict / evaluate / export tests (no fixtures here)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

from grasp_success_ros.model.card import ModelCard
from grasp_success_ros.model.loading import load_model, save_model
from grasp_success_ros.training.fitting import backbone_of

SEED_SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "seed_samples"


def seed_samples() -> Path:
    """The seed's 14 sample photos (``../shared`` beside the repository), or skip."""
    if not (SEED_SAMPLES / "success").is_dir():
        pytest.skip(f"seed sample images not found at {SEED_SAMPLES} (CI clones shared/ "
                    "beside the repository)")
    return SEED_SAMPLES


def red_minus_blue(path: Path, size: int = 32, **card_fields) -> Path:
    """A saved model whose P(success) = sigmoid(4 * (mean R - mean B)) of RGB / 255 input:
    red frames succeed, blue ones fail, so channel order and thresholds are visible."""
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Conv2D(1, 1, use_bias=False, name="rb")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Activation("sigmoid", name="p_success")(x)
    model = keras.Model(inputs, outputs)
    model.get_layer("rb").set_weights([np.array([4.0, 0.0, -4.0]).reshape(1, 1, 3, 1)])
    save_model(model, path, ModelCard(backbone="test", input_size=size, **card_fields))
    return path


def constant_model(path: Path, p_success: float, size: int = 32) -> Path:
    """A saved model that answers ``p_success`` whatever it sees (a model that learned
    nothing, as a collapsed training leaves it)."""
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    x = keras.layers.Dense(1, name="logit")(x)
    outputs = keras.layers.Activation("sigmoid", name="p_success")(x)
    model = keras.Model(inputs, outputs)
    logit = float(np.log(p_success / (1.0 - p_success)))
    model.get_layer("logit").set_weights([np.zeros((3, 1)), np.array([logit])])
    save_model(model, path, ModelCard(backbone="test", input_size=size))
    return path


def solid(rgb, shape=(40, 60)) -> np.ndarray:
    return np.full(shape + (3,), rgb, np.uint8)


def write_rgb(path: Path, rgb_image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb_image, cv2.COLOR_RGB2BGR))
    return path


def colour_folders(root: Path, success: str = "success", failure: str = "failure",
                   n: int = 6, seed: int = 0) -> Path:
    """Reddish success images and bluish failure images of varying shades."""
    rng = np.random.default_rng(seed)
    for name, base in ((success, (200, 40, 40)), (failure, (40, 40, 200))):
        for i in range(n):
            shade = np.clip(np.array(base) + rng.integers(-30, 30, 3), 0, 255)
            write_rgb(root / name / f"{i}.png", solid(tuple(int(v) for v in shade)))
    return root


def backbone_weights(trained_model: Path, out: Path) -> Path:
    """The trained fixture's backbone as a 'pretrained' weights file (--weights PATH)."""
    if not out.exists():
        backbone_of(load_model(trained_model).model).save_weights(out)
    return out


def rename_classes(root: Path, success: str, failure: str) -> Path:
    (root / "success").rename(root / success)
    (root / "failure").rename(root / failure)
    return root


def copy_images(files, folder: Path, prefix: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy(f, folder / f"{prefix}{f.name}")


def huge_header_image(path: Path, width: int = 50000, height: int = 50000) -> Path:
    """A tiny PNG or BMP (by ``path``'s suffix) whose header declares width x height pixels,
    as a foreign or corrupt file may: OpenCV raises on it rather than returning None."""
    import struct
    import zlib

    data = bytearray(cv2.imencode(path.suffix, np.zeros((4, 4, 3), np.uint8))[1].tobytes())
    if path.suffix == ".png":
        data[16:24] = struct.pack(">II", width, height)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    else:
        data[18:26] = struct.pack("<ii", width, height)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path
