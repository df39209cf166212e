"""Training from class folders: which folder is success, bad files, unbalanced data, the
seed preset, fine-tuning, and what training writes beside the model."""

import csv
import shutil

import keras
import numpy as np
import pytest
from tool_helpers import (
    backbone_weights,
    colour_folders,
    copy_images,
    huge_header_image,
    red_minus_blue,
    rename_classes,
    solid,
)

from grasp_success_ros.cli import main as cli
from grasp_success_ros.cli.main import build_parser
from grasp_success_ros.core.errors import ConfigError, DatasetError
from grasp_success_ros.data.folders import class_folders, list_folders
from grasp_success_ros.data.synth import write_dataset
from grasp_success_ros.evaluation.evaluate import evaluate_folder
from grasp_success_ros.model.builder import BACKBONES, backbone_spec, build_backbone
from grasp_success_ros.model.card import ModelCard, Preprocessing
from grasp_success_ros.model.classifier import GraspClassifier
from grasp_success_ros.model.loading import load_model
from grasp_success_ros.training.config import (
    AUGMENTATIONS,
    OPTIONS,
    Augmentation,
    TrainConfig,
)
from grasp_success_ros.training.fitting import unfreeze_top
from grasp_success_ros.training.outputs import validation_report
from grasp_success_ros.training.pipeline import (
    Decoded,
    class_weights,
    decode_images,
    image_dataset,
)
from grasp_success_ros.training.train import train


def folders(tmp_path, *names):
    for name in names:
        (tmp_path / name).mkdir(parents=True)
    return tmp_path


@pytest.mark.parametrize("succ, fail", [("succ", "zon_desk"), ("pos", "neg"),
                                        ("Success", "Failure"), ("grasped", "notgrasped")])
def test_known_folder_names_tell_which_class_is_success(tmp_path, succ, fail):
    assert class_folders(folders(tmp_path, succ, fail)).success == succ


def test_ambiguous_folder_names_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="--success-class"):
        class_folders(folders(tmp_path, "apples", "pears"))


def test_success_class_option_resolves_any_names(tmp_path):
    chosen = class_folders(folders(tmp_path, "apples", "pears"), success_class="pears")
    assert (chosen.success, chosen.failure) == ("pears", "apples")


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(DatasetError, match="folder not found"):
        class_folders(tmp_path / "nope")


def test_unreadable_and_empty_files_are_skipped_and_counted(tmp_path):
    write_dataset(tmp_path, 4, seed=0)
    (tmp_path / "success" / "zero.png").write_bytes(b"")
    (tmp_path / "failure" / "junk.jpg").write_bytes(b"not a jpeg")
    data = decode_images(list_folders(tmp_path), 32, Preprocessing(), tmp_path)
    assert data.counts() == {"success": 2, "failure": 2, "skipped": 2}
    assert data.images.shape == (4, 32, 32, 3) and data.images.dtype == np.uint8


@pytest.mark.parametrize("suffix", [".png", ".bmp"])
def test_an_image_declaring_a_huge_size_is_skipped_with_the_reason(tmp_path, suffix):
    write_dataset(tmp_path, 4, seed=0)
    huge_header_image(tmp_path / "failure" / f"huge{suffix}")
    data = decode_images(list_folders(tmp_path), 32, Preprocessing(), tmp_path)
    assert data.counts() == {"success": 2, "failure": 2, "skipped": 1}
    assert data.skipped[0].endswith(f"huge{suffix} (header declares 50000x50000 pixels, "
                                    "more than 50000000)")


def test_an_empty_class_stops_with_a_clear_message(tmp_path):
    write_dataset(tmp_path, 4, seed=0)
    shutil.rmtree(tmp_path / "failure")
    (tmp_path / "failure").mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        list_folders(tmp_path)


def test_class_weights_balance_a_5_to_1_set():
    weights = class_weights(np.array([1] * 50 + [0] * 10, np.float32))
    assert weights[0] * 10 == pytest.approx(weights[1] * 50)


