"""What a training builds and how it fits it: ``TrainConfig``, whose fields are the one
declaration of every training option.

Each field is declared with ``option(...)``: its default, its check and its command-line
form (flag, choices, help).  ``TrainConfig.validate`` and the options of ``grasp-success
train`` (and the ones ``distill`` shares) are generated from them (``OPTIONS``,
``add_options``, ``given_options``), so an option added, renamed or re-defaulted here
changes the library, the checks and the command line together.  The backbone choices are
``model/builder.BACKBONES``'s keys, the heads its ``HEADS``.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from grasp_success_ros.core.errors import ConfigError, require
from grasp_success_ros.model.builder import BACKBONES, HEADS


@dataclass(frozen=True)
class Augmentation:
    """Random changes to training images (``ImageDataGenerator``'s ranges and units).

    ``rotation`` is in degrees, ``shift`` and ``zoom`` are fractions of the image, and
    ``shear`` is in degrees as ``ImageDataGenerator`` measured it (the seed's 0.2 is 0.2
    degrees).  ``fill`` says how the uncovered border is filled.
    """

    rotation: float = 0.0
    shift: float = 0.0
    shear: float = 0.0
    zoom: float = 0.0
    horizontal_flip: bool = False
    fill: str = "nearest"

    @property
    def active(self) -> bool:
        return bool(self.rotation or self.shift or self.shear or self.zoom
                    or self.horizontal_flip)


AUGMENTATIONS = {
    "seed": Augmentation(rotation=40, shift=0.2, shear=0.2, zoom=0.2, horizontal_flip=True),
    "light": Augmentation(shift=0.1, zoom=0.1, horizontal_flip=True, fill="reflect"),
    "none": Augmentation(),
}
BALANCES = ("weights", "sampling", "none")
DISTRIBUTIONS = ("none", "mirrored", "multiworker")
# Named recipes: the fields they set; options given explicitly still win.
PRESETS: dict[str, dict[str, Any]] = {
    "seed": dict(freeze_backbone=True, optimizer="rmsprop", learning_rate=1e-4, batch_size=20,
                 augment=True, augmentation=AUGMENTATIONS["seed"], seed_preprocessing=True),
}
# The student recipe of ``distill`` when nothing else is asked: the Makefile demo's
# from-scratch MobileNet.
STUDENT_DEFAULTS: dict[str, Any] = dict(
    backbone="mobilenet_v3_small", input_size=96, weights=None, epochs=10, batch_size=32,
    learning_rate=1e-3, optimizer="adam", lr_schedule="cosine", augment=False,
    balance="none", tensorboard=False)
# Refused rather than unfrozen behind the user's back: a frozen random backbone never learns
# (the loss stays at 0.693), and unfreezing it would silently turn the recipe asked for
# (e.g. --preset seed) into a far slower from-scratch training of the whole network.
FROZEN_RANDOM_BACKBONE = (
    "a frozen backbone needs pretrained weights: with --weights none its random features "
    "never change and the model cannot learn; pass --weights imagenet or a weights file, "
    "or --freeze-backbone no to train the whole network from scratch")

NOT_A_SWITCH = object()


@dataclass(frozen=True)
class Option:
    """One training option: the ``TrainConfig`` field ``name``, its default and check
    (``choices``, ``least``, ``above``, ``most``), and its command-line form.

    On the command line an option is ``--name-with-dashes`` (or ``flag``) taking a value
    read by ``type`` (the default's type when not given), or, with ``switch``, a flag
    without value that sets the field to ``switch``.  ``words`` maps command-line words to
    field values (``--weights none`` -> None); ``cli`` False keeps a field off the command
    line.  An option not given is left out, so the preset's value or the default applies.
    """

    name: str
    default: Any
    help: str = ""
    choices: tuple[str, ...] = ()
    least: float | None = None
    above: float | None = None
    most: float | None = None
    type: Callable[[str], Any] | None = None
    flag: str | None = None
    switch: Any = NOT_A_SWITCH
    words: Mapping[str, Any] | None = None
    cli: bool = True

    @property
    def flags(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        return self.flags.lstrip("-").replace("-", "_")

    def checks(self, value: Any) -> list[tuple[bool, str]]:
        """(ok, message) for each bound declared, on the field's ``value``."""
        label = self.name.replace("_", " ")
        found = []
        if self.choices and self.words is None:  # None: left unset where that is the default
            found.append((value in self.choices or (value is None and self.default is None),
                          f"{label} must be one of {', '.join(self.choices)}, not {value!r}"))
        if self.least is not None:
            found.append((value >= self.least, f"{label} must be >= {self.least:g}"))
        if self.above is not None:
            found.append((value > self.above, f"{label} must be > {self.above:g}"))
        if self.most is not None:
            found.append((value <= self.most, f"{label} must be <= {self.most:g}"))
        return found

    def word(self, value: Any) -> str | None:
        """How the command line spells the field's ``value`` (None: not shown)."""
        if self.words is not None:
            value = next((w for w, v in self.words.items() if v == value), value)
        if value is None or self.switch is not NOT_A_SWITCH:
            return None
        return f"{value:g}" if isinstance(value, float) else str(value)

    def add_to(self, parser: argparse.ArgumentParser, default: Any) -> None:
        """This option on ``parser``, its help saying ``default`` (the command's)."""
        if self.switch is not NOT_A_SWITCH:
            parser.add_argument(self.flags, action="store_true", help=self.help or None)
            return
        shown = self.word(default)
        help_ = " ".join(t for t in (self.help, shown and f"(default {shown})") if t)
        value_type = self.type or (type(self.default) if isinstance(self.default, int | float)
                                   and not isinstance(self.default, bool) else str)
        parser.add_argument(self.flags, default=None, type=value_type,
                            choices=self.choices or None, help=help_ or None)

    def given(self, args: argparse.Namespace) -> dict[str, Any]:
        """The field's value if the command line gave this option, else nothing."""
        value = getattr(args, self.dest)
        if self.switch is not NOT_A_SWITCH:
            return {self.name: self.switch} if value else {}
        if value is None:
            return {}
        return {self.name: self.words.get(value, value) if self.words is not None else value}


def option(default: Any, help: str = "", **form: Any) -> Any:
    """A ``TrainConfig`` field declared with its ``Option`` (``form``: its other parts)."""
    return field(default=default, metadata={"option": Option("", default, help, **form)})


@dataclass(frozen=True)
class TrainConfig:
    """What to build and how to fit it; each field is an ``Option`` (its ``help`` says
    what it does).  ``freeze_backbone`` None freezes when pretrained; ``batch_size`` is the
    global batch under ``distribute`` and ``learning_rate`` is used as given for it."""

    preset: str | None = option(
        None, "the seed recipe: frozen backbone, RMSprop 1e-4, batch 20, its augmentation, "
        "RGB/255 (options given explicitly still win)", choices=tuple(PRESETS))
    backbone: str = option("inception_resnet_v2", choices=tuple(BACKBONES))
    head: str = option("gap", choices=HEADS)
    input_size: int = option(350, "model input px")
    weights: str | None = option(
        "imagenet", "imagenet (downloads through Keras) | none (from scratch) | PATH of a "
        "'notop' weights file (robots without internet)", words={"none": None})
    freeze_backbone: bool | None = option(
        None, "default: yes with pretrained weights, no from scratch", choices=("yes", "no"),
        words={"yes": True, "no": False})
    epochs: int = option(30, least=1)
    batch_size: int = option(20, least=1)
    learning_rate: float = option(1e-4, above=0)
    optimizer: str = option("rmsprop", choices=("rmsprop", "adam"))
    lr_schedule: str = option("constant", "learning-rate schedule",
                              choices=("constant", "cosine"))
    augment: bool = option(True, "augment the training images at all", cli=False)
    augmentation: Augmentation = option(
        AUGMENTATIONS["light"], "seed: rotation 40, shift 0.2, shear 0.2, zoom 0.2, flip; "
        "light: shift 0.1, zoom 0.1, flip; none", flag="--augment",
        choices=tuple(AUGMENTATIONS), words=AUGMENTATIONS)
    balance: str = option("weights", "unbalanced data: class weights, balanced batches, or "
                          "none", choices=BALANCES)
    fine_tune_epochs: int = option(
        0, "after the head converged, train the top of a frozen backbone too", least=0)
    fine_tune_layers: int = option(30, "weighted backbone layers unfrozen to fine-tune",
                                   least=1)
    fine_tune_learning_rate: float = option(1e-5)
    patience: int | None = option(
        None, "early stopping patience in epochs (default max(3, epochs/3))", type=int)
    early_stopping: bool = option(
        True, "run every epoch (the best one by validation loss is kept either way)",
        flag="--no-early-stopping", switch=False)
    cache_features: bool = option(
        True, "do not train the head on cached features of a frozen backbone",
        flag="--no-feature-cache", switch=False)
    mixed_precision: str = option("auto", "auto: on where a GPU is present",
                                  choices=("auto", "on", "off"))
    dense_units: int = option(1024)
    dropout: float = option(0.2)
    threshold: float = option(0.5, "threshold written into the card (evaluate "
                              "--target-precision chooses one from data)", least=0, most=1)
    seed: int = option(0)
    deterministic: bool = option(False, "deterministic TensorFlow ops (reproducible, slower)",
                                 switch=True)
    success_class: str | None = option(
        None, "name of the success folder when its name is not a recognised one")
    seed_preprocessing: bool = option(False, "feed RGB / 255 (the seed's convention) instead "
                                      "of the backbone's usual scaling", cli=False)
    tensorboard: bool = option(True, "no TensorBoard logs", flag="--no-tensorboard",
                               switch=False)
    plots: bool = option(True, "write the history plots", cli=False)
    progress: bool | None = option(None, "no progress bar, one line per epoch",
                                   flag="--quiet", switch=False)
    distribute: str = option(
        "none", "train on several devices: mirrored = every GPU of this machine; "
        "multiworker = several machines, each running the same command "
        "with its TF_CONFIG (the chief writes the model); --batch-size is then the global "
        "batch, split evenly over the replicas, the learning rate used as given",
        choices=DISTRIBUTIONS)

    @classmethod
    def preset_config(cls, name: str, **overrides: Any) -> TrainConfig:
        """A named recipe (``seed``), with ``overrides`` applied on top."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; the only preset is 'seed'")
        return cls(**{**PRESETS[name], "preset": name, **overrides}).validate()

    @classmethod
    def from_options(cls, given: Mapping[str, Any]) -> TrainConfig:
        """The options ``given`` (e.g. ``given_options``) on top of their ``preset``'s
        recipe, or of the defaults; checked."""
        if given.get("preset"):
            return cls.preset_config(given["preset"], **given)
        return cls(**given).validate()

    def validate(self) -> TrainConfig:
        checks = [c for o in OPTIONS for c in o.checks(getattr(self, o.name))]
        require([*checks, (self.pretrained or not self.freeze_backbone, FROZEN_RANDOM_BACKBONE)])
        return self

    @property
    def pretrained(self) -> bool:
        return self.weights is not None and str(self.weights).lower() != "none"

    @property
    def frozen(self) -> bool:
        return self.freeze_backbone if self.freeze_backbone is not None else self.pretrained

    @property
    def augmenting(self) -> bool:
        return self.augment and self.augmentation.active


OPTIONS: tuple[Option, ...] = tuple(
    dataclasses.replace(f.metadata["option"], name=f.name)
    for f in dataclasses.fields(TrainConfig))
OPTION: dict[str, Option] = {o.name: o for o in OPTIONS}
TRAIN_OPTIONS = tuple(o.name for o in OPTIONS if o.cli)
# The options ``distill`` shares with ``train`` (its student's recipe).
DISTILL_OPTIONS = ("backbone", "input_size", "weights", "epochs", "batch_size", "learning_rate",
                   "early_stopping", "seed", "success_class", "progress")


def add_options(parser: argparse.ArgumentParser, names: Sequence[str],
                defaults: Mapping[str, Any] | None = None) -> None:
    """The command-line options of the fields ``names``; the help shows ``defaults``
    (the command's own, e.g. ``STUDENT_DEFAULTS``) or else ``TrainConfig``'s."""
    for name in names:
        OPTION[name].add_to(parser, (defaults or {}).get(name, OPTION[name].default))


def given_options(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The fields ``names`` that the command line gave, as ``TrainConfig`` values."""
    return {k: v for name in names for k, v in OPTION[name].given(args).items()}
