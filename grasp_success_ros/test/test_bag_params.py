"""One parameters file for the node and bag-eval (``--params-file``): the node's YAML, its
cameras included, read as the node reads it and validated by the node's own table; a bag's
cameras judged through one grasp service, each record on its camera. In-process, no DDS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grasp_success_ros.bags.evaluate import ServiceSettings, evaluate_bag
from grasp_success_ros.bags.node_params import read_node_params
from grasp_success_ros.bags.topics import BagTopics
from grasp_success_ros.bags.writer import CameraStream, write_cameras
from grasp_success_ros.cli import main as cli
from grasp_success_ros.cli.bag_params import eval_setup
from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.core.grasp_service import PredictFunction
from grasp_success_ros.core.params import NodeConfig
from grasp_success_ros.core.policy import PolicyConfig
from grasp_success_ros.data.synth import grasp_stream

SMALL = {"height": 120, "width": 160}
SHIPPED = Path(__file__).resolve().parent.parent / "config" / "grasp_success.yaml"
# The two hands of the bag: left on the default topics under its name, right on its own.
LEFT = BagTopics("/left/camera/image_raw", "/left/grasp_completed",
                 "/left/grasp_success/ground_truth", release="/left/grasp_released")
RIGHT = BagTopics("/right_hand/camera/image_raw", "/right_hand/grasp_completed",
                  "/right_hand/grasp_success/ground_truth", release="/right/grasp_released")
LEFT_LABELS, RIGHT_LABELS = [True, True, False], [False, False]  # seeds 3 and 2
TWO_CAMERAS = """\
/**:
  ros__parameters:
    model_path: /opt/models/grasp.keras   # the robot's: bag-eval takes --model
    warmup: false
    cameras: [left, right]
    cameras.right.image_topic: right_hand/camera/image_raw
    cameras.right.trigger_topic: right_hand/grasp_completed
    cameras.right.namespace: right_hand
"""


def stream(seed: int, n: int, topics: BagTopics) -> CameraStream:
    return CameraStream(list(grasp_stream(seed, n, **SMALL)), topics.image, topics.trigger,
                        topics.label)


@pytest.fixture(scope="module")
def two_camera_bag(tmp_path_factory) -> Path:
    """Two hands recorded together, at the same pace: left 3 grasps, right 2."""
    path = tmp_path_factory.mktemp("two") / "hands"
    write_cameras(path, [stream(3, 3, LEFT), stream(2, 2, RIGHT)])
    return path


def params_file(tmp_path: Path, text: str, name: str = "params.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run_cli(*argv) -> int:
    return cli.main([str(a) for a in argv])


def setup_of(*argv):
    return eval_setup(cli.build_parser().parse_args(["bag-eval", "bag", "--model", "m.keras",
                                                     *map(str, argv)]))


def expect_error(capsys, *argv) -> str:
    code = run_cli(*argv)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


# ------------------------------------------------------------------------- the engine


def test_every_camera_of_a_bag_is_judged_by_one_service_each_event_on_its_camera(
        two_camera_bag):
    batches = []

    def predict(images):
        batches.append(len(images))
        return [0.9] * len(images)

    results, source = evaluate_bag(two_camera_bag, PredictFunction(predict), PolicyConfig(),
                                   {"left": LEFT, "right": RIGHT})
    assert [r.truth for r in results if r.camera == "left"] == LEFT_LABELS
    assert [r.truth for r in results if r.camera == "right"] == RIGHT_LABELS
    assert [r.record.event_id for r in results] == [1, 2, 3, 4, 5]  # the service's, in order
    assert source == f"{LEFT.label}, {RIGHT.label}"
    assert batches == [2, 2, 1]  # events ready together: one forward pass for both hands


def test_one_camera_of_a_bag_is_judged_as_a_bag_of_its_own(two_camera_bag):
    alone, _ = evaluate_bag(two_camera_bag, PredictFunction(lambda i: [0.9] * len(i)),
                            PolicyConfig(), RIGHT)
    assert [r.camera for r in alone] == ["", ""]
    assert [r.truth for r in alone] == RIGHT_LABELS


# ------------------------------------------------------------------------- the file


def test_the_shipped_params_file_configures_bag_eval_as_the_node_defaults():
    setup = setup_of("--params-file", SHIPPED)
    assert setup.config == NodeConfig.from_values({"model_path": "m.keras"})
    assert setup.topics == BagTopics() and setup.settings == ServiceSettings()


def test_the_files_values_and_cameras_are_read_as_the_node_reads_them(tmp_path):
    path = params_file(tmp_path, TWO_CAMERAS + "    frame_selection: n_after\n"
                       "    streaming: false\n    buffer_size: 30\n")
    setup = setup_of("--params-file", path)
    assert setup.config.frame_selection == "n_after" and setup.config.warmup is False
    assert setup.settings == ServiceSettings(buffer_size=30, streaming=False)
    assert setup.topics == {"left": LEFT, "right": RIGHT}


def test_the_nodes_own_section_and_nested_maps_are_read(tmp_path):
    path = params_file(tmp_path, "camera_driver:\n  ros__parameters: {fps: 30}\n"
                       "grasp_success_node:\n  ros__parameters:\n    settle_s: 0.1\n"
                       "    qos_overrides:\n      /camera/image_raw:\n        subscription:\n"
                       "          reliability: reliable\n")
    assert read_node_params(path).values == {"settle_s": 0.1}


def test_an_option_given_beats_the_file_and_the_file_beats_the_defaults(tmp_path):
    path = params_file(tmp_path, "/**:\n  ros__parameters:\n    frame_selection: n_after\n"
                       "    n_frames: 3\n    trigger_type: header\n")
    setup = setup_of("--params-file", path, "--n-frames", "2")
    assert (setup.config.frame_selection, setup.config.n_frames) == ("n_after", 2)
    assert setup.config.trigger_type == "header" and setup.topics.trigger_type == "header"
    assert setup_of("--params-file", path, "--trigger-type", "empty").topics.trigger_type \
        == "empty"


def test_image_transport_compressed_reads_the_compressed_topic_as_the_node_subscribes(
        tmp_path):
    path = params_file(tmp_path, "/**:\n  ros__parameters:\n    image_transport: compressed\n")
    assert setup_of("--params-file", path).topics.image == "/camera/image_raw/compressed"


@pytest.mark.parametrize(("line", "message"), [
    ("n_frames: 50", "n_frames must be in [1, 30], not 50"),
    ("combine: median", "combine must be one of ('mean', 'vote'), not 'median'"),
    ("settle_s: 1", "settle_s must be a double, as the node declares it, not 1 "
                    "(write 1.0)"),
    ("threshold_failure: 0.2", "threshold_failure needs threshold set too"),
])
def test_an_invalid_value_in_the_file_is_a_one_line_error(tmp_path, capsys, line, message):
    path = params_file(tmp_path, f"/**:\n  ros__parameters:\n    {line}\n")
    err = expect_error(capsys, "bag-eval", "bag", "--model", "m.keras", "--params-file", path)
    assert f"params file {path}: " in err and message in err


def test_a_parameter_the_node_does_not_know_is_named(tmp_path, capsys):
    path = params_file(tmp_path, TWO_CAMERAS + "    n_frame: 3\n"
                       "    cameras.middle.namespace: middle\n    use_sim_time: true\n")
    err = expect_error(capsys, "bag-eval", "bag", "--model", "m.keras", "--params-file", path)
    assert "grasp_success_node has no parameter cameras.middle.namespace, n_frame" in err


def test_a_file_without_a_section_for_the_node_names_the_sections_it_has(tmp_path):
    path = params_file(tmp_path, "camera_driver:\n  ros__parameters: {fps: 30}\n")
    with pytest.raises(ConfigError, match="no parameters for grasp_success_node "
                                          r"\(sections: camera_driver;"):
        read_node_params(path)


def test_several_cameras_refuse_one_cameras_options(tmp_path, capsys, two_camera_bag):
    path = params_file(tmp_path, TWO_CAMERAS)
    err = expect_error(capsys, "bag-eval", two_camera_bag, "--model", "m.keras",
                       "--params-file", path, "--labels", SHIPPED)
    assert "--labels: a labels CSV numbers one camera's events" in err
    err = expect_error(capsys, "bag-eval", two_camera_bag, "--model", "m.keras",
                       "--params-file", path, "--image-topic", "/camera/image_raw")
    assert "--image-topic would name one camera's topic of 2" in err


# ------------------------------------------------------------------------- the command


def bag_eval_json(capsys, *argv) -> dict:
    assert run_cli("bag-eval", *argv, "--json", "--no-progress") == 0
    return json.loads(capsys.readouterr().out)


def test_bag_eval_judges_every_camera_of_a_params_file_each_record_on_its_camera(
        tmp_path, capsys, two_camera_bag, trained_model):
    out = tmp_path / "out"
    doc = bag_eval_json(capsys, two_camera_bag, "--model", trained_model, "--params-file",
                        params_file(tmp_path, TWO_CAMERAS), "--out", out)
    cameras = [e["camera"] for e in doc["events"]]
    assert cameras == ["left", "right", "left", "right", "left"]
    assert [e["truth"] for e in doc["events"] if e["camera"] == "right"] == RIGHT_LABELS
    assert {name: c["events"] for name, c in doc["summary"]["cameras"].items()} == \
        {"left": 3, "right": 2}
    rows = (out / "events.csv").read_text().splitlines()
    assert rows[0].startswith("bag,camera,event_id") and rows[2].startswith("hands,right,2,")
    assert "hands right event 2" in (out / "report.html").read_text()


def test_a_params_file_with_one_camera_gives_the_output_of_its_topics(
        tmp_path, capsys, two_camera_bag, trained_model):
    one = params_file(tmp_path, "/**:\n  ros__parameters:\n    cameras: [left]\n")
    with_file = bag_eval_json(capsys, two_camera_bag, "--model", trained_model,
                              "--params-file", one)
    by_topics = bag_eval_json(capsys, two_camera_bag, "--model", trained_model,
                              "--image-topic", LEFT.image, "--trigger-topic", LEFT.trigger,
                              "--label-topic", LEFT.label)
    assert with_file == by_topics
    assert "camera" not in with_file["events"][0] and "cameras" not in with_file["summary"]
    assert [e["truth"] for e in with_file["events"]] == LEFT_LABELS


def test_an_option_given_beats_the_params_file_in_the_records(tmp_path, capsys,
                                                              two_camera_bag, trained_model):
    path = params_file(tmp_path, TWO_CAMERAS + "    frame_selection: n_after\n"
                       "    n_frames: 3\n")
    doc = bag_eval_json(capsys, two_camera_bag, "--model", trained_model, "--params-file",
                        path, "--n-frames", "2")
    assert {e["policy"] for e in doc["events"]} == {doc["events"][0]["policy"]}
    assert doc["events"][0]["policy"].startswith("n_after")
    assert {len(e["frame_stamps"]) for e in doc["events"]} == {2}
