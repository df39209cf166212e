"""Calibration: temperature scaling fitted on held-out images, stored in the model card and
applied wherever a model output becomes P(success); ``grasp-success calibrate``."""

import json
import shutil

import keras
import numpy as np
import pytest
from tool_helpers import colour_folders, red_minus_blue, solid, write_rgb

from grasp_success_ros.cli import main as cli
from grasp_success_ros.core.errors import ModelCardError
from grasp_success_ros.data.synth import write_dataset
from grasp_success_ros.evaluation.metrics import expected_calibration_error, log_loss
from grasp_success_ros.model.calibration import Calibration, fit_temperature
from grasp_success_ros.model.card import ModelCard, card_path_for
from grasp_success_ros.model.classifier import GraspClassifier


def scores(n, sharpen, seed):
    """Truth drawn with P(success) q, and a model's scores sigmoid(sharpen * logit(q)):
    overconfident for sharpen > 1, underconfident below 1."""
    rng = np.random.default_rng(seed)
    q = rng.uniform(0.02, 0.98, n)
    truth = rng.random(n) < q
    return truth, 1.0 / (1.0 + np.exp(-sharpen * np.log(q / (1.0 - q))))


@pytest.mark.parametrize("sharpen", [3.0, 0.5])
def test_a_fitted_temperature_lowers_the_ece_of_miscalibrated_scores_on_a_held_out_set(sharpen):
    fit_truth, fit_p = scores(2000, sharpen, seed=1)
    truth, p = scores(2000, sharpen, seed=2)
    fitted = fit_temperature(fit_p, fit_truth)
    assert fitted.temperature == pytest.approx(sharpen, rel=0.15)
    before, after = expected_calibration_error(truth, p), \
        expected_calibration_error(truth, fitted.apply(p))
    print(f"sharpen {sharpen}: T {fitted.temperature:.3f}, held-out ECE {before:.4f} -> "
          f"{after:.4f}, log loss {log_loss(truth, p):.4f} -> "
          f"{log_loss(truth, fitted.apply(p)):.4f}")
    assert after < before / 2
    assert log_loss(truth, fitted.apply(p)) < log_loss(truth, p)


def test_temperature_scaling_keeps_the_order_one_half_and_the_ends():
    cal = Calibration(temperature=2.5)
    p = np.array([0.0, 1e-9, 0.2, 0.5, 0.7, 0.999, 1.0])
    out = cal.apply(p)
    assert np.all(np.diff(out) > 0) and out[[0, 3, 6]].tolist() == [0.0, 0.5, 1.0]
    np.testing.assert_allclose(cal.invert(out), p, atol=1e-12)


def test_a_fit_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        fit_temperature([0.9, 0.8], [True, True])


def test_the_card_applies_its_calibration_after_turning_a_p_failure_output_around():
    cal = Calibration(temperature=2.0)
    card = ModelCard(backbone="x", input_size=32, output="p_failure", calibration=cal)
    raw = np.array([[0.1], [0.6]], np.float32)
    np.testing.assert_allclose(card.p_success(raw, calibrated=False), [0.9, 0.4], rtol=1e-6)
    np.testing.assert_allclose(card.p_success(raw), cal.apply([0.9, 0.4]), rtol=1e-6)
    assert ModelCard(backbone="x", input_size=32).calibrated([0.3]).tolist() == [0.3]


def test_a_calibrated_card_round_trips_through_json(tmp_path):
    card = ModelCard(backbone="x", input_size=32, threshold=0.8, threshold_failure=0.1,
                     calibration=Calibration(temperature=1.7, fitted_on="valid", images=40,
                                             scores={"before": {"ece": 0.2}}))
    assert ModelCard.load(card.save(tmp_path / "m.card.json")) == card


@pytest.mark.parametrize("change", [{"calibration": {"method": "platt", "temperature": 1.0}},
                                    {"calibration": {"temperature": 0.0}},
                                    {"threshold": 0.5, "threshold_failure": 0.6}])
def test_a_card_with_a_bad_calibration_or_band_is_refused(tmp_path, change):
    path = tmp_path / "bad.card.json"
    path.write_text(json.dumps(ModelCard(backbone="x", input_size=32).to_dict() | change))
    with pytest.raises(ModelCardError):
        ModelCard.load(path)


