"""Atomic writes (data/atomic.py): a write that fails leaves the old file whole and no
temporary file; a model and its card change as a pair, the card last; a training cut off by
SIGINT leaves a model and card that predict serves."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tool_helpers import colour_folders, red_minus_blue, solid, write_rgb

from grasp_success_ros.cli import main as cli
from grasp_success_ros.data.atomic import atomic_pair, atomic_path, write_bytes, write_text
from grasp_success_ros.data.folders import image_files
from grasp_success_ros.model.card import ModelCard, card_path_for
from grasp_success_ros.model.loading import load_model, save_model

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def full_disk() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_writer_that_fails_half_way_leaves_the_old_file_and_no_temporary_file(tmp_path):
    target = write_text(tmp_path / "report.json", '{"old": true}\n')
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.write_text('{"new": tr')  # half of the new content, then the disk is full
        raise full_disk()
    assert target.read_text() == '{"old": true}\n'
    assert entries(tmp_path) == ["report.json"]


def test_the_temporary_file_keeps_the_suffix_a_library_chooses_the_format_by(tmp_path):
    with atomic_path(tmp_path / "m.keras") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".keras" and tmp.name.startswith(".")
        tmp.write_bytes(b"new")
    assert entries(tmp_path) == ["m.keras"]


def test_an_atomic_write_gives_the_file_the_mode_a_plain_write_would(tmp_path):
    (tmp_path / "plain").write_bytes(b"x")
    write_bytes(tmp_path / "atomic", b"x")
    assert (tmp_path / "atomic").stat().st_mode == (tmp_path / "plain").stat().st_mode


def test_a_pair_whose_model_cannot_be_put_in_place_leaves_the_old_card(tmp_path):
    """The card is renamed last: where the model's rename fails, the card never changes."""
    model, card = tmp_path / "m.keras", tmp_path / "m.card.json"
    (model / "blocker").mkdir(parents=True)  # a folder where the model should go
    card.write_text("old card")
    with pytest.raises(OSError), atomic_pair(model, card_path_for) as (model_tmp, card_tmp):
        model_tmp.write_bytes(b"new model")
        card_tmp.write_text("new card")
    assert card.read_text() == "old card"
    assert entries(tmp_path) == ["m.card.json", "m.keras"]


def test_the_pair_temporaries_are_named_as_a_model_and_its_card(tmp_path):
    with atomic_pair(tmp_path / "m.keras", card_path_for) as (model_tmp, card_tmp):
        assert card_tmp == card_path_for(model_tmp)
        model_tmp.write_bytes(b"model")
        card_tmp.write_text("card")
    assert entries(tmp_path) == ["m.card.json", "m.keras"]


class _FullDiskModel:
    """A model whose save writes half a file and then finds the disk full."""

    def save(self, path):
        Path(path).write_bytes(b"PK\x03\x04 half a zip")
        raise full_disk()


def test_a_model_save_that_fails_leaves_the_old_model_and_card_loadable(tmp_path):
    path = red_minus_blue(tmp_path / "m.keras")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(OSError):
        save_model(_FullDiskModel(), path, ModelCard(backbone="other", input_size=64))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert load_model(path).card.backbone == "test"


def test_an_image_left_by_a_killed_write_is_not_listed(tmp_path):
    write_rgb(tmp_path / "success" / "a.png", solid((200, 0, 0)))
    write_rgb(tmp_path / "success" / ".b.tmp-0a1b2c3d.png", solid((200, 0, 0)))
    assert [p.name for p in image_files(tmp_path)] == ["a.png"]


# --------------------------------------------------------------------------- train, cut off


