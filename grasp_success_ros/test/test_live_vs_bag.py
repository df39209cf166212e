"""A live session recorded over real DDS (two hands' cameras, triggers, the first hand's
joint states and the node's verdicts, written as rosbag2 writes them: raw CDR at its receive
time), judged again by bag-eval with the same model and the same parameters file: record by
record, bag-eval says what the node said (the grasp service is the one engine of both), the
first hand's witnesses included."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import rosnode
from grasp_success_msgs.msg import GraspVerdict
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header
from test_node_hand import EMPTY, HELD, AllegroDriver

from grasp_success_ros.bags.topics import typestore
from grasp_success_ros.cli import main as cli
from grasp_success_ros.ros.stream_player import StreamPlayer
from grasp_success_ros.ros.verdicts import record_fields

pytestmark = pytest.mark.ros

CAMERAS = ("hand_a", "hand_b")
PARAMS_FILE = """\
grasp_success_node:
  ros__parameters:
    cameras: [hand_a, hand_b]
    trigger_type: header
    frame_selection: n_after
    n_frames: 3
    deadline_s: 0.6
    threshold: 0.5
    threshold_failure: 0.2
    cameras.hand_a.hand_profile: allegro_v4
    qos_overrides:
""" + "".join(f"""\
      {topic}:
        subscription: {{reliability: reliable, history: keep_all}}
""" for topic in [f"/{name}/camera/image_raw" for name in CAMERAS] + ["/hand_a/joint_states"])
DEADLINE_S = 0.6
FPS = 30.0
GRASPS = 8  # judged while frames flow, alternately a success and a failure scene
PAUSED = 2  # sent with the first camera paused: answered at the deadline, no_fresh_frame
MSGS = Path(__file__).resolve().parents[2] / "grasp_success_msgs" / "msg"
RECORDED = {"camera/image_raw": ("sensor_msgs/msg/Image", Image),
            "grasp_completed": ("std_msgs/msg/Header", Header),
            "grasp_success/result": ("grasp_success_msgs/msg/GraspVerdict", GraspVerdict)}
TOPICS = {f"/{name}/{topic}": kind for name in CAMERAS for topic, kind in RECORDED.items()}
TOPICS["/hand_a/joint_states"] = ("sensor_msgs/msg/JointState", JointState)


class Recorder(Node):
    """What ``ros2 bag record`` keeps: each message's serialized CDR and its receive time,
    reliable and with room for every message, as the node's own subscriptions are here."""

    def __init__(self) -> None:
        super().__init__("session_recorder")
        self.items: list[tuple[str, int, bytes]] = []
        self._lock = threading.Lock()
        qos = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
        for topic, (_, cls) in TOPICS.items():
            self.create_subscription(cls, topic, lambda raw, t=topic: self._keep(t, raw), qos,
                                     raw=True)
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def _keep(self, topic: str, raw: bytes) -> None:
        with self._lock:
            self.items.append((topic, self.get_clock().now().nanoseconds, bytes(raw)))

    def verdicts(self, camera: str) -> list[dict]:
        with self._lock:
            return [record_fields(deserialize_message(raw, GraspVerdict))
                    for topic, _, raw in self.items if topic == f"/{camera}/grasp_success/result"]

    def write(self, out: Path) -> None:
        """The recording as a rosbag2 (sqlite3), in receive order."""
        from rosbags.rosbag2 import Writer
        from rosbags.typesys import get_types_from_msg

        self._executor.shutdown()
        self._thread.join(timeout=10.0)
        ts = typestore()
        verdict = RECORDED["grasp_success/result"][0]
        ts.register(get_types_from_msg((MSGS / "GraspVerdict.msg").read_text(), verdict))
        with Writer(out, version=9) as writer:
            connections = {t: writer.add_connection(t, m, typestore=ts)
                           for t, (m, _) in TOPICS.items()}
            for topic, log_ns, raw in sorted(self.items, key=lambda item: item[1]):
                writer.write(connections[topic], log_ns, raw)


class Camera:
    """30 Hz frames of the scene of the moment, until paused or stopped."""

    def __init__(self, player: StreamPlayer, seed: int) -> None:
        self.player, self.success, self.seed = player, True, seed
        self.running, self.stopped = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            if self.running.wait(0.05):
                self.player.publish_frame(rosnode.frame(self.seed, self.success, (96, 128)))
                time.sleep(1.0 / FPS)

    def stop(self) -> None:
        self.stopped.set()
        self._thread.join(timeout=5.0)


