"""bag-eval's node parameters: the policy options (the node's names and defaults), the node's
params file (``--params-file``) with the cameras it lists, merged as one: an option given on
the command line beats the file, the file beats the node's defaults, and the result is
validated by the node's own table (``core/params.NodeConfig``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from grasp_success_ros.bags.node_params import (
    NodeParams,
    camera_topics,
    read_node_params,
    resolve,
)
from grasp_success_ros.bags.topics import DEFAULT_LABEL_TOPIC, BagTopics, HandTopics
from grasp_success_ros.core.errors import ConfigError
from grasp_success_ros.core.params import PARAMS, CameraTopics, NodeConfig

if TYPE_CHECKING:  # bag-eval's engine, imported when it runs (the CLI starts light)
    from grasp_success_ros.bags.evaluate import ServiceSettings

SPECS = {p.name: p for p in PARAMS}
# bag-eval's options that are node parameters: default None, so that one given on the
# command line is told from one left to the params file (or the node's default).
POLICY_OPTIONS = {
    "frame_selection": str, "n_frames": int, "combine": str, "settle_s": float,
    "deadline_s": float, "max_frame_age_s": float, "frame_stamp": str,
    "clock_tolerance_s": float, "threshold": float, "threshold_failure": float,
    "hand_profile": str,
}
# The hand card and the watch over the hold: node parameters too, the same merge.
HAND_OPTIONS = {"hand_model": str, "hold_watch": bool, "hold_camera_every": int,
                "hold_timeout_s": float}
POLICY_HELP = {
    "frame_stamp": "header: frames timed by their stamps, and an event judged with a frame "
                   "stamped after it was logged by more than --clock-tolerance-s gets "
                   "clock_skew; arrival: by their log times",
    "threshold": "negative: the model card's threshold (and threshold_failure)",
    "threshold_failure": "failure at or below it, no verdict (uncertain) up to --threshold; "
                         "needs --threshold; negative: one threshold, or the card's pair",
    "hand_profile": "the hand beside the camera (allegro_v4, allegro_v5, robotiq_2f85 or a "
                    "YAML path): its joint states (and commands, tactile) in the bags judge "
                    "beside the camera, and the report puts vision, joints and fused side by "
                    "side; with --params-file, each camera's cameras.NAME.hand_profile",
    "hand_model": "a hand card (train-hand) for the hand profile: its trained joint model "
                  "and fitted fusion judge instead of the profile's rule and the default "
                  "fusion",
    "hold_watch": "after a SUCCESS, watch the hold until the release event (the release "
                  "topic, /grasp_released or cameras.NAME.release_topic) or "
                  "--hold-timeout-s, as the node does; the report gets the holds against "
                  "the bag's slip labels",
    "hold_camera_every": "during a hold, judge every n-th camera frame (0: the joints only)",
    "hold_timeout_s": "a hold with no release event ends TIMEOUT after this",
}
EXPLICIT = (*POLICY_OPTIONS, *HAND_OPTIONS, "trigger_type")


def node_default(name: str, text: str = "") -> str:
    """Help text ending in the node's default for parameter ``name`` (the option's own
    default is None: see :data:`POLICY_OPTIONS`)."""
    return f"{text}{' ' if text else ''}(default: {SPECS[name].default})"


def add_policy_options(p: argparse.ArgumentParser) -> None:
    """The decision policy's options and ``--params-file``."""
    g = p.add_argument_group("decision policy (the node's parameters and defaults)")
    g.add_argument("--params-file", default=None, metavar="FILE",
                   help="the node's ROS 2 parameters file (grasp_success_node or /** "
                   "ros__parameters): its policy, trigger_type, image_transport, streaming, "
                   "buffer_size and cameras apply here too; an option given here beats it")
    for name, kind in POLICY_OPTIONS.items():
        spec = SPECS[name]
        g.add_argument("--" + name.replace("_", "-"), dest=name, default=None,
                       type=kind, choices=spec.choices or None,
                       help=node_default(name, POLICY_HELP.get(name, "")))
    g = p.add_argument_group("the hand card and the watch over the hold (the node's "
                             "parameters)")
    for name, kind in HAND_OPTIONS.items():
        how = {"action": argparse.BooleanOptionalAction} if kind is bool else {"type": kind}
        g.add_argument("--" + name.replace("_", "-"), dest=name, default=None,
                       help=node_default(name, POLICY_HELP.get(name, "")), **how)


