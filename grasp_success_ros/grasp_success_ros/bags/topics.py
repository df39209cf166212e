"""What the bag reader and writer agree on: the node's topic names (resolved in the root
namespace), its default trigger type, and the ROS 2 Jazzy message definitions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from grasp_success_ros.core.hand_card import HandCard
from grasp_success_ros.core.hands import HandProfile

DEFAULT_IMAGE_TOPIC = "/camera/image_raw"
DEFAULT_TRIGGER_TOPIC = "/grasp_completed"
DEFAULT_LABEL_TOPIC = "/grasp_success/ground_truth"
DEFAULT_RELEASE_TOPIC = "/grasp_released"  # the hand opened (same type as the trigger)
# Ground truth beside the success label (synthetic sessions): each grasp's scene kind
# (std_msgs/String) and each carry slip's onset (std_msgs/Header, its stamp).
KIND_LABEL, SLIP_LABEL = "label_kind", "label_slip"
JOINT_STATE_MSGTYPE = "sensor_msgs/msg/JointState"
COMMAND_MSGTYPES = {"joint_state": JOINT_STATE_MSGTYPE,
                    "float64_multi_array": "std_msgs/msg/Float64MultiArray"}
TACTILE_MSGTYPE = "std_msgs/msg/Float32MultiArray"


def beside(label_topic: str, name: str) -> str:
    """A ground-truth topic in the success label's namespace (``/ns/grasp_success/NAME``)."""
    return f"{label_topic.rsplit('/', 1)[0]}/{name}"


def absolute(topic: str, namespace: str = "") -> str:
    """``topic`` as a bag records it, under ``namespace`` when relative."""
    if topic.startswith("/"):
        return topic
    return f"/{namespace.strip('/')}/{topic}" if namespace.strip("/") else f"/{topic}"


@dataclass(frozen=True)
class HandTopics:
    """A camera's hand in a bag: its profile and the topics of its joint states, commands
    (none: "") and tactile pads (none: ""); ``card``: the hand card that judges its joints
    and fuses them (None: the profile's rule and the default fusion), as the node's
    ``hand_model``."""

    profile: HandProfile
    joint_states: str
    command: str = ""
    tactile: str = ""
    card: HandCard | None = None

    @classmethod
    def of(cls, profile: HandProfile, namespace: str = "",
           joint_states: str = "") -> HandTopics:
        """The profile's own topics (under ``namespace`` where relative);
        ``joint_states`` overrides the profile's."""
        return cls(profile, absolute(joint_states or profile.joint_states_topic, namespace),
                   absolute(profile.command_topic, namespace) if profile.command_topic else "",
                   absolute(profile.tactile_topic, namespace) if profile.tactile_topic else "")

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(t for t in (self.joint_states, self.command, self.tactile) if t)


@dataclass(frozen=True)
class BagTopics:
    """Where to find things in a bag; the defaults are the node's topics and trigger type."""

    image: str = DEFAULT_IMAGE_TOPIC
    trigger: str = DEFAULT_TRIGGER_TOPIC
    label: str = DEFAULT_LABEL_TOPIC
    trigger_type: str = "empty"
    hand: HandTopics | None = None  # the camera's hand (None: judged by vision alone)
    release: str = DEFAULT_RELEASE_TOPIC  # the release events the hold watch ends holds on


# One bag's cameras: {camera name: its topics} ("" names the single camera).
CameraTopicsMap = Mapping[str, BagTopics]


def by_camera(topics: BagTopics | CameraTopicsMap | None) -> dict[str, BagTopics]:
    """{camera name: topics}; one :class:`BagTopics` (or None: the node's) is the single
    camera, named ""."""
    if topics is None or isinstance(topics, BagTopics):
        return {"": topics or BagTopics()}
    return dict(topics)


def typestore():
    """The ROS 2 Jazzy message definitions (rosbags), shared by the bag tools."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)
