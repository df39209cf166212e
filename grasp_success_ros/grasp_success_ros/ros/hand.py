"""One camera's hand (its joints beside its camera), the ROS side: the profile resolved from
the parameters, and the joint-state, command and tactile subscriptions that feed the grasp
service's hand witness (``core/evidence.py``; README, "Hand profiles").

The callbacks only store, on the spinning thread like the camera's frames: a joint state is
reordered into the profile's joint order, stamped on the frames' clock and handed to the
service, which says whether a pass is wanted (an event waits for its joint window); the
worker does the judging.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

from rclpy.qos import qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray, Float64MultiArray

from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.core.evidence import HandWitness, hand_witness
from grasp_success_ros.core.hand_card import HandCard
from grasp_success_ros.core.hands import HandProfile
from grasp_success_ros.core.joints import joint_sample
from grasp_success_ros.core.params import CameraTopics, NodeConfig
from grasp_success_ros.core.stamps import ns_to_s
from grasp_success_ros.core.triggers import frame_time
from grasp_success_ros.data.hand_cards import load_hand_card
from grasp_success_ros.data.hand_profiles import load_profile
from grasp_success_ros.ros.rclpy_compat import InlineCallbackGroup

VISION_ONLY = ("", "none")  # a hand_profile value that means no hand


def under(name: str, topic: str) -> str:
    """A profile's relative ``topic`` under camera ``name`` (absolute ones as they are)."""
    return f"{name}/{topic}" if name and topic and not topic.startswith("/") else topic


class HandChannel:
    """A camera's hand: its profile, topics and witness; its subscriptions while active."""

    def __init__(self, topics: CameraTopics, profile: HandProfile,
                 card: HandCard | None = None) -> None:
        self.profile = profile
        self.witness = hand_witness(profile, card)  # the rule, or the card's model
        self.joint_states_topic = topics.joint_states_topic or under(
            topics.name, profile.joint_states_topic)
        self.command_topic = under(topics.name, profile.command_topic)
        self.tactile_topic = under(topics.name, profile.tactile_topic)
        self.group = InlineCallbackGroup()  # storing a joint state costs less than a hand-off
        self._node = self._service = None
        self._camera = 0
        self._wake: Callable[[], None] = lambda: None

    def create_inputs(self, node, camera: int, wake: Callable[[], None]) -> list:
        """The joint-state subscription, and the command and tactile ones where the profile
        has them; sensor-data QoS (overridable) like the camera's."""
        self._node, self._service, self._camera, self._wake = node, node.service, camera, wake
        subscriptions = [self._subscribe(JointState, self.joint_states_topic, self._on_joints)]
        if self.profile.command_type == "joint_state":
            subscriptions.append(self._subscribe(JointState, self.command_topic,
                                                 self._on_joint_command))
        elif self.profile.command_type == "float64_multi_array":
            subscriptions.append(self._subscribe(Float64MultiArray, self.command_topic,
                                                 self._on_array_command))
        if self.profile.tactile_topic:
            subscriptions.append(self._subscribe(Float32MultiArray, self.tactile_topic,
                                                 self._on_tactile))
        return subscriptions

    def _subscribe(self, msg_type, topic: str, callback):
        # rclpy writes the overrides into the profile it is given: never a shared one
        return self._node.create_subscription(
            msg_type, topic, callback, copy.copy(qos_profile_sensor_data),
            callback_group=self.group,
            qos_overriding_options=QoSOverridingOptions.with_default_policies())

    def _receipt(self) -> float:
        return ns_to_s(self._node.get_clock().now().nanoseconds)

    def _stamp(self, msg) -> float:
        """The message's header stamp (its arrival when unstamped), or its arrival under
        ``frame_stamp: arrival``, as the camera's frames are timed."""
        receipt = self._receipt()
        if self._node.config.frame_stamp == "arrival":
            return receipt
        return frame_time(msg.header.stamp.sec, msg.header.stamp.nanosec, receipt)

    def _on_joints(self, msg: JointState) -> None:
        """Hot path: reorder, stamp, store; wake the worker while an event waits."""
        sample = joint_sample(self.profile, self._stamp(msg), msg.name, msg.position,
                              msg.velocity, msg.effort)
        if self._service.joints(self._camera, sample):
            self._wake()

    def _on_joint_command(self, msg: JointState) -> None:
        self._service.joint_command(self._camera, self._stamp(msg),
                                    self.profile.reorder(msg.name, msg.position))

    def _on_array_command(self, msg: Float64MultiArray) -> None:
        """A controller's command, in its joint order (the profile's); no header: arrival."""
        self._service.joint_command(self._camera, self._receipt(),
                                    self.profile.in_order(msg.data))

    def _on_tactile(self, msg: Float32MultiArray) -> None:
        self._service.tactile(self._camera, self._receipt(), msg.data)


def hand_channels(config: NodeConfig, cameras: Sequence[CameraTopics]
                  ) -> list[HandChannel | None]:
    """Each camera's hand from ``hand_profile`` (``cameras.NAME.hand_profile`` overrides;
    "none": vision only); ConfigError with the reason for a profile that cannot be read."""
    card = load_hand_card(config.hand_model) if config.hand_model else None
    hands: list[HandChannel | None] = []
    for topics in cameras:
        name = (topics.hand_profile or config.hand_profile).strip()
        hands.append(None if name in VISION_ONLY
                     else HandChannel(topics, load_profile(name), card))
    if card is not None and not any(hands):
        raise ConfigError(f"hand_model {config.hand_model} needs a hand_profile")
    return hands


def witnesses(hands: Sequence[HandChannel | None]) -> list[HandWitness | None]:
    """The service's hand witnesses, one per camera (None: vision only)."""
    return [None if hand is None else hand.witness for hand in hands]


def hands_line(hands: Sequence[HandChannel | None]) -> str:
    """What the configure line says of the hands ("" without one)."""
    return "".join(f", hand {hand.profile.hand} on {hand.joint_states_topic}"
                   for hand in hands if hand is not None)
