"""Synthetic grasp sessions as rosbag2 recordings (sqlite3 or mcap), for tests and the demo.

A session is what ``ros2 bag record`` would have captured beside the node: the hand camera
(``sensor_msgs/Image`` rgb8, 30 Hz, header stamps = receive times), one trigger message per
grasp on the trigger topic, and the ground truth (``std_msgs/Bool``) right after each trigger.
Written with rosbags and the ROS 2 Jazzy type definitions (metadata version 9 by default).

Triggers are placed half a frame before the first frame of the grasp's outcome window (the
synthetic stream's event time), i.e. between two frames, as a real trigger falls; the frame
the policy picks is then the same whether the event time is the recorded receive time
(``bag-eval``) or a live node's receipt time on a replayed ``/clock`` that lags by less than
half a frame.

With a hand profile (``write_session(hand_profile=...)``, ``synth --bag --hand-profile``) the
session also carries the hand (``data/hand_synth.py``): ``sensor_msgs/JointState`` at 100 Hz
on the profile's topic (header stamps = log times), its commands (JointState or
``std_msgs/Float64MultiArray``) and tactile pads (``std_msgs/Float32MultiArray``) where the
profile has them, a release trigger per grasp, and beside the success label each grasp's
scene kind (``std_msgs/String``) and each carry slip's onset (``std_msgs/Header``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grasp_success_ros.bags.topics import (
    COMMAND_MSGTYPES,
    DEFAULT_IMAGE_TOPIC,
    DEFAULT_LABEL_TOPIC,
    DEFAULT_RELEASE_TOPIC,
    DEFAULT_TRIGGER_TOPIC,
    JOINT_STATE_MSGTYPE,
    KIND_LABEL,
    SLIP_LABEL,
    TACTILE_MSGTYPE,
    HandTopics,
    beside,
    typestore,
)
from grasp_success_ros.core.errors import BagError
from grasp_success_ros.core.hands import HandProfile
from grasp_success_ros.core.stamps import NS_PER_S, ns_to_s, s_to_ns, split_ns
from grasp_success_ros.core.triggers import TRIGGER_MSGTYPES

DEFAULT_START_NS = 1_700_000_000 * NS_PER_S
STORAGES = ("sqlite3", "mcap")
COMPRESSIONS = ("none", "message", "file")


@dataclass(frozen=True)
class SessionSummary:
    path: Path
    frames: int
    events: int
    successes: int
    duration_s: float
    joint_states: int = 0


def _time(ts, ns: int):
    sec, nanosec = split_ns(ns)
    return ts.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)


def _header(ts, ns: int, frame_id: str):
    return ts.types["std_msgs/msg/Header"](stamp=_time(ts, ns), frame_id=frame_id)


def image_cdr(ts, rgb: np.ndarray, stamp_ns: int, frame_id: str = "hand_camera") -> bytes:
    """A CDR-serialised sensor_msgs/Image (rgb8) holding ``rgb``."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    msg = ts.types["sensor_msgs/msg/Image"](
        header=_header(ts, stamp_ns, frame_id), height=h, width=w, encoding="rgb8",
        is_bigendian=0, step=w * 3, data=rgb.reshape(-1))
    return bytes(ts.serialize_cdr(msg, "sensor_msgs/msg/Image"))


def trigger_cdr(ts, trigger_type: str, stamp_ns: int, index: int) -> bytes:
    """A CDR-serialised trigger message of the node's ``trigger_type``."""
    msgtype = TRIGGER_MSGTYPES[trigger_type]
    cls = ts.types[msgtype]
    if trigger_type == "header":
        msg = _header(ts, stamp_ns, "grasp_manager")
    elif trigger_type == "bool":
        msg = cls(data=True)
    elif trigger_type == "string":
        msg = cls(data=f"grasp {index}")
    else:
        msg = cls(structure_needs_at_least_one_member=0)
    return bytes(ts.serialize_cdr(msg, msgtype))


def bool_cdr(ts, value: bool) -> bytes:
    return bytes(ts.serialize_cdr(ts.types["std_msgs/msg/Bool"](data=bool(value)),
                                  "std_msgs/msg/Bool"))