def live_session(players: list[StreamPlayer]) -> dict[str, int]:
    """Grasps on both hands while their cameras run (some at the same moment, judged in one
    forward pass), the first hand's joints following its scene, then a few on the first
    hand with its camera paused (its joints answer); the events sent."""
    cameras = [Camera(player, seed) for seed, player in enumerate(players)]
    hand = AllegroDriver(players[0], "hand_a/joint_states")
    hand.pose = HELD
    for camera in cameras:
        camera.running.set()
    time.sleep(0.5)  # a buffer of frames before the first grasp, as on a robot
    sent = dict.fromkeys(CAMERAS, 0)
    for k in range(GRASPS):
        hands = range(len(players)) if k % 3 == 0 else [k % 2]
        for i in hands:
            cameras[i].success, cameras[i].seed = (k + i) % 2 == 0, k
        hand.pose = HELD if cameras[0].success else EMPTY
        time.sleep(0.1)  # the scene has changed in the frames the event will get
        for i in hands:
            players[i].publish_event()
            sent[CAMERAS[i]] += 1
        time.sleep(0.4)
    for _ in range(PAUSED):
        cameras[0].running.clear()
        time.sleep(0.2)
        players[0].publish_event()
        sent[CAMERAS[0]] += 1
        time.sleep(DEADLINE_S + 0.4)
        cameras[0].running.set()
        time.sleep(0.3)
    for camera in cameras:
        camera.stop()
    hand.close()
    return sent


def record_live(ros_install: Path, model: Path, params: Path, log: Path) -> tuple:
    """The node on two hands, configured by ``params``, and its session recorded."""
    proc = rosnode.start(ros_install, model, log, "--params-file", str(params))
    players = [StreamPlayer(name=f"player_{name}", camera=name, trigger_type="header")
               for name in CAMERAS]
    recorder = None
    try:
        for player in players:
            assert player.wait_for_node(120.0, alive=lambda: proc.poll() is None), \
                log.read_text()
        recorder = Recorder()
        time.sleep(1.0)  # the recorder has matched the players' and the node's writers
        sent = live_session(players)
        time.sleep(1.0)
    finally:
        for player in players:
            player.close()
        rosnode.stop(proc)
    return recorder, sent


def test_bag_eval_of_a_recorded_live_session_gives_the_nodes_records(
        ros, ros_install, trained_model, tmp_path, capsys):
    params = tmp_path / "hands.yaml"
    params.write_text(PARAMS_FILE)
    log = tmp_path / "node.log"
    recorder, sent = record_live(ros_install, trained_model, params, log)
    bag = tmp_path / "session"
    recorder.write(bag)
    live = {name: recorder.verdicts(name) for name in CAMERAS}
    recorder.destroy_node()

    capsys.readouterr()
    assert cli.main(["bag-eval", str(bag), "--model", str(trained_model), "--params-file",
                str(params), "--json", "--no-progress"]) == 0
    events = json.loads(capsys.readouterr().out)["events"]

    for name in CAMERAS:
        offline = [e for e in events if e["camera"] == name]
        assert len(live[name]) == len(offline) == sent[name], log.read_text()[-3000:]
        for node_rec, bag_rec in zip(live[name], offline, strict=True):
            assert node_rec["event_stamp"] == bag_rec["event_stamp"]
            assert (node_rec["verdict"], node_rec["error_code"]) == \
                (bag_rec["verdict"], bag_rec["error_code"])
            assert node_rec["frame_stamps"] == bag_rec["frame_stamps"]
            expected = bag_rec["p_success"]
            assert node_rec["p_success"] == (None if expected is None
                                             else pytest.approx(expected, abs=1e-5))
            assert node_rec["frame_p_success"] == pytest.approx(bag_rec["frame_p_success"],
                                                                abs=1e-5)
            assert (node_rec["sources"], node_rec["missing"], node_rec["fusion"]) == \
                (bag_rec["sources"], bag_rec["missing"], bag_rec["fusion"])
            for source in ("p_vision", "p_joints"):
                expected = bag_rec[source]
                assert node_rec[source] == (None if expected is None
                                            else pytest.approx(expected, abs=1e-5))
    hand_a = [e for e in events if e["camera"] == "hand_a"]
    assert sum(e["sources"] == ["vision", "joints"] for e in hand_a) >= 4
    paused = [e for e in hand_a if e["sources"] == ["joints"]]  # the camera paused
    assert len(paused) == PAUSED and all(e["missing"][0].startswith("camera: no_fresh_frame")
                                         for e in paused)
    assert all(e["sources"] in (["vision"], []) for e in events if e["camera"] == "hand_b")
