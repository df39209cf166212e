"""Bag tools without ROS: reading rosbag2 layouts, event times, ground truth, bag-eval, extract,
and clear errors for bad bags."""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import bag_formats
import pytest

from grasp_success_ros.bags.evaluate import evaluate_bag, summarize
from grasp_success_ros.bags.reader import frame_decoder, load_frames, open_bag, read_session
from grasp_success_ros.bags.report import format_report, write_plots
from grasp_success_ros.bags.topics import BagTopics, typestore
from grasp_success_ros.bags.writer import bool_cdr, write_items, write_session
from grasp_success_ros.cli import main as cli
from grasp_success_ros.core.errors import BagError
from grasp_success_ros.core.grasp_service import PredictFunction
from grasp_success_ros.core.policy import PolicyConfig
from grasp_success_ros.core.stamps import ns_to_s

SMALL = {"height": 120, "width": 160}
FPS = 30.0

HIGH = PredictFunction(lambda images: [0.9] * len(images))  # P(success) of every frame
LOW = PredictFunction(lambda images: [0.1] * len(images))


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    """A labelled synthetic session: 6 grasps, 160x120, sqlite3."""
    path = tmp_path_factory.mktemp("bags") / "session"
    write_session(path, n_grasps=6, seed=3, **SMALL)
    return path


def session_of(path: Path, **topics):
    b = open_bag(path)
    return b, read_session(b, BagTopics(**topics))


def run_cli(*argv: str) -> int:
    return cli.main([str(a) for a in argv])


# ------------------------------------------------------------------------- reading


@pytest.mark.parametrize("layout", ["humble-sqlite3", "humble-mcap", "jazzy-sqlite3",
                                    "jazzy-mcap", "sqlite3", "mcap"])
def test_bags_in_the_layouts_ros2_bag_record_writes_are_read(tmp_path, layout):
    path = bag_formats.session(tmp_path / "b", layout, n_grasps=2, seed=5, **SMALL)
    b, s = session_of(path)
    with b:
        assert len(s.frames) == 2 * 60 and len(s.events) == 2
        assert all(e.label is not None for e in s.events)


def test_closing_a_bag_twice_does_nothing(bag):
    b = open_bag(bag)
    b.close()
    b.close()


def test_a_single_storage_file_is_read_like_its_bag_folder(bag):
    b, s = session_of(next(bag.glob("*.db3")))
    with b:
        assert len(s.events) == 6


def test_empty_trigger_events_happen_at_their_receive_time(bag):
    b, s = session_of(bag)
    with b:
        assert [e.stamp for e in s.events] == [ns_to_s(e.log_ns) for e in s.events]
        assert [e.event_id for e in s.events] == list(range(1, 7))


def test_header_trigger_events_happen_at_their_stamp(tmp_path):
    path = tmp_path / "h"
    write_session(path, n_grasps=2, seed=5, trigger_type="header", start_ns=2_000_000_000,
                  **SMALL)
    b, s = session_of(path, trigger_type="header")
    with b:
        assert s.events[0].trigger == "header:grasp_manager"
        assert s.events[0].stamp == ns_to_s(s.events[0].log_ns)


def test_frames_are_stamped_by_their_header(bag):
    b, s = session_of(bag)
    with b:
        gaps = {round(b2.stamp - a.stamp, 4) for a, b2 in zip(s.frames, s.frames[1:],
                                                                 strict=False)}
        assert gaps == {round(1 / FPS, 4)}


def test_labels_are_the_first_ground_truth_at_or_after_each_event(bag):
    from grasp_success_ros.data.synth import grasp_stream

    truth = [i.label for i in grasp_stream(3, 6, **SMALL) if i.kind == "event"]
    b, s = session_of(bag)
    with b:
        assert [e.label for e in s.events] == truth


def test_a_csv_beside_the_bag_gives_the_ground_truth(tmp_path):
    path = tmp_path / "nolabels"
    write_session(path, n_grasps=3, seed=2, labels=False, **SMALL)
    (path / "labels.csv").write_text("event,label\n1,success\n2,failure\n3,1\n")
    policy = PolicyConfig()
    results, source = evaluate_bag(path, HIGH, policy)
    assert source.endswith("labels.csv")
    assert [r.truth for r in results] == [True, False, True]


