"""A live session recorded over real DDS (camera, triggers and the node's verdicts, written as
rosbag2 writes them: raw CDR at its receive time), judged again by bag-eval with the same model
and parameters: record by record, bag-eval says what the node said (the grasp service is the
one engine of both)."""

from __future__ import annotations

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
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from grasp_success_ros.bags.evaluate import ServiceSettings, evaluate_bag
from grasp_success_ros.bags.topics import BagTopics, typestore
from grasp_success_ros.core.params import NodeConfig
from grasp_success_ros.model.classifier import GraspClassifier
from grasp_success_ros.ros.stream_player import StreamPlayer
from grasp_success_ros.ros.verdicts import record_fields

pytestmark = pytest.mark.ros

NS = "/recorded"
PARAMS = {"trigger_type": "header", "frame_selection": "n_after", "n_frames": 3,
          "deadline_s": 0.6, "threshold": 0.5, "threshold_failure": 0.2}
FPS = 30.0
GRASPS = 8  # judged while frames flow, alternately a success and a failure scene
MSGS = Path(__file__).resolve().parents[2] / "grasp_success_msgs" / "msg"
PAUSED = 2  # sent with the camera paused: answered at the deadline, no_fresh_frame
RECORDED = {"camera/image_raw": ("sensor_msgs/msg/Image", Image),
            "grasp_completed": ("std_msgs/msg/Header", Header),
            "grasp_success/result": ("grasp_success_msgs/msg/GraspVerdict", GraspVerdict)}


class Recorder(Node):
    """What ``ros2 bag record`` keeps: each message's serialized CDR and its receive time,
    reliable and with room for every message, as the node's own subscriptions are here."""

    def __init__(self) -> None:
        super().__init__("session_recorder")
        self.items: list[tuple[str, str, int, bytes]] = []
        self._lock = threading.Lock()
        qos = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
        for topic, (msgtype, cls) in RECORDED.items():
            self.create_subscription(cls, f"{NS}/{topic}",
                                     lambda raw, t=topic, m=msgtype: self._keep(t, m, raw),
                                     qos, raw=True)
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def _keep(self, topic: str, msgtype: str, raw: bytes) -> None:
        with self._lock:
            self.items.append((f"{NS}/{topic}", msgtype, self.get_clock().now().nanoseconds,
                               bytes(raw)))

    def verdicts(self) -> list[dict]:
        with self._lock:
            return [record_fields(deserialize_message(raw, GraspVerdict))
                    for topic, _, _, raw in self.items if topic.endswith("/result")]

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
            connections = {f"{NS}/{t}": writer.add_connection(f"{NS}/{t}", m, typestore=ts)
                           for t, (m, _) in RECORDED.items()}
            for topic, _, log_ns, raw in sorted(self.items, key=lambda item: item[2]):
                writer.write(connections[topic], log_ns, raw)


class Camera:
    """30 Hz frames of the scene of the moment, until paused or stopped."""

    def __init__(self, player: StreamPlayer) -> None:
        self.player, self.success, self.seed = player, True, 0
        self.running, self.stopped = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            if self.running.wait(0.05):
                self.player.publish_frame(rosnode.frame(self.seed, self.success, (120, 160)))
                time.sleep(1.0 / FPS)

    def stop(self) -> None:
        self.stopped.set()
        self._thread.join(timeout=5.0)


def live_session(player: StreamPlayer, recorder: Recorder) -> int:
    """Grasps while the camera runs, then a few with it paused; returns the events sent."""
    camera = Camera(player)
    camera.running.set()
    time.sleep(0.5)  # a buffer of frames before the first grasp, as on a robot
    for k in range(GRASPS):
        camera.success, camera.seed = k % 2 == 0, k
        time.sleep(0.1)  # the scene has changed in the frames the event will get
        player.publish_event()
        time.sleep(0.4)
    for _ in range(PAUSED):
        camera.running.clear()
        time.sleep(0.2)
        player.publish_event()
        time.sleep(PARAMS["deadline_s"] + 0.4)
        camera.running.set()
        time.sleep(0.3)
    camera.stop()
    return GRASPS + PAUSED


def test_bag_eval_of_a_recorded_live_session_gives_the_nodes_records(
        ros, ros_install, trained_model, tmp_path):
    log = tmp_path / "node.log"
    reliable = [f"qos_overrides.{NS}/camera/image_raw.subscription.{k}:={v}" for k, v in
                (("reliability", "reliable"), ("history", "keep_all"))]
    args = [a for k, v in PARAMS.items() for a in ("-p", f"{k}:={v}")] + \
        [a for r in reliable for a in ("-p", r)]
    proc = rosnode.start(ros_install, trained_model, log, "-r", f"__ns:={NS}", *args)
    player = StreamPlayer(name="live_player", namespace=NS, trigger_type="header")
    recorder = None
    try:
        assert player.wait_for_node(120.0, alive=lambda: proc.poll() is None), log.read_text()
        recorder = Recorder()
        time.sleep(1.0)  # the recorder has matched the player's and the node's writers
        sent = live_session(player, recorder)
        time.sleep(1.0)
    finally:
        player.close()
        rosnode.stop(proc)
    live = recorder.verdicts()
    bag = tmp_path / "session"
    recorder.write(bag)
    recorder.destroy_node()

    clf, _ = GraspClassifier.from_path(trained_model)
    config = NodeConfig.from_values({"model_path": str(trained_model), **PARAMS})
    topics = BagTopics(image=f"{NS}/camera/image_raw", trigger=f"{NS}/grasp_completed",
                       trigger_type="header")
    offline, _ = evaluate_bag(bag, clf, config.policy(clf.card.threshold), topics,
                              settings=ServiceSettings(config.buffer_size, config.streaming))

    assert len(live) == len(offline) == sent, log.read_text()[-3000:]
    codes = [r.record.error_code for r in offline]
    assert codes.count("no_fresh_frame") == PAUSED and codes.count(None) >= 2
    for node_rec, bag_res in zip(live, offline, strict=True):
        rec = bag_res.record
        assert node_rec["event_stamp"] == rec.event_stamp
        assert (node_rec["verdict"], node_rec["error_code"]) == (rec.verdict, rec.error_code)
        assert node_rec["frame_stamps"] == rec.frame_stamps
        if rec.p_success is None:
            assert node_rec["p_success"] is None
        else:
            assert node_rec["p_success"] == pytest.approx(rec.p_success, abs=1e-5)
        assert node_rec["frame_p_success"] == pytest.approx(rec.frame_p_success, abs=1e-5)
