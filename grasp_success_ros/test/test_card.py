"""The model card: saved beside every model, read back identically, validated."""

import json

import numpy as np
import pytest

from grasp_success_ros.core.errors import ModelCardError
from grasp_success_ros.model.card import ModelCard, Preprocessing, card_path_for, seed_card


def test_card_lives_beside_its_model():
    assert card_path_for("models/demo.keras").as_posix() == "models/demo.card.json"
    assert card_path_for("/m/model.h5").as_posix() == "/m/model.card.json"


def test_card_round_trips_through_json(tmp_path):
    card = ModelCard(backbone="inception_resnet_v2", input_size=350, threshold=0.7,
                     preprocessing=Preprocessing(scale=2 / 255, offset=-1.0),
                     training={"train_counts": {"success": 3, "failure": 4}})
    path = card.save(tmp_path / "m.card.json")
    assert ModelCard.load(path) == card


def test_the_card_reads_raw_outputs_as_p_success_flipping_a_p_failure_model():
    raw = np.array([[0.2], [0.9]], np.float32)
    flipped = ModelCard(backbone="x", input_size=32, output="p_failure").p_success(raw)
    kept = ModelCard(backbone="x", input_size=32).p_success(raw)
    assert flipped.shape == kept.shape == (2,) and flipped.dtype == np.float64
    np.testing.assert_allclose(flipped, [0.8, 0.1], rtol=1e-6)
    np.testing.assert_allclose(kept, [0.2, 0.9], rtol=1e-6)


def test_seed_card_says_the_output_is_p_unsuccessful():
    card = seed_card()
    assert card.output == "p_failure" and card.input_size == 350
    assert card.preprocessing.scale == pytest.approx(1 / 255) and card.preprocessing.offset == 0
    assert (card.success_class, card.failure_class) == ("succ", "zon_desk")


@pytest.mark.parametrize("change", [{"output": "p_maybe"}, {"threshold": 2},
                                    {"preprocessing": {"color_order": "GBR"}},
                                    {"surprise": 1}])
def test_malformed_cards_are_refused_with_a_reason(tmp_path, change):
    data = ModelCard(backbone="x", input_size=96).to_dict() | change
    path = tmp_path / "bad.card.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelCardError):
        ModelCard.load(path)