def write_session(out: str | Path, n_grasps: int = 10, seed: int = 0, *, fps: float = 30.0,
                  height: int = 120, width: int = 160, storage: str = "sqlite3",
                  trigger_type: str = "empty", version: int = 9,
                  start_ns: int = DEFAULT_START_NS, labels: bool = True,
                  image_topic: str = DEFAULT_IMAGE_TOPIC,
                  trigger_topic: str = DEFAULT_TRIGGER_TOPIC,
                  label_topic: str = DEFAULT_LABEL_TOPIC, compression: str = "none",
                  camera_ahead_s: float = 0.0, hand_profile: HandProfile | str | None = None,
                  **stream_options) -> SessionSummary:
    """Write a synthetic grasp session (``synth.grasp_stream``) as a rosbag2 at ``out``;
    ``camera_ahead_s``: the camera's clock runs this far ahead of the recorder's;
    ``hand_profile`` (a profile, a shipped name or a YAML path): the hand too (module
    docstring), the grasps in ``hand_synth``'s scene kinds."""
    from grasp_success_ros.data.synth import grasp_stream

    if storage not in STORAGES:
        raise BagError(f"storage must be one of {STORAGES}, not {storage!r}")
    if trigger_type not in TRIGGER_MSGTYPES:
        raise BagError(f"trigger type must be one of {tuple(TRIGGER_MSGTYPES)}")
    hand = None
    if hand_profile is not None:
        hand = synthetic_hand(hand_profile, seed, n_grasps, stream_options)
        stream_options = {**stream_options, "plans": hand.plans}
    items = grasp_stream(seed, n_grasps, fps=fps, height=height, width=width, **stream_options)
    camera = CameraStream(items, image_topic, trigger_topic, label_topic, hand)
    return write_cameras(out, [camera], fps=fps, storage=storage, trigger_type=trigger_type,
                         version=version, start_ns=start_ns, labels=labels,
                         compression=compression, camera_ahead_s=camera_ahead_s)


@dataclass(frozen=True)
class HandRecording:
    """A camera's synthetic hand: its messages (``hand_synth.HandItem``), topics and the
    grasps' plans (their scene kinds, for the label)."""

    items: Iterable
    topics: HandTopics
    plans: Sequence
    release_topic: str = DEFAULT_RELEASE_TOPIC


def synthetic_hand(profile: HandProfile | str, seed: int, n_grasps: int,
                   stream_options: dict) -> HandRecording:
    """The hand of ``n_grasps`` synthetic grasps on ``grasp_stream``'s timeline (its
    ``stream_options``: the episode layout and success ratio)."""
    from grasp_success_ros.data.hand_profiles import load_profile
    from grasp_success_ros.data.hand_synth import EpisodeTiming, hand_stream, plan_grasps

    if isinstance(profile, str):
        profile = load_profile(profile)
    timing = EpisodeTiming(**{k: stream_options[o] for k, o in
                              (("approach_s", "approach_s"), ("lead_s", "outcome_lead_s"),
                               ("hold_s", "hold_s")) if o in stream_options})
    plans = plan_grasps(seed, n_grasps, stream_options.get("success_ratio", 0.5), timing)
    return HandRecording(hand_stream(plans, profile, seed, timing), HandTopics.of(profile),
                         plans)


def write_items(out: str | Path, items: Iterable, *, fps: float = 30.0,
                storage: str = "sqlite3", trigger_type: str = "empty", version: int = 9,
                start_ns: int = DEFAULT_START_NS, labels: bool = True,
                image_topic: str = DEFAULT_IMAGE_TOPIC,
                trigger_topic: str = DEFAULT_TRIGGER_TOPIC,
                label_topic: str = DEFAULT_LABEL_TOPIC, compression: str = "none",
                camera_ahead_s: float = 0.0) -> SessionSummary:
    """Write stream items (frames and labelled events) as a rosbag2; ``compression``
    "message" or "file" compresses with zstd as ``ros2 bag record --compression-mode`` does;
    frames are stamped ``camera_ahead_s`` after their log (receive) time (a camera clock
    ahead of the recorder's; 0: stamp = log time)."""
    return write_cameras(out, [CameraStream(items, image_topic, trigger_topic, label_topic)],
                         fps=fps, storage=storage, trigger_type=trigger_type, version=version,
                         start_ns=start_ns, labels=labels, compression=compression,
                         camera_ahead_s=camera_ahead_s)