def test_training_writes_a_model_and_a_card_with_the_data_counts(tmp_path):
    write_dataset(tmp_path / "train", 12, seed=1)
    write_dataset(tmp_path / "valid", 6, seed=2)
    (tmp_path / "train" / "success").rename(tmp_path / "train" / "succ")
    (tmp_path / "train" / "failure").rename(tmp_path / "train" / "zon_desk")
    (tmp_path / "valid" / "success").rename(tmp_path / "valid" / "succ")
    (tmp_path / "valid" / "failure").rename(tmp_path / "valid" / "zon_desk")
    cfg = TrainConfig(backbone="mobilenet_v3_small", input_size=48, weights=None, epochs=1,
                      batch_size=4)
    train(tmp_path / "train", tmp_path / "valid", tmp_path / "m.keras", cfg, log=lambda s: None)
    card = ModelCard.load(tmp_path / "m.card.json")
    assert card.output == "p_success" and card.success_class == "succ"
    assert card.training["train_counts"] == {"success": 6, "failure": 6, "skipped": 0}
    assert load_model(tmp_path / "m.keras").card == card



def test_training_fits_a_calibration_on_the_validation_set_and_the_model_applies_it(
        tmp_path):
    write_dataset(tmp_path / "train", 8, seed=1, height=60, width=80)
    write_dataset(tmp_path / "valid", 8, seed=2, height=60, width=80)
    cfg = TrainConfig(backbone="mobilenet_v3_small", input_size=32, weights=None, epochs=1,
                      batch_size=4, tensorboard=False, plots=False)
    lines = []
    card = train(tmp_path / "train", tmp_path / "valid", tmp_path / "m.keras", cfg,
                 log=lines.append)
    cal = card.calibration
    assert cal.method == "temperature" and cal.images == 8
    assert cal.scores["after"]["log_loss"] <= cal.scores["before"]["log_loss"]
    assert any(line.startswith(f"calibration: temperature {cal.temperature:.4g} on 8 ")
               for line in lines)
    ev = evaluate_folder(tmp_path / "valid", GraspClassifier.from_path(tmp_path / "m.keras")[0])
    np.testing.assert_allclose(ev.p_success, cal.apply(ev.p_uncalibrated))


def test_class_weights_go_into_the_card_by_class_name_and_onto_the_console(tmp_path):
    write_dataset(tmp_path / "train", 12, seed=1)
    for f in sorted((tmp_path / "train" / "failure").iterdir())[:4]:
        f.unlink()  # 6 successes, 2 failures
    write_dataset(tmp_path / "valid", 6, seed=2)
    for folder in ("train", "valid"):
        rename_classes(tmp_path / folder, "succ", "zon_desk")
    cfg = TrainConfig(backbone="mobilenet_v3_small", input_size=48, weights=None, epochs=1,
                      batch_size=4, tensorboard=False, plots=False)
    lines = []
    train(tmp_path / "train", tmp_path / "valid", tmp_path / "m.keras", cfg, log=lines.append)
    card = ModelCard.load(tmp_path / "m.card.json")
    assert card.training["class_weights"] == pytest.approx({"succ": 8 / 12, "zon_desk": 2.0})
    assert "class weights: succ 0.667, zon_desk 2.000" in lines
    assert any(line.startswith("validation: ") for line in lines)


def test_the_final_validation_report_warns_when_the_model_answers_the_same_for_all(tmp_path):
    model = load_model(red_minus_blue(tmp_path / "rb.keras")).model
    grey = np.stack([solid((100 + i, 0, 100 + i), (32, 32)) for i in range(9)])
    lines = []
    warnings = validation_report(model, Decoded(grey, np.r_[np.ones(8), 0.0]),
                                 Preprocessing(), 0.5, lines.append)
    assert lines[0] == ("validation: 8 (8 successful + 0 unsuccessful) out of 9 validation "
                        "images are correct (accuracy 0.89)")
    assert len(warnings) == 3 and lines[1:] == [f"warning: {w}" for w in warnings]


