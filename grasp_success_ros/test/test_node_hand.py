"""grasp_success_node with a hand profile over real DDS: the installed node in its own process
(``hand_profile: allegro_v4``), frames, events and an Allegro v4 driver's joint_states
published from this process, each verdict checked for its witnesses (core/evidence.py,
ros/hand.py). One node serves all four cases: both witnesses, the camera stopped, the joints
stopped, neither."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import rosnode
from grasp_success_msgs.action import WatchHold
from grasp_success_msgs.msg import GraspHold
from rosnode import event_then_frames, frame
from sensor_msgs.msg import JointState
from std_msgs.msg import Empty
from test_lifecycle import diagnostics, drive, settled

from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.core.fusion import Fusion
from grasp_success_ros.core.hand_card import HandCard, JointModel
from grasp_success_ros.core.joints import FEATURE_NAMES
from grasp_success_ros.core.params import CameraTopics, NodeConfig
from grasp_success_ros.core.stamps import stamp_s
from grasp_success_ros.data.hand_cards import save_hand_card
from grasp_success_ros.data.hand_profiles import load_profile
from grasp_success_ros.ros.hand import hand_channels
from grasp_success_ros.ros.rclpy_compat import ActionClient

pytestmark = pytest.mark.ros

ALLEGRO = load_profile("allegro_v4")
NODE = "/hand/grasp_success_node"
# The camera is missing this long after an event: short, so the suite stays fast; long
# enough past the joints' 0.2 s window that an answer woken by them is told from one at it.
DEADLINE_S = 0.8
HELD = (0.55, 0.5)  # closing joints at 55 % of their range, pushing (effort 0.5 N m of 0.7)
EMPTY = (0.99, 0.1)  # closed to their limits, barely pushing
JOINT_PERIOD_S = 0.01  # the driver's 100 Hz


class AllegroDriver:
    """The hand's joint_states at ~100 Hz, stamped now with the 16 joints of the profile:
    ``pose`` HELD, EMPTY, or None (the driver stopped)."""

    def __init__(self, player, topic: str = "joint_states") -> None:
        self.pub = player.create_publisher(JointState, topic, 10)
        self.clock = player.get_clock()
        self.pose: tuple[float, float] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def message(self, closure: float, effort: float) -> JointState:
        position = np.zeros(len(ALLEGRO.joints))
        for joint, k in zip(ALLEGRO.closing, ALLEGRO.closing_index, strict=True):
            position[k] = joint.open + closure * (joint.closed - joint.open)
        n = len(ALLEGRO.joints)
        return JointState(name=list(ALLEGRO.joints), position=position.tolist(),
                          velocity=[0.0] * n, effort=[effort] * n)

    def _run(self) -> None:
        while not self._stop.is_set():
            pose = self.pose
            if pose is not None:
                msg = self.message(*pose)
                msg.header.stamp = self.clock.now().to_msg()
                self.pub.publish(msg)
            time.sleep(JOINT_PERIOD_S)

    def hold(self, pose: tuple[float, float] | None, settle_s: float = 0.15) -> None:
        """Switch the pose (or stop) and let the new one flow past what was in flight."""
        self.pose = pose
        time.sleep(settle_s)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)


@pytest.fixture(scope="module")
def hand(ros, ros_install, trained_model, tmp_path_factory):
    """The node with the Allegro v4 profile, a player and the hand's driver beside it."""
    log = tmp_path_factory.mktemp("node_hand") / "node.log"
    with rosnode.node_and_player(ros_install, trained_model, log, "/hand",
                                 "-p", "hand_profile:=allegro_v4", "-p", "hold_watch:=true",
                                 "-p", f"deadline_s:={DEADLINE_S}") as (player, proc):
        driver = AllegroDriver(player)
        holds: list = []
        player.create_subscription(GraspHold, "grasp_success/hold", holds.append, 10)
        player.holds = holds
        try:
            end = time.monotonic() + 30.0
            while not driver.pub.get_subscription_count() and time.monotonic() < end:
                time.sleep(0.05)
            assert driver.pub.get_subscription_count(), log.read_text()[-2000:]
            driver.hold(HELD, settle_s=0.5)  # the node's best-effort reader matched ours
            yield player, driver, log
        finally:
            driver.close()


