"""Impossible times are never used silently (core/clocks.py): a frame stamped after it arrived
makes a clock_skew record instead of a verdict, the same rule in the node and in bag-eval;
/diagnostics reads offsets, delays and a missing /clock. No ROS."""

from __future__ import annotations

import json

import pytest

from grasp_success_ros.bags.evaluate import evaluate_bag, summarize
from grasp_success_ros.bags.writer import write_session
from grasp_success_ros.cli import main as cli
from grasp_success_ros.core.clocks import ERROR, OK, WARN, ClockWatch, no_clock_reason
from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.core.grasp_service import PredictFunction
from grasp_success_ros.core.judge import Frame, GraspEvent, Judgement, judge_batch, judge_selected
from grasp_success_ros.core.params import NodeConfig
from grasp_success_ros.core.policy import PolicyConfig, Selection, select_frames
from grasp_success_ros.core.stamps import ns_to_s

SMALL = {"height": 120, "width": 160}

HIGH = PredictFunction(lambda images: [0.9] * len(images))  # P(success) of every frame
LOW = PredictFunction(lambda images: [0.1] * len(images))


def judge(frames: list[Frame], cfg: PolicyConfig | None = None, event_t: float = 10.0):
    cfg, calls = cfg or PolicyConfig(), []

    def predict(images):
        calls.append(len(images))
        return [0.9] * len(images)

    selection = select_frames([f.stamp for f in frames], event_t, cfg)
    record = judge_selected(GraspEvent(1, event_t), frames, selection, predict, lambda m: m,
                            cfg)
    return record, calls


def test_a_frame_stamped_ahead_of_its_arrival_beyond_the_tolerance_gets_clock_skew():
    # taken at 9.6 by the node's clock, stamped 10.1 by a camera 0.5 s ahead
    record, calls = judge([Frame(10.1, "img", arrival=9.6)])
    assert record.verdict is None and record.error_code == "clock_skew"
    assert "stamped 0.500 s after it was received (clock_tolerance_s 0.2)" in record.error
    assert record.frame_stamps == [10.1]
    assert calls == []  # the model never judged a frame of another moment


def test_a_frame_stamped_ahead_within_the_tolerance_is_judged():
    record, _ = judge([Frame(10.1, "img", arrival=9.95)])
    assert record.verdict is True and record.error_code is None


def test_the_tolerance_is_the_policys_clock_tolerance_s():
    record, _ = judge([Frame(10.1, "img", arrival=9.6)], PolicyConfig(clock_tolerance_s=0.6))
    assert record.verdict is True


def test_frames_arriving_after_their_stamps_are_judged():
    record, _ = judge([Frame(10.1, "img", arrival=12.0)])
    assert record.verdict is True


def test_a_batch_runs_the_model_only_on_frames_whose_times_are_possible():
    cfg, seen = PolicyConfig(), []

    def predict(images):
        seen.append(list(images))
        return [0.9] * len(images)

    skewed, fine = [Frame(10.1, "skewed", arrival=9.6)], [Frame(10.1, "fine", arrival=10.1)]
    jobs = [Judgement(GraspEvent(i, 10.0), frames, Selection("ready", (0,)), cfg)
            for i, frames in enumerate((skewed, fine))]
    records = judge_batch(jobs, predict, lambda m: m)
    assert [r.error_code for r in records] == ["clock_skew", None]
    assert seen == [["fine"]]


def test_frame_stamp_and_clock_tolerance_are_validated():
    with pytest.raises(ConfigError, match="frame_stamp must be one of"):
        NodeConfig.from_values({"model_path": "m.keras", "frame_stamp": "camera"})
    with pytest.raises(ConfigError, match="clock_tolerance_s must be in"):
        NodeConfig.from_values({"model_path": "m.keras", "clock_tolerance_s": 0.0})
    policy = NodeConfig.from_values({"model_path": "m.keras", "frame_stamp": "arrival",
                                     "clock_tolerance_s": 0.3}).policy(0.5)
    assert (policy.frame_stamp, policy.clock_tolerance_s) == ("arrival", 0.3)


# ------------------------------------------------------------------------- bag-eval


@pytest.fixture(scope="module")
def camera_ahead(tmp_path_factory):
    """A session whose camera stamps run 0.5 s ahead of the recorder's log times; 1.0 s of
    the scene before each grasp, so "the first frame after the event" by its stamp shows the
    hand before the grasp."""
    path = tmp_path_factory.mktemp("clocks") / "ahead"
    write_session(path, n_grasps=4, seed=5, approach_s=1.0, hold_s=1.0, camera_ahead_s=0.5,
                  **SMALL)
    return path


def test_bag_eval_gives_clock_skew_records_for_a_camera_stamping_half_a_second_ahead(
        camera_ahead):
    results, _ = evaluate_bag(camera_ahead, HIGH, PolicyConfig())
    assert [r.record.error_code for r in results] == ["clock_skew"] * 4
    assert all(r.record.verdict is None for r in results)
    assert "stamped 0.500 s after it was received" in results[0].record.error
    assert summarize(results, 0.5)["no_verdict"] == {"clock_skew": 4}