@dataclass(frozen=True)
class EvalSetup:
    """What bag-eval judges with: the node's parameters, the bags' cameras (one camera's
    topics, or {name: topics} for several) and the service's settings."""

    config: NodeConfig
    topics: BagTopics | dict[str, BagTopics]
    settings: ServiceSettings


def eval_setup(args: argparse.Namespace) -> EvalSetup:
    """The options merged over the params file (ConfigError, one line, for either)."""
    from grasp_success_ros.bags.evaluate import ServiceSettings

    node = read_node_params(args.params_file) if args.params_file else None
    file_values = _checked(node, args.model) if node else {}
    explicit = {name: getattr(args, name) for name in EXPLICIT
                if getattr(args, name) is not None}
    config = NodeConfig.from_values({**file_values, **explicit, "model_path": args.model})
    cameras = node.cameras if node and node.cameras else (CameraTopics(""),)
    topics = _topics(args, config, cameras)
    hands = topics.values() if isinstance(topics, dict) else [topics]
    if config.hand_model and not any(t.hand for t in hands):
        raise ConfigError(f"hand_model {config.hand_model} needs a hand_profile")
    return EvalSetup(config, topics,
                     ServiceSettings(config.buffer_size, config.streaming, config.hold))


def _checked(node: NodeParams, model: str) -> dict:
    """The file's values, refused (naming the file) where the node would refuse them."""
    try:
        NodeConfig.from_values({**node.values, "model_path": model})
    except ConfigError as exc:
        raise ConfigError(f"params file {node.path}: {exc}") from None
    return node.values


def _topics(args: argparse.Namespace, config: NodeConfig,
            cameras: tuple[CameraTopics, ...]) -> BagTopics | dict[str, BagTopics]:
    """Each camera's topics in the bags; the topic options beat the file's for one camera,
    and name no camera of several."""
    label = args.label_topic or DEFAULT_LABEL_TOPIC
    if len(cameras) > 1:
        given = [option for option, value in (("--image-topic", args.image_topic),
                                              ("--trigger-topic", args.trigger_topic)) if value]
        if given:
            raise ConfigError(f"{' and '.join(given)} would name one camera's topic of "
                              f"{len(cameras)}; set cameras.NAME.image_topic and "
                              f".trigger_topic in the params file")
        if args.labels:
            from grasp_success_ros.bags.labels import MULTI_CAMERA_CSV

            raise ConfigError(f"--labels: {MULTI_CAMERA_CSV}")
        return {c.name: _with_hand(camera_topics(c, config.trigger_type,
                                                 config.image_transport, label), c, config)
                for c in cameras}
    one = camera_topics(cameras[0], config.trigger_type, config.image_transport, label)
    return _with_hand(replace(one, image=args.image_topic or one.image,
                              trigger=args.trigger_topic or one.trigger), cameras[0], config)


def _with_hand(topics: BagTopics, camera: CameraTopics, config: NodeConfig) -> BagTopics:
    """The camera's hand, as the node takes it: cameras.NAME.hand_profile, else the node's
    hand_profile ("none" or empty: vision only), its joint states on
    cameras.NAME.joint_states_topic, else the profile's topics under NAME; judged by the
    hand_model card where one is given (refused, one line, when it is for another hand)."""
    name = camera.hand_profile or config.hand_profile
    if not name or name == "none":
        return topics
    from grasp_success_ros.core.evidence import hand_witness
    from grasp_success_ros.data.hand_cards import load_hand_card
    from grasp_success_ros.data.hand_profiles import load_profile

    profile = load_profile(name)
    card = load_hand_card(config.hand_model) if config.hand_model else None
    hand_witness(profile, card)  # the node's check: a card for another hand is refused
    hand = HandTopics.of(profile, camera.name,
                         resolve(camera.joint_states_topic) if camera.joint_states_topic
                         else "")
    return replace(topics, hand=replace(hand, card=card))
