"""A synthetic bag replayed through the installed node over real DDS gives, event by event,
the verdicts that ``bag-eval`` gives for the same bag; replay keeps the recorded pace."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import rclpy
import rosnode
from rclpy.executors import SingleThreadedExecutor
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Empty

from grasp_success_ros.bags.evaluate import evaluate_bag
from grasp_success_ros.bags.topics import BagTopics
from grasp_success_ros.bags.writer import write_session
from grasp_success_ros.core.params import NodeConfig
from grasp_success_ros.core.stamps import stamp_ns
from grasp_success_ros.model.classifier import GraspClassifier
from grasp_success_ros.ros.replay import ReplayOptions, replay
from grasp_success_ros.ros.stream_player import StreamPlayer

pytestmark = pytest.mark.ros

PACKAGE_DIR = Path(__file__).resolve().parent.parent
GRASPS = 8


def replay_cli(bag: Path, ns: str) -> subprocess.CompletedProcess:
    """``grasp-success replay`` in its own process, into the node's namespace, with /clock."""
    remaps = [a for t in ("/camera/image_raw", "/grasp_completed")
              for a in ("--remap", f"{t}:={ns}{t}")]
    cmd = [sys.executable, "-m", "grasp_success_ros", "replay", str(bag), "--clock",
           *remaps, "--wait-for", f"{ns}/camera/image_raw", "--wait-for",
           f"{ns}/grasp_completed", "--delay", "2", "--quiet"]
    return subprocess.run(cmd, cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=180)


def wait_for_node(player: StreamPlayer, ns: str, proc, timeout: float = 120.0) -> bool:
    """The node subscribes to the camera and the trigger (of any type) and publishes results."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if player.image_pub.get_subscription_count() and \
                player.count_subscribers(f"{ns}/grasp_completed") and \
                player.count_publishers(f"{ns}/grasp_success/result"):
            return True
        time.sleep(0.1)
    return False


# Receipt-time events and Header-stamped streaming n_after under /clock; the record-by-record
# comparison of a live session with bag-eval is test_live_vs_bag's.
@pytest.mark.parametrize(("trigger_type", "selection"),
                         [("empty", "first_after"), ("header", "n_after")])
def test_replayed_bag_gives_the_node_the_verdicts_of_bag_eval(
        ros, ros_install, trained_model, tmp_path, trigger_type, selection):
    bag = tmp_path / "session"
    write_session(bag, n_grasps=GRASPS, seed=11, height=120, width=160,
                  trigger_type=trigger_type, approach_s=0.4, hold_s=1.2)
    ns = f"/bag_{trigger_type}_{selection}"
    log = tmp_path / "node.log"
    proc = rosnode.start(ros_install, trained_model, log, "-r", f"__ns:={ns}",
                         "-p", "use_sim_time:=true", "-p", f"trigger_type:={trigger_type}",
                         "-p", f"frame_selection:={selection}")
    player = StreamPlayer(name="bag_results", namespace=ns)
    try:
        assert wait_for_node(player, ns, proc), log.read_text()
        done = replay_cli(bag, ns)
        assert done.returncode == 0, done.stderr
        live = player.wait_for_results(GRASPS, timeout=30.0)
    finally:
        player.close()
        rosnode.stop(proc)

    clf, _ = GraspClassifier.from_path(trained_model)
    policy = NodeConfig.from_values({"model_path": str(trained_model),
                                     "trigger_type": trigger_type, "frame_selection": selection}
                                    ).policy(clf.card.threshold)
    offline, _ = evaluate_bag(bag, clf, policy, BagTopics(trigger_type=trigger_type))

    assert len(live) == len(offline) == GRASPS, log.read_text()[-3000:]
    for node_rec, bag_res in zip(live, offline, strict=True):
        rec = bag_res.record
        assert node_rec["event_id"] == rec.event_id
        tolerance = 1e-6 if trigger_type == "header" else 0.5 / 30
        assert node_rec["event_stamp"] == pytest.approx(rec.event_stamp, abs=tolerance)
        assert node_rec["frame_stamps"] == pytest.approx(rec.frame_stamps, abs=1e-6)
        assert node_rec["verdict"] is rec.verdict, (node_rec, rec)
        assert node_rec["p_success"] == pytest.approx(rec.p_success, abs=1e-3)
        assert node_rec["frame_p_success"] == pytest.approx(rec.frame_p_success, abs=1e-3)


def test_replay_keeps_the_recorded_pace_scaled_by_rate_and_publishes_clock(ros, tmp_path):
    bag = tmp_path / "pace"
    write_session(bag, n_grasps=3, seed=1, height=24, width=32, approach_s=0.3, hold_s=0.2)
    node = rclpy.create_node("pace_listener")
    events: list[float] = []
    clocks: list[int] = []
    node.create_subscription(Empty, "/pace/grasp_completed",
                             lambda m: events.append(time.monotonic()), 10)
    node.create_subscription(Clock, "/clock",
                             lambda m: clocks.append(stamp_ns(m.clock)), 100)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        opts = ReplayOptions(rate=2.0, clock=True, topics=["/grasp_completed"],
                             remaps={"/grasp_completed": "/pace/grasp_completed"},
                             wait_for=["/pace/grasp_completed"], wait_timeout_s=30)
        sent = replay(bag, opts, log=lambda m: None)
        time.sleep(0.3)
    finally:
        executor.shutdown()
        node.destroy_node()
    assert sent == 3 and len(events) == 3
    gaps = [b - a for a, b in zip(events, events[1:], strict=False)]
    assert gaps == pytest.approx([0.35, 0.35], abs=0.08)  # 0.7 s per grasp at rate 2
    assert clocks and clocks == sorted(clocks) and clocks[0] >= 1_700_000_000 * 10**9


ROSBAG2_DATA = PACKAGE_DIR / "test" / "data" / "rosbag2"


def replay_quietly(bag: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grasp_success_ros", "replay", str(bag), *args],
                          cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_replay_publishes_every_message_of_a_bag_rosbag2_recorded(ros, storage):
    """rosbag2's talker bag, whose metadata.yaml states other QoS profiles than its storage."""
    from rcl_interfaces.msg import Log
    from std_msgs.msg import String

    ns = f"/talker_{storage}"
    node = rclpy.create_node(f"talker_listener_{storage}")
    got: dict[str, list] = {"/topic": [], "/rosout": []}
    node.create_subscription(String, f"{ns}/topic", lambda m: got["/topic"].append(m.data), 100)
    node.create_subscription(Log, f"{ns}/rosout", lambda m: got["/rosout"].append(m.msg), 100)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        done = replay_quietly(ROSBAG2_DATA / storage / "talker", "--rate", "10",
                              "--remap", f"/topic:={ns}/topic", "--remap", f"/rosout:={ns}/rosout",
                              "--wait-for", f"{ns}/topic", "--wait-for", f"{ns}/rosout")
        time.sleep(0.5)
    finally:
        executor.shutdown()
        node.destroy_node()
    assert done.returncode == 0, done.stderr
    assert f"replayed 20 messages from {ROSBAG2_DATA / storage / 'talker'}" in done.stdout
    assert got["/topic"] == [f"Hello, world! {i}" for i in range(10)]
    assert got["/rosout"] == [f"Publishing: 'Hello, world! {i}'" for i in range(10)]


