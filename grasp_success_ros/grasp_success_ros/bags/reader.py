"""Reading rosbag2 recordings (sqlite3 and mcap, as ``ros2 bag record`` writes them from Humble
on) without a ROS install: frames, grasp events and ground-truth labels, with a clear
:class:`BagError` for every way a bag can be unusable.

Times follow the live node exactly (``triggers.py``): a frame's time is its header stamp
(its receive time when zero), an Empty/Bool/String trigger's time is its receive time, which
in a bag is the message's log time, and a Header trigger's time is its stamp.

Reading is two passes so long recordings do not fill memory: the first keeps only stamps,
events and labels; the second loads the raw bytes of the frames that events actually use.

Messages are read by the connections the storage files themselves hold, not by those that
metadata.yaml describes: rosbag2 often writes QoS profiles into metadata.yaml that differ from
the storage's (its own test bags do), and rosbags' directory reader then matches no connection
and yields nothing. A full read that yields fewer messages than the bag lists is a BagError.

Type names are taken as rosbag2 takes them: the short form ``pkg/Type`` that older recorders
wrote (rosbag2's own ``test_bag_for_seek``) is ``pkg/msg/Type`` (:func:`full_msgtype`, the
one place every tool gets a bag's type names from). Only CDR, rosbag2's default serialization
format, is read: a bag that names another is refused as such, not as a damaged recording.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from grasp_success_ros.bags.topics import (
    COMMAND_MSGTYPES,
    JOINT_STATE_MSGTYPE,
    KIND_LABEL,
    SLIP_LABEL,
    TACTILE_MSGTYPE,
    BagTopics,
    beside,
    typestore,
)
from grasp_success_ros.core.errors import BagError, ImageConversionError
from grasp_success_ros.core.joints import JointSample, JointTimeline, joint_sample
from grasp_success_ros.core.stamps import ns_to_s, to_ns
from grasp_success_ros.core.triggers import (
    TRIGGER_MSGTYPES,
    frame_stamp,
    frame_time,
    trigger_info,
)

IMAGE_MSGTYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
LABEL_MSGTYPE = "std_msgs/msg/Bool"
STORAGE_SUFFIXES = (".db3", ".mcap")
SERIALIZATION_FORMAT = "cdr"
REPAIR_HINT = ("the recording may be truncated or corrupt (a recording that was cut off can "
               "often be repaired with `ros2 bag reindex`)")


@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str
    count: int


def full_msgtype(msgtype: str) -> str:
    """A type name as rosbag2 resolves it: ``pkg/Type`` (the short form older recorders
    wrote) is ``pkg/msg/Type``; full names (``pkg/msg/T``, ``pkg/srv/T_Event``) stay."""
    pkg, sep, name = msgtype.partition("/")
    return f"{pkg}/msg/{name}" if sep and pkg and name and "/" not in name else msgtype


def _foreign_formats(topics: Iterable[tuple[str, str]]) -> list[str]:
    """"topic ('format')" for every topic not serialized as CDR."""
    return [f"{topic} ({fmt!r})" for topic, fmt in topics if fmt != SERIALIZATION_FORMAT]


def _format_error(path: Path, foreign: list[str]) -> BagError:
    return BagError(f"bag {path}: unknown serialization format on {', '.join(foreign)}; the "
                    f"bag tools read only {SERIALIZATION_FORMAT!r}, the format "
                    f"`ros2 bag record` writes by default (the recording is not damaged)")


def _listed_formats(path: Path) -> list[str]:
    """The non-CDR topics metadata.yaml lists (rosbags refuses such a folder while opening
    it; this names them). Empty when the metadata cannot be read: the opening error stands."""
    from ruamel.yaml import YAML, YAMLError  # rosbags' own YAML reader (its dependency)

    try:
        info = YAML(typ="safe").load((path / "metadata.yaml").read_text())
        listed = info["rosbag2_bagfile_information"]["topics_with_message_count"]
        return _foreign_formats((t["topic_metadata"]["name"],
                                 t["topic_metadata"]["serialization_format"]) for t in listed)
    except (OSError, YAMLError, KeyError, TypeError):  # the reader's own message says so
        return []


def _unreadable(path: Path, exc: BaseException) -> BagError:
    if path.is_dir() and (foreign := _listed_formats(path)):
        return _format_error(path, foreign)
    detail = str(exc).strip() or type(exc).__name__
    return BagError(f"cannot read bag {path}: {detail}; {REPAIR_HINT}")


class Bag:
    """An open rosbag2 recording (a bag folder, or a single .db3/.mcap file)."""

    def __init__(self, path: str | Path) -> None:
        from rosbags.rosbag2 import Reader

        self.path = Path(path)
        self.name = self.path.stem if self.path.is_file() else self.path.name
        target = self._storage_path(self.path)
        try:
            self._reader = Reader(target)
            self._reader.open()
        except BagError:
            raise
        except Exception as exc:  # rosbags, sqlite (apsw), mcap and OS errors alike
            raise _unreadable(self.path, exc) from None
        self.typestore = typestore()
        self.unregistered: dict[str, str] = {}  # msgtype -> why its definition was refused
        self._stored = _stored_connections(self._reader)
        foreign = _foreign_formats((c.topic, c.ext.serialization_format) for c in self._stored)
        if foreign:  # a lone storage file: rosbags opens it whatever its format
            self.close()
            raise _format_error(self.path, foreign)
        self._register_bag_types()

    @staticmethod
    def _storage_path(path: Path) -> Path:
        if not path.exists():
            raise BagError(f"no bag at {path}")
        if path.is_file():
            if path.name == "metadata.yaml":
                return path.parent
            if path.suffix not in STORAGE_SUFFIXES:
                raise BagError(f"{path} is not a rosbag2 bag (a folder with metadata.yaml, or a "
                               f".db3 or .mcap file)")
            return path
        if (path / "metadata.yaml").is_file():
            return path
        files = sorted(p for p in path.iterdir() if p.suffix in STORAGE_SUFFIXES)
        if len(files) == 1:  # a recording whose metadata.yaml was never written
            return files[0]
        if not files:
            raise BagError(f"{path} is not a rosbag2 bag: it has no metadata.yaml and no .db3 "
                           f"or .mcap file")
        raise BagError(f"{path} has no metadata.yaml and {len(files)} storage files; run "
                       f"`ros2 bag reindex {path}` or pass one of the files")

    def _register_bag_types(self) -> None:
        """Types the bag defines that Jazzy's store lacks (custom messages on other topics).
        A definition that cannot be parsed or contradicts Jazzy's is noted, not fatal: only
        the types a tool needs are checked, by :meth:`require`, which then says why."""
        from rosbags.typesys import get_types_from_idl, get_types_from_msg
        from rosbags.typesys.base import TypesysError

        for conn in self._reader.connections:
            fmt = getattr(conn.msgdef.format, "name", "")
            # an empty .msg definition is a message without fields (test_msgs/Empty)
            msgtype = full_msgtype(conn.msgtype)
            if msgtype in self.typestore.types or not (conn.msgdef.data or fmt == "MSG"):
                continue
            try:
                types = get_types_from_idl(conn.msgdef.data) if fmt == "IDL" else \
                    get_types_from_msg(conn.msgdef.data, msgtype)
                self.typestore.register(types)
            except TypesysError as exc:  # rosbags' error for bad and conflicting definitions
                self.unregistered[msgtype] = " ".join(str(exc).split()) or "TypesysError"

    def __enter__(self) -> Bag:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the recording; closing it again does nothing."""
        if self._reader.is_open:
            self._reader.close()

    @property
    def topics(self) -> dict[str, TopicInfo]:
        out: dict[str, TopicInfo] = {}
        for conn in self._reader.connections:
            prev = out.get(conn.topic)
            count = conn.msgcount + (prev.count if prev else 0)
            out[conn.topic] = TopicInfo(conn.topic, full_msgtype(conn.msgtype), count)
        return out

    @property
    def message_count(self) -> int:
        return sum(t.count for t in self.topics.values())

    def describe_topics(self) -> str:
        topics = sorted(self.topics.values(), key=lambda t: t.name)
        if not topics:
            return "it has no topics"
        return "it has " + ", ".join(f"{t.name} ({t.msgtype}, {t.count} messages)"
                                     for t in topics)

    def require(self, topic: str, allowed: Sequence[str], what: str, option: str) -> TopicInfo:
        """The topic's info, or a BagError naming the topics the bag does have."""
        info = self.topics.get(topic)
        if info is None:
            raise BagError(f"bag {self.path}: no {what} topic {topic!r} ({option}); "
                           f"{self.describe_topics()}")
        if info.msgtype not in allowed:
            raise BagError(f"bag {self.path}: {what} topic {topic} carries {info.msgtype}, "
                           f"expected {' or '.join(allowed)}")
        if info.msgtype in self.unregistered:
            raise BagError(f"bag {self.path}: message type {info.msgtype} on {topic} could not "
                           f"be registered: {self.unregistered[info.msgtype]}")
        if info.msgtype not in self.typestore.types:
            raise BagError(f"bag {self.path}: unknown message type {info.msgtype} on {topic}")
        return info

    def messages(self, topics: Collection[str]) -> Iterator[tuple[str, str, int, bytes]]:
        """(topic, msgtype, log time ns, raw CDR) in log-time order (file by file in a split
        bag, as rosbag2 writes them); read errors -> BagError, and so is a full read that
        yields fewer messages on a topic than the bag lists."""
        conns = [c for c in self._stored if c.topic in topics]
        if not conns:
            return
        read = dict.fromkeys((c.topic for c in conns), 0)
        try:
            for conn, log_ns, raw in self._reader.messages(connections=conns):
                read[conn.topic] += 1
                yield conn.topic, full_msgtype(conn.msgtype), log_ns, raw
        except BagError:
            raise
        except Exception as exc:
            raise _unreadable(self.path, exc) from None
        self._check_counts(read)

    def _check_counts(self, read: dict[str, int]) -> None:
        listed = self.topics
        short = [f"{n} of the {listed[t].count} messages on {t}" for t, n in sorted(read.items())
                 if n < listed[t].count]
        if short:
            raise BagError(f"bag {self.path}: read only {', '.join(short)} that it lists; "
                           f"{REPAIR_HINT}")

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        if msgtype not in self.typestore.types:
            why = self.unregistered.get(msgtype, "the bag carries no definition of it")
            raise BagError(f"bag {self.path}: message type {msgtype} is unknown here: {why}")
        try:
            return self.typestore.deserialize_cdr(raw, msgtype)
        except Exception as exc:
            raise BagError(f"bag {self.path}: a {msgtype} message cannot be deserialised "
                           f"({exc})") from None


