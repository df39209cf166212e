"""Distillation: a student trained on a teacher's P(success) follows the teacher, and the
command reports both side by side."""

import json

import numpy as np
import pytest
from tool_helpers import backbone_weights

from grasp_success_ros.cli import main as cli
from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.data.synth import write_dataset
from grasp_success_ros.model.card import ModelCard
from grasp_success_ros.training.config import STUDENT_DEFAULTS, TrainConfig
from grasp_success_ros.training.distill import soft_targets


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """A few small synthetic scenes: labelled train and valid folders, unlabelled frames."""
    root = tmp_path_factory.mktemp("distill")
    write_dataset(root / "train", 40, seed=31, height=120, width=160)
    write_dataset(root / "valid", 40, seed=32, height=120, width=160)
    write_dataset(root / "frames", 20, seed=33, height=120, width=160)
    return root


def test_labelled_images_blend_label_and_teacher_and_unlabelled_ones_take_the_teacher():
    labels = np.array([1.0, 0.0, np.nan], np.float32)
    teacher = np.array([0.8, 0.4, 0.3], np.float32)
    assert soft_targets(labels, teacher, 0.5) == pytest.approx([0.9, 0.2, 0.3])
    assert soft_targets(labels, teacher, 0.0) == pytest.approx(teacher)


def test_the_student_follows_the_teacher_and_the_report_puts_them_side_by_side(
        scenes, trained_model, tmp_path, capsys):
    weights = backbone_weights(trained_model, tmp_path / "bb.weights.h5")
    student = tmp_path / "student.keras"
    code = cli.main(["distill", str(trained_model), str(scenes / "train"),
                     str(scenes / "valid"), str(student), "--unlabelled",
                     str(scenes / "frames"), "--input-size", "80", "--weights", str(weights),
                     "--epochs", "20", "--learning-rate", "3e-3", "--alpha", "0.3",
                     "--runs", "3", "--quiet"])
    assert code == 0
    card = ModelCard.load(tmp_path / "student.card.json")
    assert (card.input_size, card.output) == (80, "p_success")
    assert card.training["distilled_from"]["alpha"] == 0.3
    assert card.training["distilled_from"]["teacher"] == str(trained_model)
    assert card.training["train_counts"] == {"labelled": 40, "unlabelled": 20, "skipped": 0}
    report = json.loads((tmp_path / "student.distill.json").read_text())
    for side in ("teacher", "student"):
        assert 0.0 <= report[side]["accuracy"] <= 1.0 and report[side]["images"] == 40
        assert report[side]["forward_ms_p50"] > 0
    assert report["agreement"] >= 0.8  # chance is about 0.5
    assert "forward ms p50 (batch 1)" in capsys.readouterr().out


def test_distill_options_left_out_take_the_student_recipe(monkeypatch, capsys):
    seen = []

    def stop(teacher, train_dir, valid_dir, student_out, cfg, *args, **kwargs):
        seen.append(cfg)
        raise ConfigError("stopped")

    monkeypatch.setattr("grasp_success_ros.training.distill.distill", stop)
    assert cli.main(["distill", "t.keras", "a", "b", "s.keras"]) == 2
    assert cli.main(["distill", "t.keras", "a", "b", "s.keras", "--epochs", "3", "--quiet"]) == 2
    assert seen[0] == TrainConfig(**STUDENT_DEFAULTS)
    assert seen[1] == TrainConfig(**{**STUDENT_DEFAULTS, "epochs": 3, "progress": False})


def test_a_missing_teacher_is_one_line_and_exit_2(scenes, tmp_path, capsys):
    code = cli.main(["distill", str(tmp_path / "nope.keras"), str(scenes / "train"),
                     str(scenes / "valid"), str(tmp_path / "s.keras")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "model file not found" in err and "\n" not in err


def test_an_empty_unlabelled_folder_is_one_line_and_exit_2(scenes, trained_model, tmp_path,
                                                           capsys):
    (tmp_path / "empty").mkdir()
    code = cli.main(["distill", str(trained_model), str(scenes / "train"),
                     str(scenes / "valid"), str(tmp_path / "s.keras"), "--unlabelled",
                     str(tmp_path / "empty")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "holds no images" in err and "\n" not in err