def test_a_replay_that_reads_fewer_messages_than_the_bag_lists_says_so_and_fails(ros, tmp_path):
    import bag_formats

    bag = tmp_path / "short"
    write_session(bag, n_grasps=2, seed=1, height=24, width=32)
    bag_formats.overstate_count(bag, "/grasp_completed", 3)
    done = replay_quietly(bag, "--rate", "20", "--topics", "/grasp_completed")
    assert done.returncode == 2
    assert "read only 2 of the 5 messages on /grasp_completed that it lists" in done.stderr


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_a_bag_that_names_its_type_in_the_short_form_is_replayed(ros, storage):
    """rosbag2's test_bag_for_seek names test_msgs/BasicTypes (installed: test_msgs/msg/...):
    its five messages arrive as recorded."""
    from rclpy.serialization import deserialize_message
    from test_msgs.msg import BasicTypes

    from grasp_success_ros.bags.reader import open_bag

    bag = ROSBAG2_DATA / storage / "test_bag_for_seek"
    topic = f"/seek_{storage}/topic1"
    node = rclpy.create_node(f"seek_listener_{storage}")
    got: list[BasicTypes] = []
    node.create_subscription(BasicTypes, topic, got.append, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    logged: list[str] = []
    try:
        sent = replay(bag, ReplayOptions(rate=4.0, remaps={"topic1": topic}, wait_for=[topic],
                                         wait_timeout_s=30), log=logged.append)
        time.sleep(0.3)
    finally:
        executor.shutdown()
        node.destroy_node()
    with open_bag(bag) as b:
        recorded = [deserialize_message(bytes(raw), BasicTypes)
                    for *_, raw in b.messages({"topic1"})]
    assert sent == 5 and not logged
    assert got == recorded


def write_bag_of_an_uninstalled_type(path: Path) -> Path:
    """A bag whose only topic carries a type no package here provides (its definition is in
    the bag, so the bag tools decode it; rclpy has no class to publish it with)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c = w.add_connection("/contact", "grasp_lab_msgs/msg/Contact", msgdef="float32 force\n",
                             rihs01="RIHS01_" + "0" * 64)
        for i in range(3):
            w.write(c, 1_000_000_000 + i, b"\x00\x01\x00\x00" + bytes(4))
    return path


def test_a_replay_of_types_not_installed_names_the_skipped_topics_and_fails(ros, tmp_path):
    done = replay_quietly(write_bag_of_an_uninstalled_type(tmp_path / "contact"))
    assert done.returncode == 2
    assert "skipping /contact (3 messages): message type grasp_lab_msgs/msg/Contact is not " \
           "installed here" in done.stderr
    assert "nothing to publish" in done.stderr