def _stored_connections(reader) -> list:
    """The connections to read messages by: the storage files' own, for the topics (and
    types) the bag lists.

    rosbags' directory reader yields a message only for a connection equal to its storage's,
    QoS profiles included, and builds its public ``connections`` from metadata.yaml. The
    storage files' connections are on the opened storage readers (``storages``: in the
    metadata's file order, already decompressed for file-compressed bags); rosbags has no
    public accessor for them, and opening the files again would decompress such bags twice.
    Passed back to the directory reader's public ``messages``, they keep its handling of split
    and compressed bags. A single .db3/.mcap file has only its storage's connections. Should
    a rosbags release drop ``storages``, the metadata's connections are used and the count
    check in :meth:`Bag.messages` reports any loss.
    """
    storages = getattr(reader.storage, "storages", None)
    if storages is None:
        return list(reader.connections)
    listed = {(c.topic, full_msgtype(c.msgtype)) for c in reader.connections}
    return [c for s in storages for c in s.connections
            if (c.topic, full_msgtype(c.msgtype)) in listed]


def open_bag(path: str | Path) -> Bag:
    bag = Bag(path)
    if bag.message_count == 0:
        topics = bag.describe_topics()
        bag.close()
        raise BagError(f"bag {path} is empty: no messages ({topics})")
    return bag