def test_a_csv_with_event_times_matches_the_nearest_event(tmp_path):
    path = tmp_path / "nolabels"
    s = write_session(path, n_grasps=2, seed=2, labels=False, **SMALL)
    b, sess = session_of(path)
    with b:
        times = [e.stamp for e in sess.events]
    csv = tmp_path / "truth.csv"
    csv.write_text(f"time,label\n{times[1] + 0.1},false\n{times[0] - 0.1},true\n")
    results, _ = evaluate_bag(s.path, LOW, PolicyConfig(),
                              labels_csv=csv)
    assert [r.truth for r in results] == [True, False]


def test_bool_false_triggers_get_a_not_completed_record(tmp_path):
    from rosbags.rosbag2 import Writer

    ts = typestore()
    src = tmp_path / "src"
    write_session(src, n_grasps=1, seed=1, trigger_type="bool", **SMALL)
    out = tmp_path / "bools"
    with Writer(out, version=9) as w:  # the same session plus one Bool false at the end
        conns = {}
        b = open_bag(src)
        with b:
            for topic, msgtype, t, raw in b.messages(set(b.topics)):
                if topic not in conns:
                    conns[topic] = w.add_connection(topic, msgtype, typestore=ts)
                w.write(conns[topic], t, raw)
            w.write(conns["/grasp_completed"], t + 1, bool_cdr(ts, False))
    results, _ = evaluate_bag(out, HIGH, PolicyConfig(),
                              BagTopics(trigger_type="bool"))
    assert [r.record.error_code for r in results] == [None, "not_completed"]


# ------------------------------------------------------------------------- bag-eval


def test_bag_eval_uses_the_shared_decision_path(bag):
    """Records are the node's: the first frame at or after the event, threshold applied."""
    seen = []

    def predict(imgs):
        seen.append(imgs[0].shape)
        return [0.7] * len(imgs)

    results, _ = evaluate_bag(bag, PredictFunction(predict), PolicyConfig(threshold=0.75))
    rec = results[0].record
    assert seen[0] == (120, 160, 3)
    assert rec.verdict is False and rec.confidence == pytest.approx(0.3)
    assert rec.event_stamp <= rec.frame_stamps[0] < rec.event_stamp + 1 / FPS
    assert rec.policy == "first_after"


def test_bag_eval_leaves_events_inside_the_band_uncertain_and_reports_the_coverage(bag):
    results, _ = evaluate_bag(bag, PredictFunction(lambda imgs: [0.5] * len(imgs)),
                              PolicyConfig(threshold=0.7, threshold_failure=0.3))
    assert {r.record.error_code for r in results} == {"uncertain"}
    assert all(r.record.p_success == 0.5 and r.record.verdict is None for r in results)
    summary = summarize(results, 0.7)
    assert summary["no_verdict"] == {"uncertain": 6} and summary["coverage"] == 0.0
    assert summary["error_rate"] is None
    text = format_report(summary, results, per_event=False)
    assert "no verdict: uncertain 6" in text and "coverage 0.00 (labelled events" in text


def test_bag_eval_warns_about_a_model_that_learned_nothing_as_evaluate_does(
        bag, tmp_path, capsys):
    """Every P(success) 0.0003: accuracy is the share of failures, and bag-eval says why it
    means nothing, from evaluate's own warnings, in the console, the JSON and report.html."""
    from tool_helpers import constant_model

    model = constant_model(tmp_path / "constant.keras", 0.0003)
    assert run_cli("bag-eval", bag, "--model", model, "--out", tmp_path / "out",
                   "--no-progress") == 0
    console = capsys.readouterr().out
    warnings = json.loads((tmp_path / "out" / "report.json").read_text())["summary"]["warnings"]
    assert len(warnings) == 3 and "barely varies: 90% of the 6 events" in warnings[0]
    assert "no event is judged success" in warnings[1]
    assert "is no better than always answering" in warnings[2]
    page = (tmp_path / "out" / "report.html").read_text()
    for warning in warnings:
        assert f"warning: {warning}" in console.splitlines()
        assert html.escape(f"warning: {warning}") in page
    assert run_cli("bag-eval", bag, "--model", model, "--json", "--no-progress") == 0
    streams = capsys.readouterr()
    assert json.loads(streams.out)["summary"]["warnings"] == warnings
    assert {f"warning: {w}" for w in warnings} <= set(streams.err.splitlines())


