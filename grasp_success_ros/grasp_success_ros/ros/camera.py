"""One camera of ``grasp_success_node`` (one hand), the ROS side: its subscriptions, callback
groups and answer publishers. The node holds one per camera (one for today's single camera);
the grasp service judges all of them with its one model."""

from __future__ import annotations

import copy
from collections.abc import Sequence

from grasp_success_msgs.msg import GraspVerdict
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Bool

from grasp_success_ros.core.errors import GraspSuccessError
from grasp_success_ros.core.judge import Frame, GraspRecord
from grasp_success_ros.core.params import CameraTopics
from grasp_success_ros.data.image_conversion import rgb_to_image_fields, to_rgb
from grasp_success_ros.data.overlay import annotate
from grasp_success_ros.ros.messages import trigger_class
from grasp_success_ros.ros.rclpy_compat import InlineCallbackGroup

# Every event must be answered: keep all trigger messages until the callback takes them (a
# depth of 10 lost events of a 100-events-per-second burst while the worker was busy), and
# keep enough answers for a slow reader to catch up.
TRIGGER_QOS = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
ANSWER_DEPTH = 100
# Sensor data published reliable (REP 2003), so both a best-effort subscriber and a reliable
# one (rviz2's displays' default) match it; the newest image only.
LOG_THROTTLE_S = 5.0  # failure lines: one per this many seconds at most
DEBUG_IMAGE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                             reliability=ReliabilityPolicy.RELIABLE)


class CameraChannel:
    """A camera's topics, callback groups and publishers; its frames and waiting events
    live in the grasp service (``GraspService.cameras``, same order)."""

    def __init__(self, topics: CameraTopics) -> None:
        self.topics = topics
        # Camera and trigger in groups of their own: in one mutually exclusive group a
        # 30 Hz camera kept winning the executor's turn and delayed events by seconds.
        self.image_group = InlineCallbackGroup()
        self.trigger_group = MutuallyExclusiveCallbackGroup()
        self.verdict_pub = self.result_pub = self.debug_pub = None

    @property
    def label(self) -> str:
        """How log lines name the camera ("" for the only one)."""
        return f"{self.topics.name} " if self.topics.name else ""

    def create_outputs(self, node) -> list:
        """Plain publishers, not lifecycle ones: a lifecycle publisher drops what is
        published while inactive, and the answers to events pending at deactivation go out
        then. The debug image (for rviz2 / Foxglove) only costs while subscribed."""
        out = self.topics.output
        self.verdict_pub = node.create_publisher(Bool, out("grasp_success"), ANSWER_DEPTH)
        self.result_pub = node.create_publisher(GraspVerdict, out("grasp_success/result"),
                                                ANSWER_DEPTH)
        self.debug_pub = node.create_publisher(Image, out("grasp_success/debug_image"),
                                               DEBUG_IMAGE_QOS)
        return [self.verdict_pub, self.result_pub, self.debug_pub]

    def create_inputs(self, node, transport: str, trigger_type: str, on_image,
                      on_trigger) -> list:
        """The image and trigger subscriptions; their QoS can be overridden by parameters
        (``qos_overrides.<topic>.subscription.reliability`` etc.)."""
        overridable = QoSOverridingOptions.with_default_policies()
        image_type, topic = Image, self.topics.image_topic
        if transport == "compressed":
            image_type, topic = CompressedImage, f"{topic}/compressed"
        # rclpy writes the overrides into the profile it is given: never a shared one
        return [
            node.create_subscription(image_type, topic, on_image,
                                     copy.copy(qos_profile_sensor_data),
                                     callback_group=self.image_group,
                                     qos_overriding_options=overridable),
            node.create_subscription(trigger_class(trigger_type), self.topics.trigger_topic,
                                     on_trigger, copy.copy(TRIGGER_QOS),
                                     callback_group=self.trigger_group,
                                     qos_overriding_options=overridable),
        ]

    def publish(self, message: GraspVerdict, record: GraspRecord, logger) -> None:
        """The answer: Bool for simple listeners (verdicts only), the typed record always,
        and its line in the log (failures throttled)."""
        where = f"{self.label}event {record.event_id}"
        if record.ok:
            self.verdict_pub.publish(Bool(data=bool(record.verdict)))
            logger.info(f"{where}: {'SUCCESS' if record.verdict else 'FAILURE'} (confidence "
                        f"{record.confidence:.3f}, {record.latency_ms:.0f} ms)")
        else:
            logger.warning(f"{where}: no verdict: {record.error}",
                           throttle_duration_sec=LOG_THROTTLE_S)
        self.result_pub.publish(message)

    def publish_debug_image(self, record: GraspRecord, frames: Sequence[Frame]) -> None:
        """The last judged frame with the verdict, P(success) and the band drawn on it,
        stamped like the frame. Decoded again: it costs only while someone subscribes."""
        if not frames or not record.frame_stamps or not self.debug_pub.get_subscription_count():
            return
        frame = frames[-1]
        try:
            rgb = to_rgb(frame.msg)
        except GraspSuccessError:  # the record already says bad_image
            return
        drawn = annotate(rgb, record.verdict, record.p_success, record.threshold,
                         record.threshold_failure)
        image = Image(**rgb_to_image_fields(drawn, "rgb8"))
        image.header = frame.msg.header
        self.debug_pub.publish(image)