def one_result(player, send) -> dict:
    player.clear()
    send()
    (record,) = player.wait_for_results(1, timeout=10.0)
    return record


@pytest.mark.parametrize("success", [True, False], ids=["held", "empty"])
def test_every_event_is_judged_by_the_camera_and_the_joints_each_p_in_the_verdict(hand,
                                                                                   success):
    player, driver, log = hand
    driver.hold(HELD if success else EMPTY)
    record = one_result(player, lambda: event_then_frames(player, [frame(21, success)] * 3))
    assert record["sources"] == ["vision", "joints"], (record, log.read_text()[-2000:])
    assert record["missing"] == [] and record["fusion"] == "default"
    assert record["p_vision"] is not None and record["p_joints"] is not None
    assert (record["p_joints"] > 0.9) if success else (record["p_joints"] < 0.1)
    assert record["verdict"] is success and record["error_code"] is None
    # answered once the joints covered their window (0.2 s), woken by them: not at the deadline
    assert record["latency_ms"] < DEADLINE_S * 1e3


def test_with_the_camera_stopped_the_joints_answer_and_the_verdict_says_so(hand):
    player, driver, _ = hand
    driver.hold(HELD)
    record = one_result(player, lambda: player.event_pub.publish(Empty()))
    assert record["sources"] == ["joints"] and record["verdict"] is True
    assert record["missing"][0].startswith("camera: no_fresh_frame"), record
    assert record["p_vision"] is None and record["p_success"] == pytest.approx(
        record["p_joints"], abs=1e-6)
    assert record["latency_ms"] >= DEADLINE_S * 1e3 * 0.9  # it waited for the camera


def test_with_the_joints_stopped_the_camera_answers_and_the_verdict_says_so(hand):
    player, driver, _ = hand
    driver.hold(None)
    try:
        record = one_result(player, lambda: event_then_frames(player, [frame(22, True)] * 3))
    finally:
        driver.hold(HELD)
    assert record["sources"] == ["vision"] and record["verdict"] is True
    assert record["missing"] == ["joints: no joint_states message stamped within 0.2 s after "
                                 "the event"], record
    assert record["p_joints"] is None and record["fusion"] == "default"


def test_with_neither_witness_the_event_gets_a_no_evidence_record(hand):
    player, driver, _ = hand
    driver.hold(None)
    try:
        record = one_result(player, lambda: player.event_pub.publish(Empty()))
    finally:
        driver.hold(HELD)
    assert record["verdict"] is None and record["error_code"] == "no_evidence"
    assert [m.split(":")[0] for m in record["missing"]] == ["camera", "joints"]
    assert record["sources"] == [] and record["p_success"] is None


def test_the_joints_are_taken_only_while_active_and_a_new_configure_reads_the_hand_again(hand):
    player, driver, _ = hand
    driver.hold(HELD)
    assert float(diagnostics(player, NODE)["newest_joint_age_s"]) < 1.0
    drive(player, NODE, "deactivate")
    assert settled(lambda: driver.pub.get_subscription_count() == 0)
    drive(player, NODE, "cleanup", "configure", "activate")
    assert settled(lambda: driver.pub.get_subscription_count() == 1)
    rosnode.warm_up(player)  # the new best-effort readers matched ours
    record = one_result(player, lambda: event_then_frames(player, [frame(23, True)] * 3))
    assert record["sources"] == ["vision", "joints"] and record["verdict"] is True


def test_an_unknown_hand_profile_is_a_one_line_error_and_a_non_zero_exit(ros_install,
                                                                          trained_model,
                                                                          tmp_path):
    log = tmp_path / "node.log"
    proc = rosnode.start(ros_install, trained_model, log, "-p", "hand_profile:=allegro_v9")
    assert proc.wait(120) == 1
    text = log.read_text()
    assert "hand profile 'allegro_v9' is neither a shipped one" in text, text
    assert "Traceback" not in text


