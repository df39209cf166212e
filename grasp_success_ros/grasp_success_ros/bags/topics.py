"""What the bag reader and writer agree on: the node's topic names (resolved in the root
namespace), its default trigger type, and the ROS 2 Jazzy message definitions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_IMAGE_TOPIC = "/camera/image_raw"
DEFAULT_TRIGGER_TOPIC = "/grasp_completed"
DEFAULT_LABEL_TOPIC = "/grasp_success/ground_truth"


@dataclass(frozen=True)
class BagTopics:
    """Where to find things in a bag; the defaults are the node's topics and trigger type."""

    image: str = DEFAULT_IMAGE_TOPIC
    trigger: str = DEFAULT_TRIGGER_TOPIC
    label: str = DEFAULT_LABEL_TOPIC
    trigger_type: str = "empty"


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
