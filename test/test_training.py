"""Training from class folders: which folder is success, bad files, the card it writes."""

import shutil

import numpy as np
import pytest

from grasp_success_ros.card import ModelCard, Preprocessing
from grasp_success_ros.dataset import class_folders, load_folders
from grasp_success_ros.errors import DatasetError
from grasp_success_ros.model_io import load_model
from grasp_success_ros.synth import write_dataset
from grasp_success_ros.training import TrainConfig, class_weights, train


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
    data = load_folders(tmp_path, 32, Preprocessing())
    assert data.counts() == {"success": 2, "failure": 2, "skipped": 2}
    assert data.images.shape == (4, 32, 32, 3) and data.images.dtype == np.uint8


def test_an_empty_class_stops_with_a_clear_message(tmp_path):
    write_dataset(tmp_path, 4, seed=0)
    shutil.rmtree(tmp_path / "failure")
    (tmp_path / "failure").mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        load_folders(tmp_path, 32, Preprocessing())


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