def test_bag_eval_refuses_a_failure_threshold_without_the_threshold(bag, capsys):
    assert run_cli("bag-eval", bag, "--model", "m.keras", "--threshold-failure", "0.2") == 2
    err = capsys.readouterr().err
    assert "threshold_failure needs threshold set too" in err and err.count("\n") == 1


def test_an_event_without_frames_after_it_gets_no_fresh_frame(tmp_path):
    from grasp_success_ros.data.synth import grasp_stream

    # the event comes 1.0 s into the stream; the camera stops at 0.9 s
    items = [i for i in grasp_stream(1, 1, **SMALL) if i.kind == "event" or i.t < 0.9]
    write_items(tmp_path / "b", items)
    results, _ = evaluate_bag(tmp_path / "b", PredictFunction(lambda imgs: [0.9]), PolicyConfig())
    assert results[0].record.error_code == "no_fresh_frame"


def test_bag_eval_on_a_synthetic_bag_reaches_95_percent(tmp_path, trained_model):
    path = tmp_path / "eval"
    write_session(path, n_grasps=30, seed=7, approach_s=0.4, hold_s=0.5, **SMALL)
    from grasp_success_ros.model.classifier import GraspClassifier

    clf, _ = GraspClassifier.from_path(trained_model)
    results, _ = evaluate_bag(path, clf, PolicyConfig(threshold=clf.card.threshold))
    summary = summarize(results, clf.card.threshold)
    assert summary["labelled"] == 30
    assert summary["accuracy"] >= 0.95, summary["seed_line"]


def test_bag_eval_cli_reports_the_seed_line_csv_json_and_plots(bag, tmp_path, capsys,
                                                               trained_model):
    out = tmp_path / "report"
    assert run_cli("bag-eval", bag, "--model", trained_model, "--out", out, "--json",
                   "--no-progress") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["seed_line"].endswith(")") and len(doc["events"]) == 6
    assert {e["model"] for e in doc["events"]} == {str(trained_model)}  # as the node's records
    assert set(doc["summary"]["confusion"]) == {"success", "failure"}
    assert {"precision", "recall"} <= set(doc["summary"]["success"])
    rows = (out / "events.csv").read_text().splitlines()
    assert rows[0].startswith("bag,event_id,event_stamp") and len(rows) == 7
    assert (out / "p_success.png").is_file() and (out / "confusion.png").is_file()


def test_several_bags_are_evaluated_together_and_a_bad_one_is_named(bag, tmp_path, capsys,
                                                                    trained_model):
    second = tmp_path / "second"
    write_session(second, n_grasps=2, seed=9, storage="mcap", **SMALL)
    code = run_cli("bag-eval", bag, second, tmp_path / "missing", "--model", trained_model,
                   "--quiet")
    captured = capsys.readouterr()
    assert code == 2
    assert "8 events in 2 bag(s)" in captured.out
    assert "no bag at" in captured.err and "missing" in captured.err
    assert "bag-eval [" in captured.err  # the progress bar


def test_bag_eval_plots_leave_the_matplotlib_backend_as_it_was(bag, tmp_path, svg_backend):
    import matplotlib

    results, _ = evaluate_bag(bag, HIGH, PolicyConfig())
    written = write_plots(tmp_path / "plots", summarize(results, 0.5), results, 0.5)
    assert matplotlib.get_backend() == svg_backend
    assert [p.name for p in written] == ["p_success.png", "confusion.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in written)


# ------------------------------------------------------------------------- bad bags


def expect_cli_error(capsys, *argv) -> str:
    code = run_cli(*argv)
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_a_missing_bag_is_a_one_line_error(tmp_path, capsys):
    err = expect_cli_error(capsys, "extract", tmp_path / "nope", tmp_path / "out")
    assert "no bag at" in err


def test_a_bag_with_none_of_the_expected_topics_names_the_topics_it_has(tmp_path, capsys):
    talker = bag_formats.talker_bag(tmp_path / "talker")
    err = expect_cli_error(capsys, "extract", talker, tmp_path / "out")
    assert "no image topic '/camera/image_raw'" in err
    assert "no trigger topic '/grasp_completed'" in err
    assert "/topic (std_msgs/msg/String, 10 messages)" in err and "/rosout" in err


def test_an_empty_bag_is_explained(tmp_path, capsys):
    from rosbags.rosbag2 import Writer

    with Writer(tmp_path / "empty", version=9) as w:
        w.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=typestore())
    err = expect_cli_error(capsys, "extract", tmp_path / "empty", tmp_path / "out")
    assert "is empty" in err and "/camera/image_raw" in err


