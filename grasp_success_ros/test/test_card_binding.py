"""A model card belongs to its model: writers record each file's SHA-256 and size, loaders
refuse a card written for another file (unless told to accept it), and the node's fence
(model_dirs, max_model_mb) refuses a model path before anything is read."""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest
from tool_helpers import colour_folders, red_minus_blue

from grasp_success_ros.cli import main as cli
from grasp_success_ros.cli.main import build_parser
from grasp_success_ros.core.errors import (
    ConfigError,
    ModelCardError,
    ModelCardMismatchError,
    ModelPathRefusedError,
)
from grasp_success_ros.core.params import NodeConfig
from grasp_success_ros.model.card import ModelCard, card_path_for
from grasp_success_ros.model.classifier import GraspClassifier
from grasp_success_ros.model.digest import file_digest, recorded
from grasp_success_ros.model.fence import check_model_path
from grasp_success_ros.model.loading import load_model
from grasp_success_ros.model.runtimes import load_exported


def blue_minus_red(path, size: int = 32):
    """Another model of the same shape as ``red_minus_blue`` (the opposite verdicts)."""
    red_minus_blue(path, size)
    model = load_model(path).model
    model.get_layer("rb").set_weights([np.array([-4.0, 0.0, 4.0]).reshape(1, 1, 3, 1)])
    model.save(path)  # the model alone, as a retrained file copied over the old one is
    return path


