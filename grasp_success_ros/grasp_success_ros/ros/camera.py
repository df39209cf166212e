"""One camera of ``grasp_success_node`` (one hand): its frames, its pending events, its
streaming scores and its answer publishers. The node holds one per camera (one for today's
single camera) and judges all of them with its one model."""

from __future__ import annotations

import copy

from grasp_success_msgs.msg import GraspVerdict
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Bool

from grasp_success_ros.core.frame_buffer import FrameBuffer
from grasp_success_ros.core.params import CameraTopics
from grasp_success_ros.core.pending import FrameScores, PendingEvents
from grasp_success_ros.ros.messages import trigger_class
from grasp_success_ros.ros.rclpy_compat import InlineCallbackGroup

# Every event must be answered: keep all trigger messages until the callback takes them (a
# depth of 10 lost events of a 100-events-per-second burst while the worker was busy), and
# keep enough answers for a slow reader to catch up.
TRIGGER_QOS = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
ANSWER_DEPTH = 100
# Sensor data published reliable (REP 2003), so both a best-effort subscriber and a reliable
# one (rviz2's displays' default) match it; the newest image only.
DEBUG_IMAGE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                             reliability=ReliabilityPolicy.RELIABLE)


class CameraChannel:
    """A camera's state; the node's callbacks and worker read and write it."""

    def __init__(self, topics: CameraTopics, buffer_size: int) -> None:
        self.topics = topics
        self.buffer = FrameBuffer(buffer_size)
        self.pending = PendingEvents()
        self.scores = FrameScores()  # streaming n_after: frames classified as they arrive
        self.frame_id = ""  # the newest frame's, for answers that judged no frame
        self.verdict_pub = self.result_pub = self.debug_pub = None

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
        """Camera and trigger in groups of their own: in one mutually exclusive group a
        30 Hz camera kept winning the executor's turn and delayed events by seconds. The
        subscriptions' QoS can be overridden by parameters
        (``qos_overrides.<topic>.subscription.reliability`` etc.)."""
        overridable = QoSOverridingOptions.with_default_policies()
        image_type, topic = Image, self.topics.image_topic
        if transport == "compressed":
            image_type, topic = CompressedImage, f"{topic}/compressed"
        # rclpy writes the overrides into the profile it is given: never a shared one
        return [
            node.create_subscription(image_type, topic, lambda m: on_image(self, m),
                                     copy.copy(qos_profile_sensor_data),
                                     callback_group=InlineCallbackGroup(),
                                     qos_overriding_options=overridable),
            node.create_subscription(trigger_class(trigger_type), self.topics.trigger_topic,
                                     lambda m: on_trigger(self, m), copy.copy(TRIGGER_QOS),
                                     callback_group=MutuallyExclusiveCallbackGroup(),
                                     qos_overriding_options=overridable),
        ]