# ------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class FrameRef:
    """A frame by its stamp and its position among the image messages (for pass two)."""

    stamp: float
    log_ns: int
    index: int


@dataclass(frozen=True)
class BagEvent:
    """One trigger message: the node's event id/time for it, and its ground truth."""

    event_id: int
    stamp: float
    log_ns: int
    trigger: str
    rejection: tuple[str, str] | None = None
    label: bool | None = None
    grasp_id: str = ""  # the trigger's grasp id (core/triggers.trigger_info)
    scene: str = ""  # the grasp's scene kind (a synthetic session's label_kind), "" unknown
    slip_s: float | None = None  # a carry slip's onset (label_slip's stamp), None: none


@dataclass
class Session:
    """Pass one of a bag: frame stamps (sorted), events in order, labels."""

    bag: Bag
    topics: BagTopics
    image_msgtype: str
    frames: list[FrameRef] = field(default_factory=list)
    events: list[BagEvent] = field(default_factory=list)
    labels: list[tuple[int, bool]] = field(default_factory=list)

    @property
    def has_label_topic(self) -> bool:
        return self.topics.label in self.bag.topics


def _header_stamp_from_cdr(raw: bytes) -> tuple[int, int] | None:
    """(sec, nanosec) of the header that starts an Image/CompressedImage, without decoding
    the pixels; None for encodings other than plain CDR."""
    if len(raw) < 12 or raw[0] != 0 or raw[1] not in (0, 1):
        return None
    return struct.unpack("<iI" if raw[1] == 1 else ">iI", bytes(raw[4:12]))