def test_a_trigger_of_another_type_suggests_the_option(tmp_path, capsys):
    write_session(tmp_path / "b", n_grasps=1, trigger_type="header", **SMALL)
    err = expect_cli_error(capsys, "extract", tmp_path / "b", tmp_path / "out")
    assert "std_msgs/msg/Header" in err and "--trigger-type header" in err


def test_an_unknown_message_type_on_the_image_topic_is_explained(tmp_path, capsys):
    from rosbags.rosbag2 import Writer

    msgdef = "uint32 width\nuint8[] pixels\n"
    with Writer(tmp_path / "custom", version=9) as w:
        c = w.add_connection("/camera/image_raw", "my_msgs/msg/Frame", msgdef=msgdef,
                             rihs01="RIHS01_" + "0" * 64)
        t = w.add_connection("/grasp_completed", "std_msgs/msg/Empty", typestore=typestore())
        w.write(c, 1, b"\x00\x01\x00\x00" + bytes(8))
        w.write(t, 2, b"\x00\x01\x00\x00\x00")
    err = expect_cli_error(capsys, "extract", tmp_path / "custom", tmp_path / "out")
    assert "my_msgs/msg/Frame" in err and "sensor_msgs/msg/Image" in err


def test_a_message_type_that_cannot_be_registered_is_explained_with_the_reason(tmp_path):
    """A definition that contradicts Jazzy's (here a ROS 1 style Header) is not lost silently:
    the tool that needs the type says why it is unknown."""
    from rosbags.rosbag2 import Writer

    from grasp_success_ros.bags.reader import Bag

    msgdef = ("std_msgs/Header header\nfloat32 width\n" + "=" * 80 + "\nMSG: std_msgs/Header\n"
              "uint32 seq\nbuiltin_interfaces/Time stamp\nstring frame_id\n")
    with Writer(tmp_path / "ros1", version=9) as w:
        c = w.add_connection("/grasp_detail", "my_msgs/msg/Grasp", msgdef=msgdef,
                             rihs01="RIHS01_" + "0" * 64)
        w.write(c, 1, bytes(16))
    with Bag(tmp_path / "ros1") as b, pytest.raises(BagError) as err:
        b.require("/grasp_detail", ("my_msgs/msg/Grasp",), "detail", "--detail-topic")
    message = str(err.value)
    assert "my_msgs/msg/Grasp on /grasp_detail could not be registered" in message
    assert "std_msgs/msg/Header" in message and "\n" not in message


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
@pytest.mark.parametrize("target", ["folder", "storage file"])
def test_a_bag_in_another_serialization_format_is_named_as_such(tmp_path, capsys, storage,
                                                                target):
    """Not "the recording may be truncated": the bag is whole, in a format (here JSON)
    the tools do not read."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    path = tmp_path / "json"
    with Writer(path, version=9, storage_plugin=StoragePlugin[storage.upper()]) as w:
        c = w.add_connection("/camera/image_raw", "sensor_msgs/msg/Image",
                             typestore=typestore(), serialization_format="json")
        w.write(c, 1, b'{"height": 0, "width": 0}')
    bag = path if target == "folder" else next(p for p in path.iterdir()
                                               if p.suffix in (".db3", ".mcap"))
    err = expect_cli_error(capsys, "extract", bag, tmp_path / "out")
    assert f"bag {bag}: unknown serialization format on /camera/image_raw ('json')" in err
    assert "only 'cdr'" in err and "truncated" not in err


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_a_truncated_bag_is_explained(tmp_path, capsys, bag, storage):
    path = tmp_path / "cut"
    if storage == "sqlite3":
        shutil.copytree(bag, path)
    else:
        write_session(path, n_grasps=3, seed=3, storage="mcap", **SMALL)
    data = next(p for p in path.iterdir() if p.suffix in (".db3", ".mcap"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    err = expect_cli_error(capsys, "extract", path, tmp_path / "out")
    assert "truncated or corrupt" in err and str(path) in err


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(BagError):
        run_cli("--debug", "extract", tmp_path / "nope", tmp_path / "out")


# ------------------------------------------------------------------------- extract


def frames_in(path: Path, lo: float, hi: float) -> list[int]:
    """Per event: how many frames are stamped in [event + lo, event + hi)."""
    b, s = session_of(path)
    with b:
        return [sum(e.stamp + lo <= f.stamp < e.stamp + hi for f in s.frames)
                for e in s.events]


def test_extract_writes_class_folders_named_by_bag_and_stamp(bag, tmp_path, capsys):
    out = tmp_path / "ds"
    assert run_cli("extract", bag, out, "--window", "0.2", "--dedup", "0") == 0
    b, s = session_of(bag)
    with b:
        labels = [e.label for e in s.events]
    n = frames_in(bag, 0.0, 0.2 + 1e-9)
    success = sorted((out / "success").iterdir())
    assert len(success) == sum(k for k, ok in zip(n, labels, strict=True) if ok)
    assert len(list((out / "failure").iterdir())) == sum(n) - len(success)
    assert all(f.name.startswith("session_17000") and f.suffix == ".png" for f in success)
    summary = json.loads((out / "extract_summary.json").read_text())
    assert summary["session"]["success"] == len(success)
    assert "total" in capsys.readouterr().out


def test_extract_adds_frames_before_the_grasp_as_failures(bag, tmp_path):
    run_cli("extract", bag, tmp_path / "a", "--window", "0.1", "--dedup", "0")
    run_cli("extract", bag, tmp_path / "b", "--window", "0.1", "--dedup", "0",
            "--before", "0.2", "--before-gap", "0.3")
    without = json.loads((tmp_path / "a" / "extract_summary.json").read_text())["session"]
    with_before = json.loads((tmp_path / "b" / "extract_summary.json").read_text())["session"]
    assert with_before["success"] == without["success"]
    assert with_before["failure"] == without["failure"] + sum(frames_in(bag, -0.5, -0.3))


def test_extract_drops_near_duplicate_frames(tmp_path):
    import numpy as np

    from grasp_success_ros.data.synth import StreamItem, render_scene

    img = render_scene(np.random.default_rng(0), True, 120, 160)
    items = [StreamItem(0.5, "event", None, True, 0)] + [
        StreamItem(i / FPS, "frame", img, None, 0) for i in range(30)]
    write_items(tmp_path / "same", sorted(items, key=lambda i: (i.t, i.kind != "event")))
    run_cli("extract", tmp_path / "same", tmp_path / "ds", "--window", "0.3")
    summary = json.loads((tmp_path / "ds" / "extract_summary.json").read_text())["same"]
    assert summary["success"] == 1 and summary["duplicates"] >= 8


@pytest.mark.slow
def test_extract_train_bag_eval_round_trip(tmp_path):
    """Bags -> extract -> train -> bag-eval on a bag of other grasps."""
    from grasp_success_ros.training.train import TrainConfig, train

    # From scratch on 180 scenes the test accuracy depends on the run: with 3 bags it landed
    # anywhere in 0.65-0.95; with 6, 0.88-0.98 on 40 events over four runs here, yet CI once
    # drew 0.65 on 20. So: 6 bags, 40 test events, and deterministic ops: one outcome, 0.95
    # after 6 epochs (0.825 after 10, at 1.7x the time).
    train_bags = [tmp_path / f"train_{i}" for i in range(6)]
    for i, path in enumerate(train_bags):
        write_session(path, n_grasps=30, seed=30 + i, **SMALL)
    write_session(tmp_path / "valid", n_grasps=20, seed=40, **SMALL)
    write_session(tmp_path / "test", n_grasps=40, seed=50, **SMALL)
    assert run_cli("extract", *train_bags, tmp_path / "train", "--window", "0.3",
                   "--before", "0.3", "--dedup", "0.5") == 0
    assert run_cli("extract", tmp_path / "valid", tmp_path / "valid_ds", "--window", "0.2") == 0
    model = tmp_path / "rt.keras"
    cfg = TrainConfig(backbone="mobilenet_v3_small", input_size=96, weights=None, epochs=6,
                      batch_size=32, learning_rate=1e-3, optimizer="adam", seed=0,
                      deterministic=True)
    train(tmp_path / "train", tmp_path / "valid_ds", model, cfg)
    out = tmp_path / "report"
    assert run_cli("bag-eval", tmp_path / "test", "--model", model, "--out", out,
                   "--quiet") == 0
    report = json.loads((out / "report.json").read_text())["summary"]
    assert report["labelled"] == 40 and report["verdicts"] == 40
    assert report["accuracy"] >= 0.7, report["seed_line"]


def test_synth_bag_writes_a_session_bag_eval_can_read(tmp_path, capsys):
    assert run_cli("synth", "--bag", tmp_path / "s", "--grasps", "2", "--width", "160",
                   "--height", "120", "--storage", "mcap") == 0
    assert "120 frames, 2 events" in capsys.readouterr().out
    b, s = session_of(tmp_path / "s")
    with b:
        assert len(s.events) == 2 and next((tmp_path / "s").glob("*.mcap"))


def test_synth_without_out_dir_or_bag_is_an_error(capsys):
    assert run_cli("synth") == 2
    assert "--bag" in capsys.readouterr().err


ROSBAG2_DATA = Path(__file__).parent / "data" / "rosbag2"
ROSBAG2_COUNTS = {  # the table of test/data/rosbag2/README.md
    "talker": {"/topic": 10, "/rosout": 10, "/parameter_events": 0},
    "convert_a": {"a_empty": 100, "b_basictypes": 50},
    "cdr_test": {"/array_topic": 4, "/test_topic": 3},
    "test_bag_for_seek": {"topic1": 5},
}
RECORDED = [ROSBAG2_DATA / storage / name for storage in ("sqlite3", "mcap")
            for name in ROSBAG2_COUNTS]
SESSIONS = sorted(p for p in ROSBAG2_DATA.iterdir()
                  if p.is_dir() and p.name not in ("sqlite3", "mcap"))


def read_counts(b) -> dict[str, int]:
    counts = dict.fromkeys(b.topics, 0)
    for topic, *_ in b.messages(set(b.topics)):
        counts[topic] += 1
    return counts


@pytest.mark.parametrize("path", RECORDED, ids=[f"{p.parent.name}-{p.name}" for p in RECORDED])
def test_bags_recorded_by_rosbag2_are_read(path):
    with open_bag(path) as b:
        assert {t: info.count for t, info in b.topics.items()} == ROSBAG2_COUNTS[path.name]
        assert read_counts(b) == ROSBAG2_COUNTS[path.name]


@pytest.mark.parametrize("path", [p for p in RECORDED if p.name != "talker"
                                  and p.parent.name == "mcap"] + [ROSBAG2_DATA / "sqlite3" /
                                                                  "cdr_test"],
                         ids=lambda p: f"{p.parent.name}-{p.name}")
def test_messages_of_types_unknown_here_are_decoded_by_the_definitions_the_bag_carries(path):
    with open_bag(path) as b:
        decoded = [b.deserialize(raw, msgtype) for _, msgtype, _, raw in b.messages(b.topics)]
        assert len(decoded) == sum(ROSBAG2_COUNTS[path.name].values())
        assert all(type(m).__name__.startswith("test_msgs__msg__") for m in decoded)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_a_type_named_in_the_short_form_is_resolved_as_rosbag2_does(storage):
    """test_bag_for_seek names test_msgs/BasicTypes: every tool sees test_msgs/msg/BasicTypes."""
    with open_bag(ROSBAG2_DATA / storage / "test_bag_for_seek") as b:
        assert b.topics["topic1"].msgtype == "test_msgs/msg/BasicTypes"
        assert {msgtype for _, msgtype, _, _ in b.messages({"topic1"})} == \
            {"test_msgs/msg/BasicTypes"}


def short_form_session(tmp_path: Path, n_grasps: int = 3, seed: int = 2) -> Path:
    """A labelled session as an older recorder wrote it: Humble's sqlite3 layout (no message
    definitions) with every type named in the short form."""
    path = bag_formats.session(tmp_path / "short" / "session", "humble-sqlite3",
                               n_grasps=n_grasps, seed=seed, **SMALL)
    return bag_formats.short_form_types(path)


def test_extract_reads_a_session_whose_types_are_named_in_the_short_form(tmp_path, capsys):
    """The same frames as from the same session with the full type names."""
    bag = short_form_session(tmp_path)
    full = bag_formats.session(tmp_path / "full" / "session", "humble-sqlite3", n_grasps=3,
                               seed=2, **SMALL)
    with open_bag(bag) as b:
        assert b.topics["/camera/image_raw"].msgtype == "sensor_msgs/msg/Image"
    assert run_cli("extract", bag, tmp_path / "out") == 0, capsys.readouterr().err
    assert run_cli("extract", full, tmp_path / "expected") == 0
    for cls in ("success", "failure"):
        got = sorted(p.name for p in (tmp_path / "out" / cls).iterdir())
        assert got and got == sorted(p.name for p in (tmp_path / "expected" / cls).iterdir())


def test_bag_eval_judges_a_session_whose_types_are_named_in_the_short_form(tmp_path):
    bag = short_form_session(tmp_path)
    results, source = evaluate_bag(bag, HIGH, PolicyConfig())
    assert source is not None and len(results) == 3
    assert [r.truth for r in results] == [e.label for e in grasp_events(2, 3)]
    assert all(r.record.verdict is True for r in results)


def test_decoding_a_type_the_bag_does_not_define_names_it():
    with open_bag(ROSBAG2_DATA / "sqlite3" / "convert_a") as b:
        _, msgtype, _, raw = next(b.messages({"b_basictypes"}))
        with pytest.raises(BagError, match="test_msgs/msg/BasicTypes is unknown here: the bag "
                                           "carries no definition of it"):
            b.deserialize(raw, msgtype)


@pytest.mark.parametrize("path", SESSIONS or [None], ids=[p.name for p in SESSIONS] or ["none"])
def test_sessions_recorded_by_rosbag2_are_read(path):
    if path is None:
        pytest.skip("no session recorded by ROS 2's rosbag2 in test/data/rosbag2 (see its "
                    "README)")
    b, s = session_of(path)
    with b:
        assert len(s.events) == 3 and all(e.label is not None for e in s.events)
        indices = range(len(s.frames))
        decode = frame_decoder(s, load_frames(s, indices))
        assert all(decode(i).ndim == 3 for i in indices)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
@pytest.mark.parametrize("compression", ["none", "message", "file"])
def test_every_message_of_a_bag_whose_metadata_qos_differs_from_its_storage_is_read(
        tmp_path, storage, compression):
    path = tmp_path / "qos"
    write_session(path, n_grasps=4, seed=7, storage=storage, compression=compression, **SMALL)
    bag_formats.offer_other_qos(path)
    with open_bag(path) as b:
        assert read_counts(b) == {t: info.count for t, info in b.topics.items()}
        assert b.topics["/camera/image_raw"].count == 4 * 60
    results, _ = evaluate_bag(path, HIGH, PolicyConfig())
    assert [r.record.verdict for r in results] == [True] * 4
    assert [r.truth for r in results] == [e.label for e in grasp_events(7, 4)]


def test_bag_eval_judges_a_bag_whose_metadata_qos_differs_from_its_storage(
        tmp_path, capsys, trained_model):
    path = tmp_path / "qos"
    write_session(path, n_grasps=20, seed=7, approach_s=0.4, hold_s=0.5, **SMALL)
    bag_formats.offer_other_qos(path)
    assert run_cli("bag-eval", path, "--model", trained_model, "--json", "--no-progress") == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert summary["labelled"] == 20
    assert summary["accuracy"] >= 0.95, summary["seed_line"]


def grasp_events(seed: int, n: int):
    from grasp_success_ros.data.synth import grasp_stream

    return [i for i in grasp_stream(seed, n, **SMALL) if i.kind == "event"]


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_a_split_bag_is_read_across_its_files_in_order(tmp_path, storage):
    path = bag_formats.split_session(tmp_path / "split", 3, seed=4, storage=storage, **SMALL)
    bag_formats.offer_other_qos(path)
    b, s = session_of(path)
    with b:
        assert len(list(path.glob("split_*"))) == 2
        assert len(s.frames) == 3 * 60 and [e.event_id for e in s.events] == [1, 2, 3]
        assert [e.label for e in s.events] == [e.label for e in grasp_events(4, 3)]
        times = [log_ns for *_, log_ns, _ in b.messages(set(b.topics))]
        assert times == sorted(times)


def test_a_read_that_yields_fewer_messages_than_the_bag_lists_is_an_error(tmp_path):
    path = tmp_path / "short"
    write_session(path, n_grasps=2, seed=1, **SMALL)
    bag_formats.overstate_count(path, "/grasp_completed", 3)
    with open_bag(path) as b, pytest.raises(BagError, match="read only 2 of the 5 messages on "
                                                            "/grasp_completed that it lists"):
        read_counts(b)