def _train_until_first_epoch_then(signum: int, tmp_path: Path) -> tuple[int, str]:
    """``grasp-success train`` in its own process, sent ``signum`` once it printed the
    end of its first epoch; (exit code, everything it printed)."""
    colour_folders(tmp_path / "train", n=6, seed=1)
    colour_folders(tmp_path / "valid", n=4, seed=2)
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(PACKAGE_DIR), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "grasp_success_ros", "train", tmp_path / "train",
         tmp_path / "valid", tmp_path / "m.keras", "--backbone", "mobilenet_v3_small",
         "--input-size", "32", "--weights", "none", "--epochs", "500", "--batch-size", "4",
         "--dense-units", "8", "--no-early-stopping", "--no-tensorboard", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    printed = []
    try:
        for line in proc.stdout:
            printed.append(line)
            if line.startswith("epoch 1/"):
                proc.send_signal(signum)
                break
        printed += proc.stdout.readlines()
        return proc.wait(timeout=120), "".join(printed)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_training_cut_off_by_sigint_exits_130_and_leaves_a_model_predict_serves(
        tmp_path, capsys):
    code, printed = _train_until_first_epoch_then(signal.SIGINT, tmp_path)
    assert code == 130, printed
    assert "training interrupted at epoch" in printed and "SIGINT" in printed, printed
    card = json.loads((tmp_path / "m.card.json").read_text())
    at = card["training"]["interrupted"]["at_epoch"]
    assert 1 <= at < 500 and card["training"]["interrupted"]["reason"] == "SIGINT"
    assert f"interrupted at epoch {at} of 500" in card["notes"]
    assert card["calibration"] is None
    assert {"m.keras", "m.card.json", "m.history.csv"} <= set(entries(tmp_path))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    code = cli.main(["predict", str(tmp_path / "valid"), str(tmp_path / "m.keras"), "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0 and len(rows) == 8 and all(r["verdict"] is not None for r in rows)


def test_a_training_whose_checkpoint_cannot_be_written_keeps_its_best_weights(tmp_path):
    """An OSError while fitting (here the checkpoint's path is taken by a folder, as a full
    disk would refuse it) stops the training with the best weights so far written."""
    from grasp_success_ros.core.errors import TrainingInterrupted
    from grasp_success_ros.training.train import TrainConfig, train

    colour_folders(tmp_path / "train", n=4, seed=1)
    colour_folders(tmp_path / "valid", n=2, seed=2)
    (tmp_path / "m.logs" / "best.weights.h5" / "taken").mkdir(parents=True)
    cfg = TrainConfig(backbone="mobilenet_v3_small", input_size=32, weights=None, epochs=3,
                      batch_size=4, dense_units=8, tensorboard=False, plots=False)
    with pytest.raises(TrainingInterrupted, match="interrupted at epoch 1") as caught:
        train(tmp_path / "train", tmp_path / "valid", tmp_path / "m.keras", cfg,
              log=lambda s: None)
    assert caught.value.signal is None and caught.value.saved == str(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert loaded.card.training["interrupted"]["at_epoch"] == 1
    assert "Error" in loaded.card.training["interrupted"]["reason"]


# --------------------------------------------------------------------------- over real DDS


def _colour_model(sign: float, size: int = 32):
    """P(success) = sigmoid(sign * 4 * (mean R - mean B)): the two signs tell apart which
    of two models judged a red frame (0.96 or 0.04)."""
    import keras

    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Conv2D(1, 1, use_bias=False, name="rb")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Activation("sigmoid", name="p_success")(x))
    model.get_layer("rb").set_weights([sign * np.array([4.0, 0.0, -4.0]).reshape(1, 1, 3, 1)])
    return model


@pytest.mark.ros
def test_a_model_rewritten_in_place_while_the_node_reloads_it_always_serves_a_whole_model(
        ros, ros_install, tmp_path):
    """Each of 20 rewrites (two models in turn) starts as the node is asked to reload the
    same path: every reload succeeds and every event after it is judged by one of them."""
    import threading

    import rosnode

    path, card = tmp_path / "m.keras", ModelCard(backbone="test", input_size=32)
    models = [_colour_model(+1.0), _colour_model(-1.0)]
    save_model(models[0], path, card)
    red = solid((220, 30, 30), (120, 160))
    refused, p_values = [], []
    with rosnode.node_and_player(ros_install, path, tmp_path / "node.log", "/atomic") as (
            player, _):
        for i in range(20):
            writer = threading.Thread(target=save_model, args=(models[(i + 1) % 2], path, card))
            writer.start()
            result = rosnode.set_parameter(player, "/atomic/grasp_success_node", "model_path",
                                           str(path))
            writer.join()
            if not result.successful:
                refused.append(result.reason)
            player.clear()
            rosnode.event_then_frames(player, [red] * 3)
            p_values += [r["p_success"] for r in player.wait_for_results(1, timeout=10.0)]
    assert not refused, refused
    assert len(p_values) == 20 and all(p is not None for p in p_values), p_values
    one, other = 1 / (1 + np.exp(-4 * 190 / 255)), 1 / (1 + np.exp(4 * 190 / 255))
    assert all(min(abs(p - one), abs(p - other)) < 1e-3 for p in p_values), p_values
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