@dataclass(frozen=True)
class CameraStream:
    """One camera's stream items and the topics they are recorded on."""

    items: Iterable
    image_topic: str = DEFAULT_IMAGE_TOPIC
    trigger_topic: str = DEFAULT_TRIGGER_TOPIC
    label_topic: str = DEFAULT_LABEL_TOPIC
    hand: HandRecording | None = None


def write_cameras(out: str | Path, cameras: Sequence[CameraStream], *, fps: float = 30.0,
                  storage: str = "sqlite3", trigger_type: str = "empty", version: int = 9,
                  start_ns: int = DEFAULT_START_NS, labels: bool = True,
                  compression: str = "none", camera_ahead_s: float = 0.0) -> SessionSummary:
    """Several cameras' streams (each on its own topics) in one rosbag2, as
    :func:`write_items` writes one; the counts are over all cameras."""
    ts = typestore()
    writer = _open_writer(Path(out), storage, version, compression)
    half_frame_ns, ahead_ns = s_to_ns(0.5 / fps), s_to_ns(camera_ahead_s)
    counts = dict.fromkeys(("frame", "event", "success", "joints", "command", "tactile",
                            "release", "slip"), 0)
    last_ns = start_ns
    with writer:
        conns = [_connections(writer, ts, camera, trigger_type, labels) for camera in cameras]
        hands = [_hand_connections(writer, ts, camera, trigger_type, labels)
                 for camera in cameras]
        timeline = sorted(((item.t, k, n, item) for k, camera in enumerate(cameras)
                           for n, item in enumerate(_items(camera))), key=lambda x: x[:3])
        for _, k, _, item in timeline:
            cam, trig, lab = conns[k]
            t_ns = start_ns + s_to_ns(item.t)
            if item.kind == "frame":
                writer.write(cam, t_ns, image_cdr(ts, item.image, t_ns + ahead_ns))
            elif item.kind == "event":
                t_ns = max(start_ns, t_ns - half_frame_ns)
                writer.write(trig, t_ns, trigger_cdr(ts, trigger_type, t_ns, counts["event"]))
                if lab is not None:
                    writer.write(lab, t_ns + 1000, bool_cdr(ts, bool(item.label)))
                    _write_kind(writer, ts, hands[k], cameras[k].hand, item, t_ns + 2000)
                counts["success"] += bool(item.label)
            else:
                _write_hand(writer, ts, hands[k], item, t_ns, trigger_type)
            counts[item.kind] += 1
            last_ns = max(last_ns, t_ns)
    return SessionSummary(Path(out), counts["frame"], counts["event"], counts["success"],
                          ns_to_s(last_ns - start_ns), counts["joints"])


def _items(camera: CameraStream) -> Iterable:
    """The camera's frames and events, then its hand's messages (sorted in with them)."""
    return itertools.chain(camera.items, camera.hand.items if camera.hand else ())


def _hand_connections(writer, ts, camera: CameraStream, trigger_type: str,
                      labels: bool) -> dict:
    """{item kind or "kind" (the scene-kind label): connection} of the camera's hand."""
    hand = camera.hand
    if hand is None:
        return {}
    topics, profile = hand.topics, hand.topics.profile
    wanted = {"joints": (topics.joint_states, JOINT_STATE_MSGTYPE),
              "release": (hand.release_topic, TRIGGER_MSGTYPES[trigger_type])}
    if topics.command:
        wanted["command"] = (topics.command, COMMAND_MSGTYPES[profile.command_type])
    if topics.tactile:
        wanted["tactile"] = (topics.tactile, TACTILE_MSGTYPE)
    if labels:
        wanted["kind"] = (beside(camera.label_topic, KIND_LABEL), "std_msgs/msg/String")
        wanted["slip"] = (beside(camera.label_topic, SLIP_LABEL), "std_msgs/msg/Header")
    out = {kind: writer.add_connection(topic, msgtype, typestore=ts)
           for kind, (topic, msgtype) in wanted.items()}
    out["profile"] = profile
    return out


