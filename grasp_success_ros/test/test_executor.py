"""The node's executor submits every ready callback to its thread pool exactly once, even
while another callback group keeps the cores busy (rclpy#1452 re-submitted them by the
thousand and starved the camera callback); an inline group's callbacks run on the spinning
thread itself."""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
import pytest
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.qos import QoSProfile
from std_msgs.msg import Int32

from grasp_success_ros.ros.executor import InlineCallbackGroup, NodeExecutor

pytestmark = pytest.mark.ros
MESSAGES = 200


@pytest.fixture()
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def wait_until(condition, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition() and time.monotonic() < end:
        time.sleep(0.05)


def spin_in_thread(executor: NodeExecutor, node) -> threading.Thread:
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    return spinner


def busy_work() -> None:
    """About 100 ms of numpy (releases the GIL, like inference)."""
    a = np.random.default_rng(0).random((400, 400))
    end = time.monotonic() + 0.1
    while time.monotonic() < end:
        a = a @ a.T / 400.0


def test_every_callback_runs_once_and_none_is_queued_twice_while_a_group_is_busy(context):
    node = rclpy.create_node("executor_under_test", context=context)
    talker = rclpy.create_node("executor_talker", context=context)
    executor = NodeExecutor(num_threads=4, context=context)
    submitted: Counter = Counter()
    submit = executor._executor.submit

    def counting_submit(fn, *args):
        submitted.update([args[0] if args else fn])  # the rclpy task, however it is wrapped
        return submit(fn, *args)

    executor._executor.submit = counting_submit
    received: list[int] = []
    node.create_subscription(Int32, "counts", lambda m: received.append(m.data),
                             QoSProfile(depth=MESSAGES),
                             callback_group=MutuallyExclusiveCallbackGroup())
    stop = threading.Event()

    def keep_busy():
        busy_work()
        if not stop.is_set():
            wake.trigger()

    wake = node.create_guard_condition(keep_busy, MutuallyExclusiveCallbackGroup())
    pub = talker.create_publisher(Int32, "counts", QoSProfile(depth=MESSAGES))
    spin_in_thread(executor, node)
    try:
        wait_until(pub.get_subscription_count)
        wake.trigger()  # the worker keeps itself busy from now on
        for i in range(MESSAGES):
            pub.publish(Int32(data=i))
            time.sleep(0.01)
        wait_until(lambda: len(received) >= MESSAGES)
    finally:
        stop.set()
        time.sleep(0.2)  # let the last busy callback finish
        executor.shutdown()
        node.destroy_node()
        talker.destroy_node()
    assert received == list(range(MESSAGES))
    assert max(submitted.values()) == 1


def test_an_inline_groups_callbacks_run_on_the_spinning_thread_each_message_once(context):
    node = rclpy.create_node("inline_under_test", context=context)
    talker = rclpy.create_node("inline_talker", context=context)
    executor = NodeExecutor(num_threads=2, context=context)
    received: list[tuple[int, threading.Thread]] = []
    node.create_subscription(Int32, "frames",
                             lambda m: received.append((m.data, threading.current_thread())),
                             QoSProfile(depth=MESSAGES), callback_group=InlineCallbackGroup())
    pub = talker.create_publisher(Int32, "frames", QoSProfile(depth=MESSAGES))
    spinner = spin_in_thread(executor, node)
    try:
        wait_until(pub.get_subscription_count)
        for i in range(50):
            pub.publish(Int32(data=i))
            time.sleep(0.005)
        wait_until(lambda: len(received) >= 50)
    finally:
        executor.shutdown()
        spinner.join(timeout=10.0)
        node.destroy_node()
        talker.destroy_node()
    assert [data for data, _ in received] == list(range(50))
    assert {thread for _, thread in received} == {spinner}