def read_session(bag: Bag, topics: BagTopics) -> Session:
    """Pass one: frames' stamps, events (with the node's event times) and labels."""
    if topics.trigger_type not in TRIGGER_MSGTYPES:
        raise BagError(f"trigger type must be one of {tuple(TRIGGER_MSGTYPES)}")
    missing = [f"{what} topic {name!r} ({option})" for what, name, option in
               (("image", topics.image, "--image-topic"),
                ("trigger", topics.trigger, "--trigger-topic")) if name not in bag.topics]
    if missing:
        raise BagError(f"bag {bag.path}: no {' and no '.join(missing)}; "
                       f"{bag.describe_topics()}")
    image = bag.require(topics.image, IMAGE_MSGTYPES, "image", "--image-topic")
    want = TRIGGER_MSGTYPES[topics.trigger_type]
    trigger = bag.topics.get(topics.trigger)
    if trigger is not None and trigger.msgtype != want:
        hint = next((k for k, v in TRIGGER_MSGTYPES.items() if v == trigger.msgtype), None)
        raise BagError(f"bag {bag.path}: trigger topic {topics.trigger} carries "
                       f"{trigger.msgtype}, but trigger type {topics.trigger_type!r} expects "
                       f"{want}" + (f"; pass --trigger-type {hint}" if hint else ""))
    bag.require(topics.trigger, (want,), "trigger", "--trigger-topic")
    has_labels = topics.label in bag.topics
    if has_labels:
        bag.require(topics.label, (LABEL_MSGTYPE,), "label", "--label-topic")
    session = Session(bag, topics, image.msgtype)
    wanted = {topics.image, topics.trigger} | ({topics.label} if has_labels else set())
    n_frames = 0
    event_ids = iter(range(1, 1 << 62))
    for topic, msgtype, log_ns, raw in bag.messages(wanted):
        receipt = ns_to_s(log_ns)
        if topic == topics.image:
            parsed = _header_stamp_from_cdr(raw)
            stamp = frame_time(*parsed, receipt) if parsed else \
                frame_stamp(bag.deserialize(raw, msgtype), receipt)
            session.frames.append(FrameRef(stamp, log_ns, n_frames))
            n_frames += 1
        elif topic == topics.trigger:
            info = trigger_info(topics.trigger_type, bag.deserialize(raw, msgtype), receipt)
            session.events.append(BagEvent(next(event_ids), info.stamp, log_ns, info.trigger,
                                           info.rejection, grasp_id=info.grasp_id))
        else:
            session.labels.append((log_ns, bool(bag.deserialize(raw, msgtype).data)))
    session.frames.sort(key=lambda f: f.stamp)  # as the node's buffer snapshot is
    if not session.frames:
        raise BagError(f"bag {bag.path}: the image topic {topics.image} has no messages")
    if has_labels:
        session.events = attach_topic_labels(session.events, session.labels)
    if topics.hand is not None:
        _require_hand(bag, topics)
    session.events = _scene_truth(bag, topics, session.events)
    return session