def _write_kind(writer, ts, conns: dict, hand: HandRecording | None, item, t_ns: int) -> None:
    """The event's grasp's scene kind, beside its success label."""
    if hand is not None and "kind" in conns:
        tag = hand.plans[item.grasp_index].tag
        msg = ts.types["std_msgs/msg/String"](data=tag)
        writer.write(conns["kind"], t_ns, bytes(ts.serialize_cdr(msg, "std_msgs/msg/String")))


def _write_hand(writer, ts, conns: dict, item, t_ns: int, trigger_type: str) -> None:
    """One hand item (``hand_synth.HandItem``) on its topic, stamped ``t_ns``."""
    conn = conns.get(item.kind)
    if conn is None:  # a slip without labels
        return
    if item.kind == "release":
        raw = trigger_cdr(ts, trigger_type, t_ns, item.grasp_index)
    elif item.kind == "slip":
        raw = _cdr(ts, _header(ts, t_ns, f"grasp {item.grasp_index}"), "std_msgs/msg/Header")
    else:
        raw = _cdr(ts, *hand_message(ts, conns["profile"], item, t_ns))
    writer.write(conn, t_ns, raw)


def _cdr(ts, msg, msgtype: str) -> bytes:
    return bytes(ts.serialize_cdr(msg, msgtype))


def hand_message(ts, profile: HandProfile, item, t_ns: int) -> tuple:
    """(message, type) of a joints, command or tactile item in the profile's ROS types."""
    if item.kind == "tactile":
        return _multi_array(ts, TACTILE_MSGTYPE, item.values.astype(np.float32)), \
            TACTILE_MSGTYPE
    if item.kind == "command" and profile.command_type == "float64_multi_array":
        msgtype = COMMAND_MSGTYPES["float64_multi_array"]
        return _multi_array(ts, msgtype, item.values.astype(np.float64)), msgtype
    position = item.values if item.kind == "command" else item.position
    empty = np.zeros(0)
    msg = ts.types[JOINT_STATE_MSGTYPE](
        header=_header(ts, t_ns, "hand"), name=list(profile.joints),
        position=np.asarray(position, np.float64),
        velocity=empty if item.velocity is None else np.asarray(item.velocity, np.float64),
        effort=empty if item.effort is None else np.asarray(item.effort, np.float64))
    return msg, JOINT_STATE_MSGTYPE


def _multi_array(ts, msgtype: str, data: np.ndarray):
    layout = ts.types["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
    return ts.types[msgtype](layout=layout, data=data)


def _open_writer(out: Path, storage: str, version: int, compression: str):
    from rosbags.rosbag2 import (
        CompressionFormat,
        CompressionMode,
        StoragePlugin,
        Writer,
        WriterError,
    )

    if compression not in COMPRESSIONS:
        raise BagError(f"compression must be one of {COMPRESSIONS}, not {compression!r}")
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    try:
        writer = Writer(out, version=version, storage_plugin=plugin)
        if compression != "none":
            writer.set_compression(CompressionMode[compression.upper()], CompressionFormat.ZSTD)
    except WriterError as exc:
        raise BagError(f"cannot write bag {out}: {exc}") from None
    return writer


def _connections(writer, ts, camera: CameraStream, trigger_type: str, labels: bool):
    """(image, trigger, label or None) connections of one camera."""
    cam = writer.add_connection(camera.image_topic, "sensor_msgs/msg/Image", typestore=ts)
    trig = writer.add_connection(camera.trigger_topic, TRIGGER_MSGTYPES[trigger_type],
                                 typestore=ts)
    lab = writer.add_connection(camera.label_topic, "std_msgs/msg/Bool", typestore=ts) \
        if labels else None
    return cam, trig, lab
