"""The node's executor: rclpy's MultiThreadedExecutor without a task re-submission storm.

rclpy up to Jazzy (7.1.x) yields every task that has not *started* executing again on the
next spin (ros2/rclpy#1452, fixed upstream in 10.0.4 / Rolling): a callback queued for the
thread pool but not yet picked up is submitted over and over, the executor loop never
blocks, and while inference holds the cores the duplicates pile up by thousands. Measured
here: a 100 Hz ``/clock`` replay pushed the node to 110-175 % CPU with 3,700 queued
duplicates, and camera frames and grasp events were handled seconds late. This subclass
submits each task once and backs off briefly while it waits for a pool thread.

It also runs the callbacks of an ``InlineCallbackGroup`` (the camera's: store a frame) on
its spinning thread: the hand-off to a pool thread cost more than the callback, and every
30 Hz frame paid it (the node's CPU with a 640x480 camera: 3.4 -> 1.9-2.3 % of a core).
"""

from __future__ import annotations

import threading
import time

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import (
    ConditionReachedException,
    ExternalShutdownException,
    MultiThreadedExecutor,
    ShutdownException,
    TimeoutException,
)

# How long the spin loop yields the GIL when the only ready work is already queued.
QUEUED_BACKOFF_S = 0.0005
_NOT_READY = (ConditionReachedException, ExternalShutdownException, ShutdownException,
              TimeoutException)


class InlineCallbackGroup(MutuallyExclusiveCallbackGroup):
    """Callbacks so short (storing a camera frame) that ``NodeExecutor`` runs them on its
    spinning thread: handing each to a pool thread cost more than the callback itself. Under
    any other executor, a mutually exclusive group."""


class NodeExecutor(MultiThreadedExecutor):
    """A MultiThreadedExecutor that never queues the same task twice."""

    def __init__(self, num_threads: int | None = None, *, context=None) -> None:
        super().__init__(num_threads=num_threads, context=context)
        self._queued: set = set()
        self._queued_lock = threading.Lock()

    def _spin_once_impl(self, timeout_sec=None, wait_condition=lambda: False) -> None:
        try:
            handler, entity, _ = self.wait_for_ready_callbacks(timeout_sec, None, wait_condition)
        except _NOT_READY:
            return
        if isinstance(getattr(entity, "callback_group", None), InlineCallbackGroup):
            handler()
            handler.result()  # raise its exception, as SingleThreadedExecutor does
            return
        with self._queued_lock:
            queued = handler in self._queued
            self._queued.add(handler)
        if queued:  # yielded again before a pool thread started it: let the pool run
            time.sleep(QUEUED_BACKOFF_S)
            return
        self._executor.submit(self._run, handler)
        self._futures.append(handler)
        for future in self._futures[:]:
            if future.done():
                self._futures.remove(future)
                future.result()  # raise any exception of a callback, as rclpy does

    def _run(self, handler) -> None:
        with self._queued_lock:
            self._queued.discard(handler)
        handler()