def test_a_new_calibration_carries_the_thresholds_over_so_no_verdict_changes():
    old = ModelCard(backbone="x", input_size=32, threshold=0.8, threshold_failure=0.3,
                    calibration=Calibration(temperature=0.7))
    new = old.with_calibration(Calibration(temperature=3.0))
    raw = np.linspace(0.001, 0.999, 999)
    before, after = old.calibrated(raw), new.calibrated(raw)
    assert ((before >= old.threshold) == (after >= new.threshold)).all()
    assert ((before <= old.threshold_failure) == (after <= new.threshold_failure)).all()
    assert new.threshold != pytest.approx(old.threshold)


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_calibrate_writes_the_fit_into_the_tiny_models_card_and_predict_applies_it(
        capsys, tmp_path, trained_model):
    model = tmp_path / "tiny.keras"
    shutil.copy(trained_model, model)
    shutil.copy(card_path_for(trained_model), card_path_for(model))
    write_dataset(tmp_path / "valid", 80, seed=5, height=120, width=160)
    for a, b in (("success", "failure"), ("failure", "success")):  # label noise, as real
        for f in sorted((tmp_path / "valid" / a).iterdir())[:2]:   # sets have: not separable
            f.rename(tmp_path / "valid" / b / f"swapped_{f.name}")
    code, out, _ = run_cli(capsys, "calibrate", model, tmp_path / "valid")
    print(out)
    assert code == 0 and "before: ECE" in out and "after:  ECE" in out
    card = ModelCard.load(card_path_for(model))
    cal = card.calibration
    assert cal.images == 80 and cal.fitted_on == str(tmp_path / "valid") and not cal.at_bound
    assert cal.scores["after"]["log_loss"] <= cal.scores["before"]["log_loss"]
    assert card.threshold == pytest.approx(0.5)  # temperature scaling keeps 0.5
    clf, _ = GraspClassifier.from_path(model)
    frames = [solid((120, 90, 60), (96, 96)), solid((30, 160, 200), (96, 96))]
    np.testing.assert_allclose(clf.predict(frames), cal.apply(clf.predict(frames, False)))


def test_calibrate_gives_a_seed_h5_without_a_card_one_with_the_seed_conventions(
        capsys, tmp_path):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(1, 1, use_bias=False, name="br")(inputs)
    outputs = keras.layers.Activation("sigmoid")(keras.layers.GlobalAveragePooling2D()(x))
    seed = keras.Model(inputs, outputs)  # P(unsuccessful) = sigmoid(4 * (mean B - mean R))
    seed.get_layer("br").set_weights([np.array([-4.0, 0.0, 4.0]).reshape(1, 1, 3, 1)])
    seed.save(tmp_path / "seed.h5")
    folders = colour_folders(tmp_path / "valid", "succ", "zon_desk", n=6)
    write_rgb(folders / "succ" / "bluish.png", solid((60, 40, 120)))  # not separable
    write_rgb(folders / "zon_desk" / "reddish.png", solid((120, 40, 60)))
    code, out, _ = run_cli(capsys, "calibrate", tmp_path / "seed.h5", folders, "--json")
    result = json.loads(out)
    assert code == 0 and result["card"] == str(tmp_path / "seed.card.json")
    card = ModelCard.load(tmp_path / "seed.card.json")
    assert card.output == "p_failure" and card.preprocessing.scale == pytest.approx(1 / 255)
    assert card.calibration.temperature == pytest.approx(result["temperature"])
    clf, notes = GraspClassifier.from_path(tmp_path / "seed.h5")
    assert notes == [] and clf.card == card


def test_an_exported_models_card_carries_the_calibration(tmp_path):
    from grasp_success_ros.model.export import export_model

    cal = Calibration(temperature=2.0, fitted_on="valid", images=12)
    model = red_minus_blue(tmp_path / "rb.keras", calibration=cal)
    result = export_model(model, "tflite", "fp16", out=tmp_path / "rb.fp16.tflite")
    exported, _ = GraspClassifier.from_path(result.path)
    keras_clf, _ = GraspClassifier.from_path(model)
    assert exported.card.calibration == cal
    frames = [solid((200, 40, 40)), solid((90, 40, 110))]
    np.testing.assert_allclose(exported.predict(frames), keras_clf.predict(frames), atol=2e-3)