def tiny_onnx(path, scale: float, size: int = 32):
    """An ONNX grasp classifier: P(success) = sigmoid(scale * mean of the input)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2, 3], keepdims=0),
         helper.make_node("Mul", ["m", "scale"], ["s"]),
         helper.make_node("Unsqueeze", ["s", "one"], ["u"]),
         helper.make_node("Sigmoid", ["u"], ["p"])], "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", size, size, 3])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["n", 1])],
        [helper.make_tensor("scale", TensorProto.FLOAT, [], [scale]),
         helper.make_tensor("one", TensorProto.INT64, [1], [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


# --- the digest writers record --------------------------------------------------------------

def test_a_saved_model_s_card_records_the_sha256_and_size_of_that_file(tmp_path):
    model = red_minus_blue(tmp_path / "m.keras")
    card = ModelCard.load(card_path_for(model))
    assert card.files == {"m.keras": file_digest(model)}
    assert card.files["m.keras"]["size"] == model.stat().st_size


def test_file_digest_is_the_sha256_of_the_whole_file_read_in_chunks(tmp_path):
    import hashlib

    data = np.random.default_rng(0).bytes(3 * (1 << 20) + 17)  # over three chunks
    (tmp_path / "f").write_bytes(data)
    assert file_digest(tmp_path / "f") == {"sha256": hashlib.sha256(data).hexdigest(),
                                           "size": len(data)}


def test_a_card_with_a_malformed_files_entry_is_refused(tmp_path):
    path = tmp_path / "bad.card.json"
    card = ModelCard(backbone="test", input_size=32).to_dict()
    path.write_text(json.dumps({**card, "files": {"m.keras": {"sha256": "abc", "size": 1}}}))
    with pytest.raises(ModelCardError, match="files must map"):
        ModelCard.load(path)


# --- loading checks them --------------------------------------------------------------------

def test_a_retrained_model_copied_over_the_old_one_keeping_the_old_card_is_refused(tmp_path):
    model = red_minus_blue(tmp_path / "m.keras")
    shutil.copy(blue_minus_red(tmp_path / "retrained" / "m.keras"), model)
    with pytest.raises(ModelCardMismatchError) as refused:
        GraspClassifier.from_path(model)
    line = str(refused.value)
    assert "\n" not in line and str(model) in line and str(card_path_for(model)) in line
    assert "re-export" in line and "re-calibrate" in line and "--accept-card-mismatch" in line


def test_a_retrained_onnx_copied_over_the_old_one_keeping_the_old_card_is_refused(tmp_path):
    model = tiny_onnx(tmp_path / "m.onnx", 4.0)
    recorded(ModelCard(backbone="test", input_size=32), [model]).save(card_path_for(model))
    GraspClassifier.from_path(model)  # its own card: served
    shutil.copy(tiny_onnx(tmp_path / "retrained.onnx", -4.0), model)
    with pytest.raises(ModelCardMismatchError, match="SHA-256"):
        load_exported(model)


def test_a_seed_h5_beside_a_p_success_card_of_another_model_is_refused(tmp_path):
    red_minus_blue(tmp_path / "m.keras")  # m.card.json: output p_success, records m.keras
    seed = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(1, activation="sigmoid")])
    seed.save(tmp_path / "m.h5")  # the seed's P(failure) model, read with m.card.json
    with pytest.raises(ModelCardMismatchError, match="describes m.keras, not this file"):
        GraspClassifier.from_path(tmp_path / "m.h5")


def test_a_file_of_another_size_is_refused_by_its_size(tmp_path):
    model = red_minus_blue(tmp_path / "m.keras")
    with model.open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelCardMismatchError, match="bytes, the card records"):
        load_model(model)


def test_accept_card_mismatch_serves_it_with_a_warning_note(tmp_path):
    model = red_minus_blue(tmp_path / "m.keras")
    shutil.copy(blue_minus_red(tmp_path / "retrained" / "m.keras"), model)
    clf, notes = GraspClassifier.from_path(model, accept_card_mismatch=True)
    assert clf.predict([np.full((8, 8, 3), (200, 0, 0), np.uint8)])[0] < 0.5  # the new model
    assert any("Accepted" in n and "may not fit" in n for n in notes)


def test_a_model_and_its_card_copied_under_a_new_name_still_belong_together(tmp_path):
    model = red_minus_blue(tmp_path / "m.keras")
    shutil.copy(model, tmp_path / "best.keras")
    shutil.copy(card_path_for(model), tmp_path / "best.card.json")
    assert load_model(tmp_path / "best.keras").notes == []


def test_a_card_without_digests_loads_with_a_warning_once_per_process(tmp_path):
    model = red_minus_blue(tmp_path / "m.keras")
    ModelCard(backbone="test", input_size=32).save(card_path_for(model))  # hand-written
    first, again = load_model(model).notes, load_model(model).notes
    assert len(first) == 1 and "records no digest" in first[0] and again == []


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_cli_refuses_a_mismatch_in_one_line_and_the_option_accepts_it(capsys, tmp_path):
    model = red_minus_blue(tmp_path / "m.keras")
    shutil.copy(blue_minus_red(tmp_path / "retrained" / "m.keras"), model)
    folders = colour_folders(tmp_path / "valid", n=4)
    code, _, err = run_cli(capsys, "predict", folders / "success", model)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "does not belong" in err
    code, _, err = run_cli(capsys, "predict", folders / "success", model,
                           "--accept-card-mismatch")
    assert code in (0, 1) and "note:" in err and "Accepted" in err


def test_calibrate_binds_an_accepted_card_to_the_model_it_calibrated(capsys, tmp_path):
    model = red_minus_blue(tmp_path / "m.keras")
    card = ModelCard.load(card_path_for(model))
    recorded(card, [model]).replace(files={**card.files, "m.onnx": card.files["m.keras"]}) \
        .save(card_path_for(model))  # a shared card that also describes an m.onnx
    shutil.copy(blue_minus_red(tmp_path / "retrained" / "m.keras"), model)
    folders = colour_folders(tmp_path / "valid", n=4)
    code, _, _ = run_cli(capsys, "calibrate", model, folders, "--accept-card-mismatch")
    assert code == 0
    assert ModelCard.load(card_path_for(model)).files == {"m.keras": file_digest(model)}
    assert load_model(model).notes == []


def test_every_command_that_loads_a_model_takes_accept_card_mismatch():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in ("predict", "evaluate", "calibrate", "export", "bag-eval", "distill", "bench",
                 "train-hand"):
        options = {o for a in sub.choices[name]._actions for o in a.option_strings}
        assert "--accept-card-mismatch" in options, name


# --- the node's fence around model_path -----------------------------------------------------

def test_a_model_outside_model_dirs_is_refused_on_its_real_path(tmp_path):
    allowed, elsewhere = tmp_path / "models", tmp_path / "elsewhere"
    allowed.mkdir()
    model = red_minus_blue(elsewhere / "m.keras")
    check_model_path(model)  # empty model_dirs: anywhere
    with pytest.raises(ModelPathRefusedError, match="outside model_dirs"):
        check_model_path(model, [str(allowed)])
    (allowed / "link.keras").symlink_to(model)
    (allowed / "link.card.json").symlink_to(card_path_for(model))
    with pytest.raises(ModelPathRefusedError, match="really"):
        check_model_path(allowed / "link.keras", [str(allowed)])
    check_model_path(allowed / ".." / "elsewhere" / "m.keras", [str(elsewhere)])


def test_a_card_linked_from_outside_model_dirs_is_refused(tmp_path):
    allowed = tmp_path / "models"
    model = red_minus_blue(allowed / "m.keras")
    outside = tmp_path / "outside.card.json"
    card_path_for(model).rename(outside)
    card_path_for(model).symlink_to(outside)
    with pytest.raises(ModelPathRefusedError, match="card .* outside model_dirs"):
        check_model_path(model, [str(allowed)])


def test_a_model_over_max_model_mb_is_refused_before_loading_and_0_is_no_limit(tmp_path):
    big = tmp_path / "big.onnx"
    big.write_bytes(b"\0" * 1_500_001)
    with pytest.raises(ModelPathRefusedError, match="2 MB, over max_model_mb .1 MB."):
        check_model_path(big, max_model_mb=1)
    check_model_path(big, max_model_mb=2)
    check_model_path(big, max_model_mb=0)


def test_model_dirs_naming_no_directory_is_refused(tmp_path):
    with pytest.raises(ModelPathRefusedError, match="not a directory"):
        check_model_path(tmp_path / "m.keras", [str(tmp_path / "nowhere")])


def test_model_dirs_is_a_list_of_directories_in_the_node_config():
    config = NodeConfig.from_values({"model_path": "m.keras", "model_dirs": ["/models"]})
    assert config.model_dirs == ["/models"] and config.max_model_mb == 2048
    with pytest.raises(ConfigError, match="model_dirs must be a list"):
        NodeConfig.from_values({"model_path": "m.keras", "model_dirs": "/models"})


def test_bench_refuses_a_mismatched_model_up_front_and_benches_an_accepted_one_as_a_copy(
        tmp_path):
    from grasp_success_ros.bench.config import BenchConfig
    from grasp_success_ros.bench.models import checked_model

    model = red_minus_blue(tmp_path / "m.keras")
    shutil.copy(blue_minus_red(tmp_path / "retrained" / "m.keras"), model)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(ModelCardMismatchError):
        checked_model(model, BenchConfig(model=str(model), log=lambda s: None), work)
    copy = checked_model(model, BenchConfig(model=str(model), accept_card_mismatch=True,
                                             log=lambda s: None), work)
    assert copy == work / "m.keras" and load_model(copy).notes == []
