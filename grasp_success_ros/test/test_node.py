"""grasp_success_node over real DDS: the installed executable in its own process, frames and
events published from this process, answers checked as a grasp manager would see them."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
import rclpy
import rosnode
from grasp_success_msgs.msg import GraspVerdict
from rcl_interfaces.srv import ListParameters
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosnode import event_then_frames, frame, get_parameter, send_verify_goal, set_parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Empty, Header

from grasp_success_ros.core.params import PARAM_NAMES
from grasp_success_ros.core.policy import N_FRAMES_RANGE
from grasp_success_ros.data.image_conversion import rgb_to_image_fields
from grasp_success_ros.data.synth import grasp_stream
from grasp_success_ros.evaluation.metrics import accuracy
from grasp_success_ros.ros.stream_player import StreamPlayer

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def live(ros, ros_install, trained_model, tmp_path_factory):
    """The node with the default parameters, and a player in the same namespace."""
    log = tmp_path_factory.mktemp("node") / "node.log"
    with rosnode.node_and_player(ros_install, trained_model, log, "/live") as (player, proc):
        yield player, proc, log


def test_held_out_synthetic_grasps_are_judged_right_through_the_live_node(live):
    player, proc, _ = live
    player.clear()
    labels = player.play(grasp_stream(seed=7, n_grasps=40, approach_s=0.3, hold_s=0.5))
    results = player.wait_for_results(len(labels), timeout=30.0)
    verdicts = [r["verdict"] for r in results]
    assert len(results) == len(labels) == 40
    assert accuracy(labels, verdicts) >= 0.95, list(zip(labels, verdicts, strict=True))
    time.sleep(1.0)
    assert len(player.results) == 40, "an event was answered more than once"
    assert sorted(r["event_id"] for r in results) == list(range(results[0]["event_id"],
                                                              results[0]["event_id"] + 40))
    assert player.verdicts == verdicts


def test_records_carry_the_stamps_of_the_judged_frames(live):
    player, _, _ = live
    player.clear()
    stamps = event_then_frames(player, [frame(i, True) for i in range(5)])
    (record,) = player.wait_for_results(1, timeout=10.0)
    assert set(record) >= {"event_stamp", "verdict", "confidence", "p_success", "frame_stamps",
                           "latency_ms", "error"}
    assert record["error"] is None and len(record["frame_stamps"]) == 1
    assert record["frame_stamps"][0] == pytest.approx(stamps[0], abs=1e-6)
    assert record["frame_stamps"][0] >= record["event_stamp"]


def test_camera_sized_frames_all_reach_the_node_so_it_judges_the_first_after_each_event(live):
    # 640x480 rgb8 is larger than Fast DDS's default shared-memory segment; published with
    # the packaged profile (as conftest does, like the README says) none may be lost.
    player, _, _ = live
    player.clear()
    image = frame(3, True, size=(480, 640))
    published = [event_then_frames(player, [image] * 3) for _ in range(10)]
    records = player.wait_for_results(10, timeout=20.0)
    assert [r["frame_stamps"][0] for r in records] == pytest.approx(
        [stamps[0] for stamps in published], abs=1e-6)


def test_a_malformed_image_gives_a_failure_record_and_the_node_keeps_serving(live):
    player, proc, _ = live
    player.clear()
    bad = Image(height=240, width=320, encoding="rgb8", step=960, data=bytes(1000))
    event_then_frames(player, [bad])
    (record,) = player.wait_for_results(1, timeout=10.0)
    assert record["verdict"] is None and record["error_code"] == "bad_image"
    assert "expected height x step" in record["error"]
    assert player.verdicts == []
    player.clear()
    event_then_frames(player, [frame(3, True)])
    (record,) = player.wait_for_results(1, timeout=10.0)
    assert record["verdict"] is not None and proc.poll() is None


def test_a_verify_goal_waits_for_its_frames_and_reports_them_as_feedback(live):
    """A goal stamped now (zero) with its own policy: the five frames after it, combined."""
    player, _, _ = live
    player.clear()
    outcome = send_verify_goal(
        player, "/live/grasp_success_node/verify", frame_selection="n_after", n_frames=5,
        during=lambda: [player.publish_frame(frame(13, True)) or time.sleep(0.1)
                        for _ in range(8)])
    verdict = outcome.verdict
    assert outcome.accepted and verdict.status == GraspVerdict.SUCCESS, verdict
    assert len(verdict.frame_stamps) == 5 and verdict.policy == "n_after(5,mean)"
    assert outcome.feedback and all(needed == 5 for _, needed in outcome.feedback)
    collected = [n for n, _ in outcome.feedback]
    assert collected == sorted(collected) and collected[-1] < 5


def test_the_debug_image_shows_the_judged_frame_stamped_like_it_while_subscribed(live):
    """To a reliable subscriber (rviz2's default), which a best-effort publisher never
    matches."""
    player, _, _ = live
    shown: list[Image] = []
    reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    sub = player.create_subscription(Image, "grasp_success/debug_image", shown.append, reliable)
    time.sleep(1.0)  # the node's publisher matches our reader
    player.clear()
    original = frame(13, True)
    stamps = event_then_frames(player, [original] * 3)
    (record,) = player.wait_for_results(1, timeout=10.0)
    end = time.monotonic() + 5.0
    while not shown and time.monotonic() < end:
        time.sleep(0.02)
    player.destroy_subscription(sub)
    (image,) = shown
    assert image.header.stamp.sec + image.header.stamp.nanosec * 1e-9 == pytest.approx(
        stamps[0], abs=1e-6) == record["frame_stamps"][0]
    assert (image.height, image.width, image.encoding) == (*original.shape[:2], "rgb8")
    drawn = np.frombuffer(bytes(image.data), np.uint8).reshape(original.shape)
    assert (drawn != original).any(axis=-1).mean() > 0.02  # verdict text and band drawn on it


def test_the_node_declares_exactly_the_parameters_of_the_params_file(live):
    player, _, _ = live
    client = player.create_client(ListParameters, "/live/grasp_success_node/list_parameters")
    assert client.wait_for_service(10.0)
    result = client.call(ListParameters.Request(), timeout_sec=10.0)
    assert set(PARAM_NAMES) <= set(result.result.names)


LATEST_BUFFER = 20


@pytest.fixture(scope="module")
def latest(ros, ros_install, trained_model, tmp_path_factory):
    """A node judging the newest frame at a std_msgs/Header event, keeping 20 frames (so a
    goal may ask for n_after with up to 10)."""
    log = tmp_path_factory.mktemp("node") / "node.log"
    proc = rosnode.start(ros_install, trained_model, log, "-r", "__ns:=/latest",
                         "-p", "frame_selection:=latest", "-p", "trigger_type:=header",
                         "-p", f"buffer_size:={LATEST_BUFFER}")
    player = StreamPlayer(namespace="/latest", trigger_type="header")
    header_pub = player.event_pub
    deadline = time.monotonic() + 120
    while not header_pub.get_subscription_count() and time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        time.sleep(0.1)
    yield player, header_pub, proc
    player.close()
    rosnode.stop(proc)


def test_an_event_before_any_frame_gets_a_failure_record(latest):
    player, header_pub, _ = latest
    header_pub.publish(Header(stamp=player.get_clock().now().to_msg()))
    (record,) = player.wait_for_results(1, timeout=10.0)
    assert record["verdict"] is None and record["error_code"] == "no_frame"


def test_a_verify_goal_judges_the_newest_frame_and_answers_like_the_result_topic(latest):
    player, _, _ = latest
    time.sleep(0.6)  # the frames so far are older than max_frame_age_s (0.5 s)
    stale = send_verify_goal(player, "/latest/grasp_success_node/verify")
    assert stale.accepted and stale.verdict.status == GraspVerdict.UNKNOWN
    assert stale.verdict.error_code in (GraspVerdict.ERROR_STALE_FRAME, GraspVerdict.ERROR_NO_FRAME)
    player.clear()
    for _ in range(5):  # the first frames may go before the best-effort reader matched
        player.publish_frame(frame(5, False))
        time.sleep(0.05)
    answer = send_verify_goal(player, "/latest/grasp_success_node/verify")
    assert answer.verdict.status == GraspVerdict.FAILURE and answer.verdict.trigger == "action"
    (published,) = player.wait_for_results(1, timeout=10.0)
    assert published["event_id"] == answer.verdict.event_id and published["verdict"] is False


def test_a_verify_goal_with_an_invalid_policy_override_is_refused(latest):
    player, _, _ = latest
    outcome = send_verify_goal(player, "/latest/grasp_success_node/verify",
                               frame_selection="best_of_three")
    assert outcome.accepted is False


def test_a_verify_goal_with_n_frames_beyond_the_parameters_range_is_refused(latest):
    """The n_frames parameter's range (1 to 30) holds for a goal's n_frames too."""
    player, _, _ = latest
    outcome = send_verify_goal(player, "/latest/grasp_success_node/verify",
                               frame_selection="n_after", n_frames=100)
    assert outcome.accepted is False


def test_a_verify_goal_needing_over_half_the_frame_buffer_is_refused_one_within_is_answered(
        latest):
    """buffer_size must hold 2 x n_frames, for a goal's n_frames as for the parameter's: a
    goal the buffer could never satisfy is refused at once, not left to its deadline."""
    player, _, _ = latest
    action = "/latest/grasp_success_node/verify"
    n_frames = 15  # within the parameter's range, over half the frames the node keeps
    assert n_frames <= N_FRAMES_RANGE[1] and 2 * n_frames > LATEST_BUFFER
    too_many = send_verify_goal(player, action, frame_selection="n_after", n_frames=n_frames)
    assert too_many.accepted is False
    player.clear()
    within = send_verify_goal(
        player, action, frame_selection="n_after", n_frames=5,
        during=lambda: [player.publish_frame(frame(13, True)) or time.sleep(0.1)
                        for _ in range(8)])
    assert within.accepted and within.verdict.status == GraspVerdict.SUCCESS, within.verdict
    assert within.verdict.policy == "n_after(5,mean)" and len(within.verdict.frame_stamps) == 5


def test_verdicts_are_typed_and_stamped_with_the_event_time_and_the_camera_frame_id(
        latest, trained_model):
    """An independent GraspVerdict subscriber, as a C++ grasp manager would have."""
    player, header_pub, _ = latest
    seen: list[GraspVerdict] = []
    sub = player.create_subscription(GraspVerdict, "grasp_success/result", seen.append, 10)
    time.sleep(0.5)
    image = Image(**rgb_to_image_fields(frame(13, True), "rgb8"))
    image.header.frame_id = "allegro_palm_camera"
    player.publish_image(image)
    event = player.get_clock().now().to_msg()
    event.nanosec = event.nanosec // 1000 * 1000 + 123  # not representable as float seconds
    header_pub.publish(Header(stamp=event))
    end = time.monotonic() + 10.0
    while not seen and time.monotonic() < end:
        time.sleep(0.02)
    player.destroy_subscription(sub)
    (verdict,) = seen
    assert (verdict.header.stamp.sec, verdict.header.stamp.nanosec) == (event.sec, event.nanosec)
    assert verdict.header.frame_id == "allegro_palm_camera"
    assert verdict.status == GraspVerdict.SUCCESS and verdict.error_code == ""
    assert verdict.frame_stamps[0] == image.header.stamp
    assert verdict.p_success >= verdict.threshold and verdict.model == str(trained_model)


def test_header_events_use_their_own_stamp(latest):
    player, header_pub, _ = latest
    player.clear()
    old = player.publish_frame(frame(11, True))
    time.sleep(0.1)
    player.publish_frame(frame(12, False))
    header_pub.publish(Header(stamp=rclpy.time.Time(seconds=old + 0.01).to_msg()))
    (record,) = player.wait_for_results(1, timeout=10.0)
    assert record["frame_stamps"] == [pytest.approx(old, abs=1e-6)]
    assert record["verdict"] is True


def test_a_missing_model_is_a_one_line_error_and_a_non_zero_exit(ros_install, tmp_path):
    log = tmp_path / "node.log"
    proc = rosnode.start(ros_install, tmp_path / "missing.keras", log)
    assert proc.wait(120) == 1
    text = log.read_text()
    assert "model file not found" in text and "Traceback" not in text


def test_use_sim_time_can_be_set_at_run_time_beside_the_nodes_own_parameters(live):
    """rclpy owns use_sim_time: the node validates only its own parameters (was refused
    with 'unknown parameters: use_sim_time')."""
    player, proc, _ = live
    node = "/live/grasp_success_node"
    try:
        result = set_parameter(player, node, "use_sim_time", True)
        assert result.successful, result.reason
        assert get_parameter(player, node, "use_sim_time") is True
    finally:
        assert set_parameter(player, node, "use_sim_time", False).successful
    assert get_parameter(player, node, "use_sim_time") is False
    refused = set_parameter(player, node, "threshold", 2.0)
    assert not refused.successful and get_parameter(player, node, "threshold") == -1.0
    assert proc.poll() is None


def test_threshold_changes_at_run_time_and_bad_values_are_refused(live):
    player, _, _ = live
    assert not set_parameter(player, "/live/grasp_success_node", "threshold", 1.5).successful
    assert set_parameter(player, "/live/grasp_success_node", "threshold", 1.0).successful
    try:
        player.clear()
        event_then_frames(player, [frame(21, True)])
        (record,) = player.wait_for_results(1, timeout=10.0)
        assert record["threshold"] == 1.0
        assert record["verdict"] is (record["p_success"] >= 1.0)
    finally:
        assert set_parameter(player, "/live/grasp_success_node", "threshold", -1.0).successful
    player.clear()
    event_then_frames(player, [frame(21, True)])
    (record,) = player.wait_for_results(1, timeout=10.0)
    assert record["threshold"] == 0.5


def test_frames_between_the_two_thresholds_get_no_verdict_but_an_uncertain_record(live):
    player, _, _ = live
    node = "/live/grasp_success_node"
    refused = set_parameter(player, node, "threshold_failure", 0.0)  # threshold is the card's
    assert not refused.successful and "needs threshold set too" in refused.reason
    # Every P(success) short of exactly 0 or 1 lies in [0, 1]'s open interior: the band.
    assert set_parameter(player, node, "threshold", 1.0).successful
    try:
        assert set_parameter(player, node, "threshold_failure", 0.0).successful
        blend = (frame(31, True) // 2 + frame(31, False) // 2)  # half a grasp: not extreme
        player.clear()
        event_then_frames(player, [blend])
        (record,) = player.wait_for_results(1, timeout=10.0)
        assert record["verdict"] is None and record["error_code"] == "uncertain"
        assert 0.0 < record["p_success"] < 1.0 and record["confidence"] is None
        assert record["frame_p_success"] == [record["p_success"]]
        assert record["error"].startswith("uncertain: P(success) ")
        assert record["threshold_failure"] == 0.0 and record["threshold"] == 1.0
        time.sleep(0.5)
        assert player.verdicts == []  # grasp_success (Bool) carries verdicts only
    finally:
        assert set_parameter(player, node, "threshold_failure", -1.0).successful
        assert set_parameter(player, node, "threshold", -1.0).successful


def expected_device(model) -> str:
    """Where the node runs MODEL: TensorFlow's device for a Keras model, else ONNX Runtime's
    best provider here."""
    from grasp_success_ros.model.runtimes import choose_providers, keras_device, runtime_for

    if runtime_for(model) == "keras":
        return keras_device()
    import onnxruntime

    return choose_providers(None, onnxruntime.get_available_providers())[0]


def test_diagnostics_report_model_camera_and_counts(live, trained_model):
    from diagnostic_msgs.msg import DiagnosticArray

    player, _, _ = live
    seen = []
    sub = player.create_subscription(DiagnosticArray, "/diagnostics", seen.append, 10)
    deadline = time.monotonic() + 10.0
    mine = []
    while not mine and time.monotonic() < deadline:
        player.publish_frame(frame(1, True))
        time.sleep(0.1)
        mine = [s for a in list(seen) for s in a.status
                if s.hardware_id == "/live/grasp_success_node"]
    player.destroy_subscription(sub)
    values = {kv.key: kv.value for kv in mine[-1].values}
    assert values["model_loaded"] == "True"
    assert values["device"] == expected_device(trained_model)
    assert {"camera_rate_hz", "newest_frame_age_s", "last_latency_ms", "verdicts",
            "failures"} <= set(values)
    assert int(values["verdicts"]) >= 1
    # where an event's milliseconds go: each stage's median, measured in the node
    for stage in ("frame_delay", "preprocess", "forward"):
        assert float(values[f"{stage}_ms_p50"]) >= 0.0, values
    assert float(values["forward_ms_p50"]) > 0.0


def node_status(seen: list, node: str):
    """The newest /diagnostics status of ``node`` among the arrays received (None: none)."""
    mine = [s for a in list(seen) for s in a.status if s.hardware_id == node]
    return mine[-1] if mine else None


CLOCK_AHEAD = {"seed": 3, "n_grasps": 3, "approach_s": 0.8, "hold_s": 0.8}  # 2 successes


def test_a_camera_clock_half_a_second_ahead_gives_clock_skew_records_and_a_warning(live):
    """The frame stamped just after each grasp was taken 0.5 s before it (the open hand):
    never a verdict on it, a clock_skew record instead, and /diagnostics WARN with the offset."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    player, _, log = live
    seen: list = []
    sub = player.create_subscription(DiagnosticArray, "/diagnostics", seen.append, 10)
    player.camera_ahead_s = 0.5
    try:
        player.clear()
        labels = player.play(grasp_stream(**CLOCK_AHEAD))
        records = player.wait_for_results(len(labels), timeout=15.0)
        seen.clear()
        for _ in range(40):  # frames keep coming while the node publishes its diagnostics
            player.publish_frame(frame(2, True))
            time.sleep(1 / 30)
        status = node_status(seen, "/live/grasp_success_node")
    finally:
        player.camera_ahead_s = 0.0
        player.destroy_subscription(sub)
    assert [r["error_code"] for r in records] == ["clock_skew"] * 3, records
    assert all(r["verdict"] is None for r in records) and player.verdicts == []
    ahead = re.search(r"frame stamped ([0-9.]+) s after it was received \(clock_tolerance_s "
                      r"0.2\)", records[0]["error"])
    assert ahead and float(ahead.group(1)) == pytest.approx(0.5, abs=0.05), records[0]["error"]
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == DiagnosticStatus.WARN, status.message
    assert "frames stamped up to" in status.message and "clock_skew" in status.message
    assert float(values["frame_ahead_ms_max"]) == pytest.approx(500.0, abs=50.0)
    assert re.search(r"camera frame stamped 0\.[45]\d* s after", log.read_text())  # logged


def test_with_arrival_timing_a_camera_clock_ahead_gets_the_right_verdicts(live):
    player, _, _ = live
    node = "/live/grasp_success_node"
    assert set_parameter(player, node, "frame_stamp", "arrival").successful
    player.camera_ahead_s = 0.5
    try:
        player.clear()
        labels = player.play(grasp_stream(**CLOCK_AHEAD))
        records = player.wait_for_results(len(labels), timeout=15.0)
    finally:
        player.camera_ahead_s = 0.0
        assert set_parameter(player, node, "frame_stamp", "header").successful
    assert [r["verdict"] for r in records] == labels, records


@pytest.fixture(scope="module")
def sim(ros, ros_install, trained_model, tmp_path_factory):
    """A node under use_sim_time; nothing publishes /clock until a test does."""
    log = tmp_path_factory.mktemp("node") / "node.log"
    proc = rosnode.start(ros_install, trained_model, log, "-r", "__ns:=/sim",
                         "-p", "use_sim_time:=true")
    player = StreamPlayer(namespace="/sim")
    try:
        assert player.wait_for_node(120.0, alive=lambda: proc.poll() is None), log.read_text()
        yield player, proc, log
    finally:
        player.close()
        rosnode.stop(proc)


def test_use_sim_time_without_clock_names_the_cause_in_records_and_diagnostics(sim):
    """A bag played without --clock: the node's clock stands at 0 while frames carry wall
    time. Runs before any test of this module publishes /clock."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    player, _, _ = sim
    seen: list = []
    sub = player.create_subscription(DiagnosticArray, "/diagnostics", seen.append, 10)
    status, end = None, time.monotonic() + 20.0
    while time.monotonic() < end and (status is None or status.level != DiagnosticStatus.ERROR):
        player.publish_frame(frame(3, True))  # stamped with the player's wall clock
        time.sleep(0.1)
        status = node_status(seen, "/sim/grasp_success_node")
    player.destroy_subscription(sub)
    assert status is not None and status.level == DiagnosticStatus.ERROR
    assert "use_sim_time is true and no /clock received" in status.message
    assert {kv.key: kv.value for kv in status.values}["node_clock_s"] == "0.0"
    records = []
    for _ in range(3):  # the first event may precede the trigger subscription's match
        player.event_pub.publish(Empty())
        records = player.wait_for_results(1, timeout=3.0)
        if records:
            break
    assert records and records[0]["error_code"] == "no_clock" and records[0]["verdict"] is None
    assert "no /clock message has been received" in records[0]["error"]
    assert "clock stands at 0 while frames carry stamps near 1" in records[0]["error"]
    player.clear()


def test_use_sim_time_stamps_events_on_the_bag_clock(sim):
    from rosgraph_msgs.msg import Clock

    player, _, _ = sim
    clock_pub = player.create_publisher(Clock, "/clock", 10)
    player.clear()
    sim_t = 1000.0
    for i in range(30):
        sim_t += 1 / 30
        clock_pub.publish(Clock(clock=rclpy.time.Time(seconds=sim_t).to_msg()))
        msg = Image(**rgb_to_image_fields(frame(i, True)))
        msg.header.stamp = rclpy.time.Time(seconds=sim_t).to_msg()
        player.image_pub.publish(msg)
        if i == 10:
            player.event_pub.publish(Empty())
        time.sleep(1 / 30)
    (record,) = player.wait_for_results(1, timeout=10.0)
    assert 1000.0 < record["event_stamp"] < 1001.0
    assert record["verdict"] is not None
    assert record["event_stamp"] <= record["frame_stamps"][0] < record["event_stamp"] + 0.2


def test_a_two_camera_node_answers_every_event_of_each_camera_once_on_its_own_namespace(
        ros, ros_install, trained_model, tmp_path):
    """One node, one model, cameras left and right: coinciding events on both, each answered
    once on its camera's result topic, judged on that camera's own first frame after it."""
    log = tmp_path / "node.log"
    with rosnode.node_and_player(ros_install, trained_model, log, "/hands", "-p",
                                 "cameras:=[left, right]", camera="left") as (left, proc):
        right = StreamPlayer("right_player", namespace="/hands", camera="right")
        try:
            assert right.wait_for_node(30.0, alive=lambda: proc.poll() is None), log.read_text()
            rosnode.warm_up(right)
            left.clear()
            players = (left, right)
            sent: list = [[], []]  # per camera, per event: (time before it, its frame stamps)
            for i in range(6):
                before = left.get_clock().now().nanoseconds * 1e-9
                for player in players:
                    player.publish_event()
                time.sleep(0.05)
                stamps: list = [[], []]
                for _ in range(3):
                    for k, player in enumerate(players):
                        stamps[k].append(player.publish_frame(frame(i, k == 0)))
                    time.sleep(1 / 30)
                for k in range(2):
                    sent[k].append((before, stamps[k]))
            for player, events in zip(players, sent, strict=True):
                results = player.wait_for_results(6, timeout=20.0)
                assert len(results) == 6, log.read_text()[-2000:]
                for record, (before, own) in zip(results, events, strict=True):
                    assert record["p_success"] is not None, record
                    assert before <= record["event_stamp"] <= own[0]
                    assert min(abs(record["frame_stamps"][0] - s) for s in own) < 1e-6, record
            time.sleep(1.0)
            assert len(left.results) == len(right.results) == 6, "an event answered twice"
            ids = [r["event_id"] for r in left.results + right.results]
            assert len(set(ids)) == 12
        finally:
            right.close()
