"""``grasp-success replay``: a bag's messages on live topics at their recorded pace (rclpy).

For machines without rosbag2; on a ROS install ``ros2 bag play`` does the same. Messages go
out as the recorded CDR bytes (no decoding). With ``clock`` it publishes ``/clock`` (the
bag's log time) right before every message and at ``clock_rate`` Hz in between, so a node
with ``use_sim_time`` stamps events on the bag's clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from grasp_success_ros.bags.reader import open_bag
from grasp_success_ros.core.errors import BagError
from grasp_success_ros.core.stamps import ns_to_s, s_to_ns, split_ns
from grasp_success_ros.ros.messages import message_class


def parse_remaps(remaps: Sequence[str]) -> dict[str, str]:
    out = {}
    for r in remaps:
        if ":=" not in r:
            raise BagError(f"--remap wants FROM:=TO, not {r!r}")
        src, dst = r.split(":=", 1)
        out[src] = dst
    return out


@dataclass
class ReplayOptions:
    rate: float = 1.0
    loop: bool = False
    start_offset_s: float = 0.0
    clock: bool = False
    clock_rate_hz: float = 100.0
    topics: Sequence[str] = ()  # empty: every topic
    remaps: dict[str, str] = field(default_factory=dict)
    wait_for: Sequence[str] = ()  # topics (after remapping) that need a subscriber first
    wait_timeout_s: float = 60.0
    delay_s: float = 0.0  # before the first message, like `ros2 bag play --delay`

    def validate(self) -> ReplayOptions:
        if self.rate <= 0 or self.start_offset_s < 0 or self.clock_rate_hz <= 0 \
                or self.delay_s < 0:
            raise BagError("rate and clock rate must be > 0, start offset and delay >= 0")
        return self


class _Clock:
    """Publishes /clock, never going backwards within one pass over the bag."""

    def __init__(self, node, rate_hz: float) -> None:
        from rclpy.qos import QoSProfile
        from rosgraph_msgs.msg import Clock

        self._cls = Clock
        self._pub = node.create_publisher(Clock, "/clock", QoSProfile(depth=10))
        self._period = 1.0 / rate_hz
        self._lock = threading.Lock()
        self._last = -1
        self._origin: tuple[float, int, float] | None = None  # (monotonic, bag ns, rate)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def start_pass(self, wall: float, bag_ns: int, rate: float) -> None:
        with self._lock:
            self._origin, self._last = (wall, bag_ns, rate), -1

    def publish(self, ns: int) -> None:
        with self._lock:
            if ns <= self._last:
                return
            self._last = ns
        msg = self._cls()
        msg.clock.sec, msg.clock.nanosec = split_ns(ns)
        self._pub.publish(msg)

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            origin = self._origin
            if origin is not None:
                wall, bag_ns, rate = origin
                self.publish(bag_ns + s_to_ns((time.monotonic() - wall) * rate))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)


def replay(path, opts: ReplayOptions, log: Callable[[str], None] = print,
           node_name: str = "grasp_success_replay") -> int:
    """Play the bag; returns the number of messages published. Needs rclpy.init() done.

    Topics of types not installed here are skipped and logged. A pass that reads fewer
    messages than the bag lists is a BagError (raised by the bag once the pass is read)."""
    from rclpy.node import Node
    from rclpy.qos import QoSProfile

    opts = opts.validate()
    bag = open_bag(path)
    node = Node(node_name)
    clock = None
    try:
        topics = bag.topics
        chosen = [t for t in topics.values() if not opts.topics or t.name in opts.topics]
        if opts.topics and (unknown := set(opts.topics) - set(topics)):
            raise BagError(f"bag {path}: no topic {', '.join(sorted(unknown))}; "
                           f"{bag.describe_topics()}")
        pubs = {}
        for t in chosen:
            cls = message_class(t.msgtype)
            if cls is None:  # rclpy publishes only types whose generated code is installed
                log(f"skipping {t.name} ({t.count} messages): message type {t.msgtype} is not "
                    f"installed here")
                continue
            pubs[t.name] = node.create_publisher(cls, opts.remaps.get(t.name, t.name),
                                                 QoSProfile(depth=100))
        if not pubs:
            raise BagError(f"bag {path}: nothing to publish; {bag.describe_topics()}")
        clock = _Clock(node, opts.clock_rate_hz) if opts.clock else None
        _wait_for_subscribers(node, pubs, opts)
        time.sleep(opts.delay_s)
        sent = 0
        while True:
            sent += _one_pass(bag, pubs, clock, opts)
            if not opts.loop:
                break
        time.sleep(0.3)  # let the last messages leave before the participant goes away
        return sent
    finally:
        if clock is not None:
            clock.close()
        node.destroy_node()
        bag.close()


def _wait_for_subscribers(node, pubs: dict, opts: ReplayOptions) -> None:
    if not opts.wait_for:
        return
    by_topic = {p.topic_name: p for p in pubs.values()}
    missing = [t for t in opts.wait_for if t not in by_topic]
    if missing:
        raise BagError(f"--wait-for {', '.join(missing)}: not a topic this replay publishes "
                       f"({', '.join(sorted(by_topic))})")
    end = time.monotonic() + opts.wait_timeout_s
    while time.monotonic() < end:
        if all(by_topic[t].get_subscription_count() for t in opts.wait_for):
            time.sleep(0.5)  # discovery of the reverse direction
            return
        time.sleep(0.05)
    raise BagError(f"no subscriber on {', '.join(opts.wait_for)} after "
                   f"{opts.wait_timeout_s:.0f} s")


def _one_pass(bag, pubs: dict, clock: _Clock | None, opts: ReplayOptions) -> int:
    first_ns = None
    wall0 = 0.0
    sent = 0
    for topic, _, log_ns, raw in bag.messages(set(pubs)):
        if first_ns is None:
            first_ns = log_ns + s_to_ns(opts.start_offset_s)
            wall0 = time.monotonic()
            if clock is not None:
                clock.start_pass(wall0, first_ns, opts.rate)
        if log_ns < first_ns:
            continue
        delay = wall0 + ns_to_s(log_ns - first_ns) / opts.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if clock is not None:
            clock.publish(log_ns)
        pubs[topic].publish(bytes(raw))
        sent += 1
    return sent