def test_bag_eval_with_arrival_timing_chooses_frames_by_their_log_times(camera_ahead):
    results, _ = evaluate_bag(camera_ahead, HIGH,
                              PolicyConfig(frame_stamp="arrival"))
    for r in results:
        assert r.record.verdict is True
        assert r.record.event_stamp <= r.record.frame_stamps[0] < r.record.event_stamp + 1 / 30


def test_the_frames_shown_for_review_are_the_ones_arrival_timing_judged(camera_ahead):
    from grasp_success_ros.bags.reader import frame_decoder, load_frames, open_bag, read_session
    from grasp_success_ros.bags.review import judged_frames
    from grasp_success_ros.bags.topics import BagTopics

    results, _ = evaluate_bag(camera_ahead, HIGH,
                              PolicyConfig(frame_stamp="arrival"))
    shown = judged_frames(results, [camera_ahead], frame_stamp="arrival")
    with open_bag(camera_ahead) as bag:
        session = read_session(bag, BagTopics())
        def logged_at(stamp: float) -> int:  # the frame whose log time the record names
            return min(session.frames, key=lambda f: abs(ns_to_s(f.log_ns) - stamp)).index

        decode = frame_decoder(session, load_frames(session, {f.index for f in session.frames}))
        for r in results:
            expected = decode(logged_at(r.record.frame_stamps[-1]))
            assert (shown[(bag.name, r.record.event_id)] == expected).all()


def test_bag_eval_cli_never_gives_a_verdict_on_skewed_frames_and_arrival_judges_right(
        camera_ahead, trained_model, capsys):
    def bag_eval(*options):
        argv = ["bag-eval", camera_ahead, "--model", trained_model, "--json", "--no-progress",
                *options]
        assert cli.main([str(a) for a in argv]) == 0
        return json.loads(capsys.readouterr().out)["summary"]

    skewed = bag_eval()
    assert skewed["verdicts"] == 0 and skewed["no_verdict"] == {"clock_skew": 4}
    arrival = bag_eval("--frame-stamp", "arrival")
    assert arrival["verdicts"] == 4 and arrival["accuracy"] == 1.0, arrival["seed_line"]


# ------------------------------------------------------------------------- /diagnostics


def reading(watch: ClockWatch, frame_stamp: str = "header", sim_time: bool = False,
            now: float = 100.0):
    return watch.reading(sim_time, now, frame_stamp, tolerance_s=0.2, deadline_s=2.0)


def watched(frames=(), trigger=None) -> ClockWatch:
    watch = ClockWatch()
    for ahead in frames:
        watch.frame(ahead)
    if trigger is not None:
        watch.trigger(trigger)
    return watch


def test_frames_in_step_with_the_node_clock_read_ok():
    got = reading(watched([-0.004, -0.006, 0.01], trigger=-0.02))
    assert got.level == OK and got.message == ""
    assert got.values["frame_ahead_ms_max"] == 10.0 and got.values["trigger_ahead_ms"] == -20.0


def test_frames_stamped_half_a_second_ahead_warn_with_the_offset():
    got = reading(watched([0.498, 0.499, 0.5]))
    assert got.level == WARN and "stamped up to 500 ms after they arrived" in got.message
    assert "clock_skew" in got.message and got.values["frame_ahead_ms_max"] == 500.0


def test_frames_stamped_far_ahead_are_an_error():
    assert reading(watched([1.5])).level == ERROR


def test_with_arrival_timing_frames_stamped_ahead_do_not_matter():
    got = reading(watched([0.5]), frame_stamp="arrival")
    assert got.level == OK and got.values["frame_ahead_ms_max"] == 500.0


def test_frames_arriving_long_after_their_stamps_warn_and_past_the_deadline_are_an_error():
    late = reading(watched([-1.5]))
    assert late.level == WARN and "arrive 1500 ms after their stamps" in late.message
    assert reading(watched([-2.5])).level == ERROR


def test_a_trigger_stamped_ahead_warns_and_one_stamped_long_before_only_warns():
    ahead = reading(watched(trigger=0.5))
    assert ahead.level == WARN and "event stamped 500 ms after it arrived" in ahead.message
    assert reading(watched(trigger=1.5)).level == ERROR
    before = reading(watched(trigger=-30.0))
    assert before.level == WARN and "30000 ms before it arrived" in before.message
    assert reading(watched(trigger=-0.5)).level == OK


def test_sim_time_without_clock_is_named_and_an_error_once_frames_come():
    watch = ClockWatch()
    waiting = reading(watch, sim_time=True, now=0.0)
    assert waiting.level == WARN and "no /clock received" in waiting.message
    watch.frame_without_clock()
    assert reading(watch, sim_time=True, now=0.0).level == ERROR
    assert reading(watch, sim_time=True, now=5.0).level == OK


def test_the_no_clock_reason_names_the_cause_and_what_the_frames_carry():
    reason = no_clock_reason(1_700_000_000.25)
    assert "use_sim_time is true and no /clock" in reason
    assert "clock stands at 0 while frames carry stamps near 1700000000.250 s" in reason
    assert "no camera frame has come" in no_clock_reason(None)