def _require_hand(bag: Bag, topics: BagTopics) -> None:
    """The hand's topics are there with the profile's types (a BagError naming them)."""
    hand = topics.hand
    option = "--hand-profile / the params file's joint_states_topic"
    bag.require(hand.joint_states, (JOINT_STATE_MSGTYPE,), "joint states", option)
    if hand.command:
        bag.require(hand.command, (COMMAND_MSGTYPES[hand.profile.command_type],), "command",
                    "the hand profile's command topic")
    if hand.tactile:
        bag.require(hand.tactile, (TACTILE_MSGTYPE,), "tactile", "the hand profile's "
                    "tactile topic")


def _scene_truth(bag: Bag, topics: BagTopics, events: list[BagEvent]) -> list[BagEvent]:
    """Each event's scene kind and slip onset, from the labels beside its success label
    (synthetic sessions); the events as they are where the bag has none."""
    kind, slip = beside(topics.label, KIND_LABEL), beside(topics.label, SLIP_LABEL)
    have = {t for t in (kind, slip) if t in bag.topics}
    if not have:
        return events
    found: dict[str, list] = {kind: [], slip: []}
    for topic, msgtype, log_ns, raw in bag.messages(have):
        msg = bag.deserialize(raw, msgtype)
        found[topic].append((log_ns, msg.data if topic == kind else
                             ns_to_s(to_ns(msg.stamp.sec, msg.stamp.nanosec))))
    scenes, slips = (first_after(events, found[t]) for t in (kind, slip))
    return [replace(ev, scene=s or "", slip_s=o) for ev, s, o in zip(events, scenes, slips,
                                                                      strict=True)]


def attach_topic_labels(events: list[BagEvent], labels: list[tuple[int, bool]]
                        ) -> list[BagEvent]:
    """Each event's truth: the first label logged at or after it and before the next event."""
    return [replace(ev, label=label) for ev, label in
            zip(events, first_after(events, labels), strict=True)]


def first_after(events: Sequence[BagEvent], logged: list[tuple[int, Any]]) -> list[Any]:
    """Per event, the first value logged at or after it and before the next event (None:
    none): how a ground-truth topic's messages belong to events."""
    out: list[Any] = []
    logged = sorted(logged, key=lambda x: x[0])
    j = 0
    for k, ev in enumerate(events):
        end = events[k + 1].log_ns if k + 1 < len(events) else None
        while j < len(logged) and logged[j][0] < ev.log_ns:
            j += 1
        value = None
        if j < len(logged) and (end is None or logged[j][0] < end):
            value = logged[j][1]
            j += 1
        out.append(value)
    return out


def load_frames(session: Session, indices: Collection[int]) -> dict[int, bytes]:
    """Pass two: the raw messages of the frames at these positions."""
    want = set(indices)
    out: dict[int, bytes] = {}
    if not want:
        return out
    last = max(want)
    for i, (_, _, _, raw) in enumerate(session.bag.messages({session.topics.image})):
        if i in want:
            out[i] = bytes(raw)
        if i >= last:
            break
    return out


