"""Plays a camera stream with grasp events to a running node and collects its answers.

Used by the demo and the end-to-end tests: it is a separate ROS participant, exactly as
a camera driver plus a grasp manager would be.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from diagnostic_msgs.msg import DiagnosticArray
from grasp_success_msgs.msg import GraspVerdict
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Bool

from grasp_success_ros.core.pending import STAGE_MEDIAN_SUFFIX
from grasp_success_ros.core.stamps import ns_to_s, s_to_ns
from grasp_success_ros.data.image_conversion import rgb_to_image_fields
from grasp_success_ros.data.synth import StreamItem
from grasp_success_ros.ros.messages import trigger_class
from grasp_success_ros.ros.verdicts import record_fields


class StreamPlayer(Node):
    """Publishes frames (stamped now) and grasp events; records every result (the
    GraspVerdicts, with the record's field names: :func:`record_fields`).

    ``trigger_type`` is the node's: ``empty``, ``bool`` (true), ``header`` (stamped now) or
    ``string``. ``camera``: one camera NAME of a node's ``cameras`` parameter with its
    default topics (NAME/camera/image_raw, NAME/grasp_completed, NAME/grasp_success...).
    ``diagnostics``: also listen to /diagnostics for the node's stage times
    (:meth:`stage_times`). ``camera_ahead_s``: frames are stamped this far ahead of the
    player's clock (a camera whose clock runs ahead of the node's).
    """

    def __init__(self, name: str = "grasp_stream_player", namespace: str = "",
                 encoding: str = "rgb8", trigger_type: str = "empty", camera: str = "",
                 diagnostics: bool = False) -> None:
        super().__init__(name, namespace=namespace)
        self.encoding = encoding
        self.trigger_type = trigger_type
        self.camera_ahead_s = 0.0
        self._prefix = f"{camera}/" if camera else ""
        self.image_pub = self.create_publisher(Image, self._prefix + "camera/image_raw", 5)
        self._trigger_cls = trigger_class(trigger_type)
        self.event_pub = self.create_publisher(self._trigger_cls,
                                               self._prefix + "grasp_completed", 10)
        self.results: list[dict] = []
        self.verdicts: list[bool] = []
        self._cond = threading.Condition()
        self.create_subscription(GraspVerdict, self._prefix + "grasp_success/result",
                                 self._on_result, 100)
        self.create_subscription(Bool, self._prefix + "grasp_success",
                                 lambda m: self.verdicts.append(m.data), 100)
        self._stages: dict[str, float] | None = None
        if diagnostics:
            self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        """The stage times (``<stage>_ms_p50``) of the grasp node in this namespace."""
        for status in msg.status:
            namespace = status.hardware_id.rsplit("/", 1)[0] or "/"
            if status.name.endswith(": grasp success") and namespace == self.get_namespace():
                with self._cond:
                    self._stages = {kv.key.removesuffix(STAGE_MEDIAN_SUFFIX): float(kv.value)
                                    for kv in status.values
                                    if kv.key.endswith(STAGE_MEDIAN_SUFFIX)}
                    self._cond.notify_all()

    def stage_times(self, timeout: float) -> dict[str, float]:
        """The node's median stage times (frame delay, preprocessing, forward pass: its
        /diagnostics), from the first message after this call; empty if none comes."""
        end = time.monotonic() + timeout
        with self._cond:
            self._stages = None
            while self._stages is None and time.monotonic() < end:
                self._cond.wait(timeout=max(0.0, end - time.monotonic()))
            return dict(self._stages or {})

    def _on_result(self, msg: GraspVerdict) -> None:
        with self._cond:
            self.results.append(record_fields(msg))
            self._cond.notify_all()

    def wait_for_node(self, timeout: float, alive=lambda: True) -> bool:
        """Wait until the node subscribes to our camera and event topics."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and alive():
            if self.image_pub.get_subscription_count() and self.event_pub.get_subscription_count() \
                    and self.count_publishers(self._prefix + "grasp_success/result"):
                return True
            time.sleep(0.1)
        return False

    def image(self, rgb) -> Image:
        """An RGB frame as this player's Image message (stamped when published), so a caller
        can convert its frames once and publish them again and again."""
        return Image(**rgb_to_image_fields(rgb, self.encoding))

    def publish_frame(self, rgb) -> float:
        """Publish one RGB frame stamped now (plus ``camera_ahead_s``); returns the stamp in
        seconds."""
        return self.publish_image(self.image(rgb))

    def publish_image(self, msg: Image) -> float:
        now = self.get_clock().now() + Duration(nanoseconds=s_to_ns(self.camera_ahead_s))
        msg.header.stamp = now.to_msg()
        msg.header.frame_id = msg.header.frame_id or "hand_camera"
        self.image_pub.publish(msg)
        return ns_to_s(now.nanoseconds)

    def play(self, items: Iterable[StreamItem], rate: float = 1.0) -> list[bool]:
        """Publish at the stream's pace; returns the ground-truth label of each event sent."""
        labels: list[bool] = []
        start = time.monotonic()
        for item in items:
            delay = start + item.t / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if item.kind == "frame":
                self.publish_frame(item.image)
            else:
                self.publish_event()
                labels.append(bool(item.label))
        return labels

    def clear(self) -> None:
        with self._cond:
            self.results.clear()
            self.verdicts.clear()

    def publish_event(self) -> None:
        """One grasp-completed event in the node's trigger type."""
        msg = self._trigger_cls()
        if self.trigger_type == "header":
            msg.stamp = self.get_clock().now().to_msg()
        elif self.trigger_type == "bool":
            msg.data = True
        elif self.trigger_type == "string":
            msg.data = "grasp completed"
        self.event_pub.publish(msg)

    def wait_for_results(self, n: int, timeout: float) -> list[dict]:
        """The first ``n`` results in event order (fewer if the timeout passes)."""
        end = time.monotonic() + timeout
        with self._cond:
            while len(self.results) < n and time.monotonic() < end:
                self._cond.wait(timeout=max(0.0, end - time.monotonic()))
            return sorted(self.results, key=lambda r: r["event_id"])[:n]

    def close(self) -> None:
        """Stop spinning, then destroy: Jazzy's ``Executor.shutdown`` does not wait for the
        spinning thread, and destroying the node under a wait set still in use once left
        that thread spinning at 100 % of a core, holding the GIL (a bench run hung here)."""
        self._executor.shutdown()
        self._thread.join(timeout=10.0)
        self.destroy_node()