def test_each_camera_has_the_nodes_hand_its_own_or_none_its_topics_under_its_name():
    config = NodeConfig.from_values({"model_path": "m.keras", "hand_profile": "allegro_v4"})
    left, right, third = hand_channels(config, [
        CameraTopics.named("left", {}),
        CameraTopics.named("right", {"hand_profile": "allegro_v5",
                                     "joint_states_topic": "/right_hand/joint_states"}),
        CameraTopics.named("third", {"hand_profile": "none"})])
    assert left.profile.hand == "allegro_v4" and left.joint_states_topic == "left/joint_states"
    assert right.profile.hand == "allegro_v5"
    assert right.joint_states_topic == "/right_hand/joint_states"
    assert right.command_topic.startswith("right/") and right.tactile_topic.startswith("right/")
    assert third is None
    assert hand_channels(config, [CameraTopics("")])[0].joint_states_topic == "joint_states"


def a_card(hand: str) -> HandCard:
    n = len(FEATURE_NAMES)
    model = JointModel((0.0,) * n, (0.0,) * n, (1.0,) * n, (0.5,) * n, 0.0)
    return HandCard(hand, model, Fusion({"vision": 1.2, "joints": 0.8}, 0.1, "fitted:lab"))


def test_a_hand_card_serves_its_joint_model_and_fusion_for_its_own_hand(tmp_path):
    card = save_hand_card(a_card("allegro_v4"), tmp_path / "hand.json")
    config = NodeConfig.from_values({"model_path": "m.keras", "hand_profile": "allegro_v4",
                                     "hand_model": str(card)})
    [hand] = hand_channels(config, [CameraTopics("")])
    assert hand.witness.fusion.name == "fitted:lab"
    other = save_hand_card(a_card("robotiq_2f85"), tmp_path / "gripper.json")
    with pytest.raises(ConfigError, match="hand card is for 'robotiq_2f85'"):
        hand_channels(config.changed({"hand_model": str(other)}), [CameraTopics("")])
    with pytest.raises(ConfigError, match="cannot read hand card"):
        hand_channels(config.changed({"hand_model": str(tmp_path / "none.json")}),
                      [CameraTopics("")])


# --- the watch over the hold (hold_watch: true) -------------------------------------------

def hold_report(player, timeout: float = 5.0) -> GraspHold:
    assert settled(lambda: player.holds, timeout), "no GraspHold on grasp_success/hold"
    return player.holds.pop(0)


def grasped(player, driver) -> dict:
    """A held grasp judged SUCCESS (it opens a hold); earlier holds' reports dropped."""
    driver.hold(HELD)
    record = one_result(player, lambda: event_then_frames(player, [frame(24, True)] * 3))
    assert record["verdict"] is True, record
    time.sleep(0.2)
    player.holds.clear()  # the previous grasp's hold ended when this one was judged
    return record


def test_a_slip_during_the_carry_is_reported_lost_at_its_first_joint_message(hand):
    player, driver, _ = hand
    record = grasped(player, driver)
    slipped_at = stamp_s(player.get_clock().now().to_msg())
    driver.hold(EMPTY)  # the object slipped out: the fingers close the rest of the way
    lost = hold_report(player)
    assert lost.status == GraspHold.LOST and list(lost.sources) == ["joints"], lost.reason
    assert lost.event_id == record["event_id"]
    assert 0.0 <= stamp_s(lost.header.stamp) - slipped_at < 0.05  # the first joint state
    assert len(lost.history_p_success) == len(lost.history_stamps) > 0


def test_a_watch_hold_goal_ends_with_the_hold_released_by_the_grasp_manager(hand):
    player, driver, _ = hand
    grasped(player, driver)
    client = ActionClient(player, WatchHold, "grasp_success_node/watch_hold")
    release = player.create_publisher(Empty, "grasp_released", 10)
    try:
        assert client.wait_for_server(10.0)
        handle = rosnode.wait_future(client.send_goal_async(WatchHold.Goal()), 10.0)
        time.sleep(0.3)
        release.publish(Empty())
        result = rosnode.wait_future(handle.get_result_async(), 10.0)
        assert result.result.hold.status == GraspHold.RELEASED, result.result.hold.reason
        assert hold_report(player).status == GraspHold.RELEASED  # and published, once
        nothing = rosnode.wait_future(client.send_goal_async(WatchHold.Goal()), 10.0)
        ended = rosnode.wait_future(nothing.get_result_async(), 10.0)
        assert "no hold to watch" in ended.result.hold.reason  # aborted: nothing open
    finally:
        client.destroy()
        player.destroy_publisher(release)