def frame_decoder(session: Session, raws: dict[int, bytes]):
    """decode(FrameRef.index) -> RGB uint8, from the raw messages :func:`load_frames` read."""
    decode = raw_decoder(session)
    return lambda index: decode(raws[index])


# ------------------------------------------------------------------------- timeline


def session_messages(sessions: Sequence[Session], extra: Collection[str] = ()
                     ) -> Iterator[tuple[str, int, bytes]]:
    """The image and trigger messages (and the hands' where a camera has one, and the
    ``extra`` topics: the release events of the hold watch) of one bag's sessions (one per
    camera), raw, in log-time order, in one read: the timeline the grasp service is driven
    with (pass two)."""
    topics = {t for s in sessions for t in (s.topics.image, s.topics.trigger,
                                            *(s.topics.hand.topics if s.topics.hand else ()))}
    topics |= set(extra)
    bags = {id(s.bag) for s in sessions}
    if len(bags) != 1:
        raise ValueError("session_messages reads the sessions of one open bag")
    for topic, _, log_ns, raw in sessions[0].bag.messages(topics):
        yield topic, log_ns, bytes(raw)


def raw_stamp(session: Session, raw: bytes) -> float:
    """An image message's header stamp in seconds (0 when unstamped), from its CDR header
    without decoding the pixels where it can."""
    parsed = _header_stamp_from_cdr(raw)
    if parsed is None:
        stamp = session.bag.deserialize(raw, session.image_msgtype).header.stamp
        parsed = (stamp.sec, stamp.nanosec)
    return ns_to_s(to_ns(*parsed))


def raw_decoder(session: Session):
    """decode(raw image message) -> RGB uint8; undecodable frames raise
    ImageConversionError (which the shared judge turns into a ``bad_image`` record)."""
    from grasp_success_ros.data.image_conversion import to_rgb

    def decode(raw: bytes):
        try:
            msg = session.bag.typestore.deserialize_cdr(raw, session.image_msgtype)
        except Exception as exc:
            raise ImageConversionError(f"cannot deserialise the image message: {exc}") from None
        return to_rgb(msg)

    return decode


# ------------------------------------------------------------------------- the hand


@dataclass(frozen=True)
class HandReading:
    """A hand message as its timeline takes it: a joint state, or a command's positions or
    the pads' readings (profile order) at ``stamp``."""

    kind: str  # "state", "command" or "tactile"
    stamp: float
    sample: JointSample | None = None
    values: Any = None

    def into(self, timeline: JointTimeline) -> None:
        """Add this reading to a hand's timeline."""
        if self.kind == "state":
            timeline.state(self.sample)
        elif self.kind == "command":
            timeline.command(self.stamp, self.values)
        else:
            timeline.tactile(self.stamp, self.values)


def hand_reading(session: Session, topic: str, raw: bytes, log_ns: int) -> HandReading:
    """One raw message of the session's hand topics, decoded; stamped by its header (its
    log time when unstamped or headerless), as the node stamps them."""
    hand, bag = session.topics.hand, session.bag
    receipt = ns_to_s(log_ns)
    msgtype = bag.topics[topic].msgtype
    msg = bag.deserialize(raw, msgtype)
    if topic == hand.tactile:
        return HandReading("tactile", receipt, values=list(msg.data))
    header = getattr(msg, "header", None)
    stamp = frame_time(header.stamp.sec, header.stamp.nanosec, receipt) if header else receipt
    profile = hand.profile
    if topic == hand.joint_states:
        return HandReading("state", stamp, joint_sample(profile, stamp, msg.name, msg.position,
                                                        msg.velocity, msg.effort))
    values = profile.reorder(msg.name, msg.position) if msgtype == JOINT_STATE_MSGTYPE \
        else profile.in_order(msg.data)
    return HandReading("command", stamp, values=values)
