"""Building the grasp classifier: an ImageNet backbone cut early, plus a small head.

The seed cut InceptionResNetV2 at ``mixed_7a`` (and InceptionV3 at ``mixed7``) and put
Dense(1024, relu) -> Dropout(0.2) -> Dense(1, sigmoid) on top.  ``flatten`` reproduces
the seed's head exactly (about 172M weights at 350 px); ``gap`` (global average pooling)
keeps the same idea at a fifth of the size and is the default for new models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grasp_success_ros.core.errors import ConfigError, WeightsUnavailableError
from grasp_success_ros.model.card import ModelCard, Preprocessing

HEADS = ("gap", "flatten")
INCEPTION_PREPROCESSING = Preprocessing(scale=2.0 / 255.0, offset=-1.0)


@dataclass(frozen=True)
class BackboneSpec:
    """Where to cut a ``keras.applications`` model and what input it wants."""

    name: str
    application: str
    cut_layer: str | None
    min_input_size: int
    preprocessing: Preprocessing
    extra_kwargs: tuple[tuple[str, object], ...] = ()


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec("inception_resnet_v2", "InceptionResNetV2", "mixed_7a", 75,
                     INCEPTION_PREPROCESSING),
        BackboneSpec("inception_v3", "InceptionV3", "mixed7", 75, INCEPTION_PREPROCESSING),
        # Minimalistic (no squeeze-excite, no hard-swish): trains reliably from scratch on
        # small data, runs fast on CPUs and embedded boards.
        BackboneSpec("mobilenet_v3_small", "MobileNetV3Small", None, 32, INCEPTION_PREPROCESSING,
                     (("include_preprocessing", False), ("minimalistic", True))),
    )
}


def backbone_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ConfigError(
            f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}"
        ) from None


def resolve_weights(weights: str | Path | None) -> str | None:
    """``None``/'none' -> random init, 'imagenet' -> Keras download/cache, else a local file."""
    if weights is None or str(weights).lower() == "none":
        return None
    if str(weights) == "imagenet":
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(f"weights file not found: {path}")
    return str(path)


def build_backbone(spec: BackboneSpec, input_size: int, weights: str | None):
    """The backbone, cut where the seed cut it."""
    import keras

    factory = getattr(keras.applications, spec.application)
    try:
        base = factory(include_top=False, weights=weights, input_shape=(input_size, input_size, 3),
                       **dict(spec.extra_kwargs))
    except Exception as exc:  # keras raises bare Exception for failed downloads
        if weights == "imagenet" and ("URL" in str(exc) or "fetch" in str(exc)):
            raise WeightsUnavailableError(
                f"cannot download ImageNet weights for {spec.name} (no internet?). Download the "
                f"'notop' weights file for keras.applications.{spec.application} on a connected "
                "machine and pass its path as weights (--weights PATH)"
            ) from None
        raise
    if spec.cut_layer is None:
        return base
    return keras.Model(base.input, base.get_layer(spec.cut_layer).output, name=f"{spec.name}_cut")


def _fast_batchnorm(model, momentum: float = 0.9) -> None:
    """Backbones trained from scratch on small data need moving statistics that settle
    within a few hundred steps (the applications use 0.99-0.999)."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def build_model(
    backbone: str = "inception_resnet_v2",
    input_size: int = 350,
    head: str = "gap",
    weights: str | Path | None = None,
    dense_units: int = 1024,
    dropout: float = 0.2,
    freeze_backbone: bool = True,
):
    """A fresh classifier whose sigmoid output is P(success), and its model card."""
    import keras

    spec = backbone_spec(backbone)
    if input_size < spec.min_input_size:
        raise ConfigError(f"{backbone} needs an input size >= {spec.min_input_size} px")
    if head not in HEADS:
        raise ConfigError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    resolved = resolve_weights(weights)
    base = build_backbone(spec, input_size, resolved)
    base.trainable = not freeze_backbone
    if resolved is None:
        _fast_batchnorm(base)
    inputs = keras.Input((input_size, input_size, 3), name="image")
    # A frozen (pretrained) backbone keeps its BatchNorm statistics, as in keras-io's
    # transfer-learning guide; one trained from scratch must update them.
    x = base(inputs, training=False) if freeze_backbone else base(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x) if head == "gap" else \
        keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="fc")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="p_success")(x)
    model = keras.Model(inputs, outputs, name=f"grasp_success_{backbone}")
    card = ModelCard(backbone=backbone, input_size=input_size, head=head,
                     preprocessing=spec.preprocessing)
    return model, card