def test_a_frozen_backbone_without_pretrained_weights_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(ConfigError, match="frozen backbone needs pretrained weights"):
        TrainConfig.preset_config("seed", weights=None)
    assert cli.main(["train", str(tmp_path), str(tmp_path), "m.keras", "--preset", "seed",
                     "--weights", "none"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--freeze-backbone no" in err and "\n" not in err
    assert not TrainConfig(weights=None).frozen  # from scratch unfreezes, as before


@pytest.mark.parametrize("before", [False, True])
def test_deterministic_training_leaves_op_determinism_as_it_found_it(tmp_path, before):
    from tensorflow.python.framework import config as tf_config

    write_dataset(tmp_path / "train", 8, seed=1)
    write_dataset(tmp_path / "valid", 4, seed=2)
    cfg = TrainConfig(backbone="mobilenet_v3_small", input_size=48, weights=None, epochs=1,
                      batch_size=4, deterministic=True, tensorboard=False, plots=False)
    (tf_config.enable_op_determinism if before else tf_config.disable_op_determinism)()
    try:
        train(tmp_path / "train", tmp_path / "valid", tmp_path / "m.keras", cfg,
              log=lambda s: None)
        assert tf_config.is_op_determinism_enabled() is before
    finally:
        tf_config.disable_op_determinism()

# --------------------------------------------------------------------------- issue 3: training

QUIET = {"tensorboard": False, "plots": False, "early_stopping": False}


@pytest.fixture(scope="module")
def pretrained(trained_model, tmp_path_factory):
    """The trained fixture's backbone as a weights file: a stand-in for ImageNet weights."""
    return backbone_weights(trained_model, tmp_path_factory.mktemp("bb") / "bb.weights.h5")


def head_config(weights, **kw):
    """A frozen 'pretrained' backbone, nothing augmented: the head trains on cached features."""
    base = dict(backbone="mobilenet_v3_small", input_size=96, weights=str(weights),
                augment=False, dense_units=16, epochs=30, batch_size=16, learning_rate=3e-3,
                optimizer="adam", **QUIET)
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("succ, fail", [("pos", "neg"), ("succ", "zon_desk")])
def test_a_model_trained_from_renamed_folders_gets_the_success_class_right(
        tmp_path, pretrained, succ, fail):
    rename_classes(write_dataset(tmp_path / "train", 40, seed=21, height=120, width=160) and
                   tmp_path / "train", succ, fail)
    write_dataset(tmp_path / "test", 30, seed=22, height=120, width=160)
    card = train(tmp_path / "train", tmp_path / "test", tmp_path / "m.keras",
                 head_config(pretrained), log=lambda s: None)
    assert (card.success_class, card.failure_class) == (succ, fail)
    assert card.training["cached_features"] is True
    clf, _ = GraspClassifier.from_path(tmp_path / "m.keras")
    ev = evaluate_folder(tmp_path / "test", clf)  # test folders are success/ and failure/
    assert ev.metrics()["accuracy"] >= 0.8  # a swapped class would score about 0.1


def test_class_weights_keep_the_rare_class_learned_on_5_to_1_data(tmp_path, pretrained):
    """10 successes against 100 failures, 40 of which look like successes (hard cases):
    unweighted, the majority wins wherever the cue is ambiguous and the rare class is lost;
    weighted, it is still recognised."""
    write_dataset(tmp_path / "pool", 140, seed=11, height=120, width=160)
    write_dataset(tmp_path / "test", 80, seed=12, height=120, width=160)
    succ = sorted((tmp_path / "pool" / "success").iterdir())
    fail = sorted((tmp_path / "pool" / "failure").iterdir())
    copy_images(succ[:10], tmp_path / "train" / "success")
    copy_images(succ[10:50], tmp_path / "train" / "failure", prefix="hard_")
    copy_images(fail[:60], tmp_path / "train" / "failure")
    recall = {}
    for balance in ("none", "weights"):
        out = tmp_path / f"{balance}.keras"
        card = train(tmp_path / "train", tmp_path / "test", out,
                     head_config(pretrained, balance=balance), log=lambda s: None)
        assert card.training["train_counts"] == {"success": 10, "failure": 100, "skipped": 0}
        m = evaluate_folder(tmp_path / "test", GraspClassifier.from_path(out)[0]).metrics()
        recall[balance] = (m["success"]["recall"], m["failure"]["recall"])
    print(f"per-class recall (success, failure): without weights {recall['none']}, "
          f"with class weights {recall['weights']}")
    assert recall["none"][0] <= 0.35  # measured 0.0-0.25
    assert recall["weights"][0] >= 0.6 and recall["weights"][1] >= 0.7  # measured >= 0.75
    assert recall["weights"][0] - recall["none"][0] >= 0.4


def test_training_writes_history_plots_logs_and_card_beside_the_model(tmp_path):
    colour_folders(tmp_path / "train", n=6, seed=1)
    colour_folders(tmp_path / "valid", n=4, seed=2)
    (tmp_path / "train" / "success" / "zero.png").write_bytes(b"")
    (tmp_path / "train" / "failure" / "junk.jpg").write_bytes(b"not a jpeg")
    cfg = TrainConfig(backbone="mobilenet_v3_small", input_size=32, weights=None, epochs=2,
                      batch_size=4, dense_units=8, threshold=0.6, early_stopping=False)
    lines = []
    card = train(tmp_path / "train", tmp_path / "valid", tmp_path / "m.keras", cfg,
                 log=lines.append)
    assert card.threshold == 0.6
    assert card.training["train_counts"] == {"success": 6, "failure": 6, "skipped": 2}
    with (tmp_path / "m.history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and {"val_accuracy_success", "val_accuracy_failure"} <= set(rows[0])
    for name in ("m.accuracy.png", "m.loss.png", "m.logs/best.weights.h5"):
        assert (tmp_path / name).stat().st_size > 0
    assert list((tmp_path / "m.logs").rglob("events.out.tfevents*"))
    epoch_lines = [s for s in lines if s.startswith("epoch ")]
    assert len(epoch_lines) == 2 and "(success " in epoch_lines[0] and "failure " in \
        epoch_lines[0]


def test_fine_tuning_trains_the_top_of_a_frozen_backbone_after_the_head(tmp_path):
    weights = tmp_path / "random.weights.h5"
    build_backbone(backbone_spec("mobilenet_v3_small"), 32, None).save_weights(weights)
    colour_folders(tmp_path / "train", n=4)
    colour_folders(tmp_path / "valid", n=2, seed=3)
    cfg = TrainConfig(backbone="mobilenet_v3_small", input_size=32, weights=str(weights),
                      epochs=1, fine_tune_epochs=1, fine_tune_layers=3, batch_size=4,
                      dense_units=8, augmentation=AUGMENTATIONS["seed"], **QUIET)
    card = train(tmp_path / "train", tmp_path / "valid", tmp_path / "m.keras", cfg,
                 log=lambda s: None)
    assert card.training["frozen_backbone"] and card.training["fine_tuned_layers"] == 3
    assert card.training["epochs_run"] == 2 and not card.training["cached_features"]
    with (tmp_path / "m.history.csv").open() as fh:
        assert [row["phase"] for row in csv.DictReader(fh)] == ["head", "fine_tune"]


def test_fine_tuning_unfreezes_only_the_top_layers_and_never_batchnorm():
    base = build_backbone(backbone_spec("mobilenet_v3_small"), 32, None)
    base.trainable = False
    assert unfreeze_top(base, 4) == 4
    trainable = [la for la in base.layers if la.trainable and la.weights]
    weighted = [la for la in base.layers if la.weights]
    assert len(trainable) == 4 and trainable[-1] in weighted[-2:]
    assert not any(isinstance(la, keras.layers.BatchNormalization) for la in trainable)


def test_the_seed_preset_is_the_seed_recipe_and_explicit_options_win(monkeypatch, tmp_path):
    cfg = TrainConfig.preset_config("seed")
    assert (cfg.frozen, cfg.optimizer, cfg.learning_rate, cfg.batch_size) == \
        (True, "rmsprop", 1e-4, 20)
    assert cfg.augmentation == Augmentation(rotation=40, shift=0.2, shear=0.2, zoom=0.2,
                                            horizontal_flip=True)
    assert cfg.seed_preprocessing
    seen = []
    monkeypatch.setattr("grasp_success_ros.training.train.train", lambda *a, **k: seen.append(a[3]))
    assert cli.main(["train", "a", "b", "m.keras", "--preset", "seed", "--batch-size", "8"]) == 0
    assert seen[0].batch_size == 8 and seen[0].optimizer == "rmsprop" and seen[0].frozen


def train_config_of(monkeypatch, *options):
    """The TrainConfig that ``grasp-success train a b m.keras OPTIONS`` hands to ``train``."""
    seen = []
    monkeypatch.setattr("grasp_success_ros.training.train.train", lambda *a, **k: seen.append(a[3]))
    assert cli.main(["train", "a", "b", "m.keras", *options]) == 0
    return seen[0]


def test_train_options_left_out_take_the_defaults_of_trainconfig(monkeypatch):
    assert train_config_of(monkeypatch) == TrainConfig()


def test_train_options_are_read_as_the_option_table_says(monkeypatch):
    cfg = train_config_of(monkeypatch, "--weights", "none", "--freeze-backbone", "no",
                          "--augment", "none", "--quiet", "--no-feature-cache",
                          "--learning-rate", "3e-3", "--distribute", "mirrored")
    assert cfg.weights is None and cfg.freeze_backbone is False and not cfg.augmenting
    assert cfg.progress is False and cfg.cache_features is False
    assert cfg.learning_rate == 3e-3 and cfg.distribute == "mirrored"


def test_every_option_of_train_is_a_field_of_trainconfig():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    flags = {o for a in sub.choices["train"]._actions for o in a.option_strings}
    assert flags - {"-h", "--help", "--extra-train"} == {o.flags for o in OPTIONS if o.cli}


@pytest.mark.parametrize("command", ["train", "distill"])
def test_the_backbone_choices_are_the_builders(command):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    backbone = next(a for a in sub.choices[command]._actions if a.dest == "backbone")
    assert tuple(backbone.choices) == tuple(BACKBONES)


def test_a_config_outside_the_option_table_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="backbone must be one of inception_resnet_v2"):
        TrainConfig(backbone="resnet50").validate()
    with pytest.raises(ConfigError, match="epochs must be >= 1"):
        TrainConfig(epochs=0).validate()


def test_seed_augmentation_runs_in_the_input_pipeline_and_keeps_the_scaling():
    rng = np.random.default_rng(0)
    data = Decoded(rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8),
                   np.array([1, 0] * 3, np.float32))
    cfg = TrainConfig.preset_config("seed", batch_size=3)
    pre = Preprocessing()  # RGB / 255, as the seed
    x, y = next(iter(image_dataset(data, cfg, pre, train=True)))
    assert x.shape == (3, 32, 32, 3) and x.dtype == "float32"
    assert 0.0 <= float(np.min(x)) and float(np.max(x)) <= 1.0
    plain = np.stack([next(iter(image_dataset(data, cfg, pre, train=False)))[0].numpy()])
    assert plain.shape == (1, 3, 32, 32, 3)


def test_a_missing_training_folder_is_one_line_and_exit_2(tmp_path, capsys):
    assert cli.main(["train", str(tmp_path / "nope"), str(tmp_path), "m.keras"]) == 2
    err = capsys.readouterr().err.strip()
    assert "folder not found" in err and "\n" not in err


def test_offline_imagenet_fails_with_a_hint():
    from grasp_success_ros.core.errors import WeightsUnavailableError
    from grasp_success_ros.model.builder import build_model

    with pytest.raises(WeightsUnavailableError, match="--weights PATH"):
        build_model("mobilenet_v3_small", 32, weights="imagenet")
