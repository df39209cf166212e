"""rclpy's bugs worked around in ros/rclpy_compat.py: each workaround applies exactly where the
installed rclpy still has its bug (a test here fails the day rclpy fixes it: narrow the gate
or drop the workaround), and each still works. Run on Jazzy (``make test``) and on Kilted
(``make test-kilted``).

ros2/rclpy#1209: an unoffered lifecycle transition ends the spin; the guard answers
success=false instead, and where rclpy answers so itself the node's set-up leaves it to
rclpy. ros2/rclpy#1452: the MultiThreadedExecutor re-submits a task queued for its pool until
a thread starts it; the node's executor submits every ready callback exactly once, even while
another callback group keeps the cores busy, and runs an inline group's callbacks on the
spinning thread itself. ros2/rclpy#1385: a waitable destroyed by another thread while the
executor builds its wait set ends the spin; the node's executor rides it out, but not a
destroyed waitable left on the node. Ctrl-C: rclpy's signal thread shuts the context down
after waking the executors, which ``settle_interrupt`` waits for (the race itself is too rare
to test here: ``scripts/sigint_race.py``). The parameter callbacks the node registers exist
(Humble's rclpy lacks the post-set one)."""

from __future__ import annotations

import inspect
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import rclpy
from conftest import REPO
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.action import ActionServer
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import InvalidHandle
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import LifecycleNode
from rclpy.qos import QoSProfile
from std_msgs.msg import Int32
from test_msgs.action import Fibonacci

from grasp_success_ros.ros import rclpy_compat
from grasp_success_ros.ros.rclpy_compat import (
    CHANGE_STATE_ESCAPES,
    SIGNAL_THREAD_RACE,
    TASK_RESUBMISSION,
    WAITABLE_DESTROYED,
    ActionClient,
    InlineCallbackGroup,
    NodeExecutor,
    action_client_lock_late,
    guard_change_state,
    rclpy_version,
    release,
    settle_interrupt,
)

pytestmark = pytest.mark.ros
MESSAGES = 200
NEEDS_OVERRIDE = pytest.mark.skipif(not TASK_RESUBMISSION.applies(),
                                    reason="NodeExecutor is rclpy's own on this rclpy")


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


def spin_in_thread(executor, node) -> threading.Thread:
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    return spinner


def counting_submits(executor) -> Counter:
    """How often each rclpy task is handed to the executor's pool, however it is wrapped."""
    submitted: Counter = Counter()
    submit = executor._executor.submit

    def counting_submit(fn, *args):
        submitted.update([args[0] if args else fn])
        return submit(fn, *args)

    executor._executor.submit = counting_submit
    return submitted


def busy_work() -> None:
    """About 100 ms of numpy (releases the GIL, like inference)."""
    a = np.random.default_rng(0).random((400, 400))
    end = time.monotonic() + 0.1
    while time.monotonic() < end:
        a = a @ a.T / 400.0


# --- the installed rclpy's version -------------------------------------------------------

def test_rclpy_reports_its_version_so_the_gates_are_not_guesses():
    installed = rclpy_version()
    assert installed is not None and len(installed) >= 2 and installed[0] >= 7


def test_the_parameter_callbacks_the_node_registers_exist_in_this_rclpy():
    """Validate before a set, commit after it (ros2/rclpy#966: rclpy 3.7, not Humble's)."""
    from rclpy.node import Node

    assert callable(getattr(Node, "add_on_set_parameters_callback", None))
    assert callable(getattr(Node, "add_post_set_parameters_callback", None))


def test_versions_compare_by_their_release_numbers():
    assert release("7.1.5") == (7, 1, 5) and release("10.0.4.dev0") == (10, 0, 4)
    assert TASK_RESUBMISSION.applies((7, 1, 9)) and TASK_RESUBMISSION.applies((10, 0, 3))
    assert not TASK_RESUBMISSION.applies((10, 0, 4))
    assert CHANGE_STATE_ESCAPES.applies((7, 1, 9)) and not CHANGE_STATE_ESCAPES.applies((9, 1))
    assert WAITABLE_DESTROYED.applies((99,))  # no release fixes it yet


# --- ros2/rclpy#1209: an unoffered lifecycle transition -----------------------------------

def change_state(node, transition_id: int = 0, label: str = ""):
    """The change_state service's callback, called as the executor calls it."""
    request = ChangeState.Request(transition=Transition(id=transition_id, label=label))
    return node._service_change_state.callback(request, ChangeState.Response())


def test_rclpy_lets_an_unoffered_transition_escape_exactly_where_the_guard_applies(context):
    node = LifecycleNode("plain_lifecycle", context=context)
    answer = None
    try:
        answer = change_state(node, Transition.TRANSITION_ACTIVATE)  # unconfigured: no activate
        escaped = False
    except RuntimeError as exc:  # rclpy's RCLError, which ends the spin
        escaped = "Transition is not registered" in str(exc)
    finally:
        state = node._state_machine.current_state[1]
        node.destroy_node()
    assert escaped == CHANGE_STATE_ESCAPES.applies(), (
        f"rclpy {rclpy_version()} {'still has' if escaped else 'fixed'} "
        f"{CHANGE_STATE_ESCAPES.issue}: move CHANGE_STATE_ESCAPES.fixed_in")
    assert escaped or answer.success is False  # a fixed rclpy refuses it itself
    assert state == "unconfigured"


def test_the_guard_is_installed_exactly_where_rclpy_lets_the_error_escape(context):
    node = LifecycleNode("gate_lifecycle", context=context)
    try:
        assert guard_change_state(node, node.get_logger()) == CHANGE_STATE_ESCAPES.applies()
    finally:
        node.destroy_node()


def test_the_nodes_set_up_refuses_an_unoffered_transition_by_id_or_label_and_stays_put(context):
    """The guard where rclpy has the bug, rclpy itself where it does not."""
    node = LifecycleNode("guarded_lifecycle", context=context)
    try:
        guard_change_state(node, node.get_logger())
        assert change_state(node, Transition.TRANSITION_ACTIVATE).success is False
        assert change_state(node, label="activate").success is False
        assert node._state_machine.current_state[1] == "unconfigured"
        assert change_state(node, label="configure").success is True
        assert node._state_machine.current_state[1] == "inactive"
    finally:
        node.destroy_node()


def test_a_node_set_up_so_answers_an_unoffered_transition_and_keeps_spinning(context):
    node = LifecycleNode("spinning_lifecycle", context=context)
    guard_change_state(node, node.get_logger())
    client_node = rclpy.create_node("lifecycle_client", context=context)
    client = client_node.create_client(ChangeState, "spinning_lifecycle/change_state")
    executor = SingleThreadedExecutor(context=context)  # an escaping error ends its spin
    executor.add_node(client_node)
    spinner = spin_in_thread(executor, node)

    def call(transition_id: int) -> bool:
        future = client.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
        wait_until(future.done)
        return future.result().success

    try:
        assert client.wait_for_service(timeout_sec=10.0)
        assert call(Transition.TRANSITION_ACTIVATE) is False
        assert spinner.is_alive()
        assert call(Transition.TRANSITION_CONFIGURE) is True
    finally:
        executor.shutdown()
        spinner.join(timeout=10.0)
        client_node.destroy_node()
        node.destroy_node()


def test_the_guard_refuses_to_start_on_an_rclpy_without_the_names_it_wraps():
    class NotALifecycleNode:
        pass

    if CHANGE_STATE_ESCAPES.applies():
        with pytest.raises(RuntimeError, match="rclpy#1209"):
            guard_change_state(NotALifecycleNode(), None)
    else:
        assert guard_change_state(NotALifecycleNode(), None) is False


# --- ros2/rclpy#1452: tasks re-submitted while they wait for a pool thread ------------------

@NEEDS_OVERRIDE
def test_the_rclpy_internals_the_executor_overrides_are_still_there(context):
    parameters = list(inspect.signature(MultiThreadedExecutor._spin_once_impl).parameters)
    assert parameters == ["self", "timeout_sec", "wait_condition"]
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    try:
        assert isinstance(executor._executor, ThreadPoolExecutor)
        assert isinstance(executor._futures, list)
        assert callable(executor.wait_for_ready_callbacks)
    finally:
        executor.shutdown()


def submits_while_the_pool_is_busy(executor, context) -> Counter:
    """Both pool threads sleep in callbacks of their own groups while a third callback is
    ready: its task waits in the pool's queue. Returns the submissions of each task."""
    node = rclpy.create_node("pool_busy", context=context)
    submitted = counting_submits(executor)
    started, done = threading.Semaphore(0), threading.Event()

    def sleeper():
        started.release()
        time.sleep(0.3)

    sleepers = [node.create_guard_condition(sleeper, MutuallyExclusiveCallbackGroup())
                for _ in range(2)]
    waiting = node.create_guard_condition(done.set, MutuallyExclusiveCallbackGroup())
    spinner = spin_in_thread(executor, node)
    try:
        for guard in sleepers:
            guard.trigger()
        assert started.acquire(timeout=10.0) and started.acquire(timeout=10.0)
        waiting.trigger()
        assert done.wait(timeout=10.0)
    finally:
        executor.shutdown()
        spinner.join(timeout=10.0)
        node.destroy_node()
    return submitted


def test_rclpy_resubmits_a_queued_task_exactly_where_the_override_applies(context):
    submitted = submits_while_the_pool_is_busy(MultiThreadedExecutor(2, context=context),
                                               context)
    storm = max(submitted.values()) > 1
    assert storm == TASK_RESUBMISSION.applies(), (
        f"rclpy {rclpy_version()} {'still has' if storm else 'fixed'} "
        f"{TASK_RESUBMISSION.issue}: move TASK_RESUBMISSION.fixed_in")


def test_the_node_executor_submits_a_queued_task_once(context):
    submitted = submits_while_the_pool_is_busy(NodeExecutor(2, context=context), context)
    assert len(submitted) == 3 and max(submitted.values()) == 1


def test_every_callback_runs_once_and_none_is_queued_twice_while_a_group_is_busy(context):
    node = rclpy.create_node("executor_under_test", context=context)
    talker = rclpy.create_node("executor_talker", context=context)
    executor = NodeExecutor(num_threads=4, context=context)
    submitted = counting_submits(executor)
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


@NEEDS_OVERRIDE
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


# --- ros2/rclpy#1385: a waitable destroyed while the executor builds its wait set ----------

def half_destroyed_action_server(node):
    """An action server destroyed but still listed by ``node``: what an executor sees between
    the two steps of ActionServer.destroy() on another thread. Returns the second step."""
    server = ActionServer(node, Fibonacci, "fibonacci", lambda goal: Fibonacci.Result())
    yield
    server._handle.destroy_when_not_in_use()
    yield
    node.remove_waitable(server)
    yield


def half_destroyed_event_handlers(node):
    """A subscription's QoS event handlers destroyed while the executor still holds the list
    of waitables it took before Node.destroy_subscription removed them."""
    sub = node.create_subscription(Int32, "half_destroyed", lambda m: None, 10)
    yield
    for handler in sub.event_handlers:
        handler.destroy()
    yield
    node.destroy_subscription(sub)
    yield


HALF_DESTROYED = {"action_server": half_destroyed_action_server,
                  "qos_event_handlers": half_destroyed_event_handlers}


@pytest.fixture(params=list(HALF_DESTROYED))
def half_destroyed(request, context):
    """(node, steps): next(steps) creates the waitable, destroys it, then removes it."""
    node = rclpy.create_node(f"half_destroyed_{request.param}", context=context)
    steps = HALF_DESTROYED[request.param](node)
    next(steps)
    yield node, steps
    node.destroy_node()


def test_rclpy_ends_the_spin_on_a_destroyed_waitable_exactly_where_the_workaround_applies(
        half_destroyed, context):
    node, steps = half_destroyed
    executor = MultiThreadedExecutor(2, context=context)
    executor.add_node(node)
    try:
        executor.spin_once(timeout_sec=0.05)
        next(steps)  # destroyed, still listed
        executor.spin_once(timeout_sec=0.05)
        ended = False
    except (_rclpy.RCLError, InvalidHandle):
        ended = True
    finally:
        executor.shutdown()
    assert ended == WAITABLE_DESTROYED.applies(), (
        f"rclpy {rclpy_version()} fixed {WAITABLE_DESTROYED.issue}: set "
        "WAITABLE_DESTROYED.fixed_in")


def test_the_node_executor_rides_out_a_waitable_destroyed_meanwhile_and_keeps_serving(
        half_destroyed, context):
    node, steps = half_destroyed
    served = threading.Event()
    wake = node.create_guard_condition(served.set, MutuallyExclusiveCallbackGroup())
    executor = NodeExecutor(2, context=context)
    executor.add_node(node)
    try:
        executor.spin_once(timeout_sec=0.05)
        next(steps)  # destroyed, still listed
        executor.spin_once(timeout_sec=0.05)
        next(steps)  # removed: the destroying thread's second step
        wake.trigger()
        end = time.monotonic() + 10.0
        while not served.is_set() and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
    assert served.is_set()


def test_a_destroyed_waitable_left_on_the_node_still_ends_the_spin(
        half_destroyed, context, monkeypatch):
    """Only the race is ridden out: a waitable never removed is a bug of its own."""
    monkeypatch.setattr(rclpy_compat, "DESTROYED_GRACE_S", 0.2)
    node, steps = half_destroyed
    executor = NodeExecutor(2, context=context)
    executor.add_node(node)
    try:
        executor.spin_once(timeout_sec=0.05)
        next(steps)  # destroyed, and left listed
        with pytest.raises((_rclpy.RCLError, InvalidHandle)):
            end = time.monotonic() + 5.0
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.01)
    finally:
        executor.shutdown()


# --- the action client's lock ----------------------------------------------------------


def lock_when_added(node, make_client) -> tuple[bool, object]:
    """Whether the client had its ``_lock`` when it joined the node's waitables, and it."""
    seen: list[bool] = []
    add = node.add_waitable

    def recording_add(waitable) -> None:
        seen.append(hasattr(waitable, "_lock"))
        add(waitable)

    node.add_waitable = recording_add
    client = make_client(node)
    node.add_waitable = add
    return seen[0], client


def test_rclpys_action_client_joins_the_waitables_before_its_lock_exactly_where_it_applies(
        context):
    from rclpy.action import ActionClient as RclpyActionClient
    from test_msgs.action import Fibonacci

    node = rclpy.create_node("lock_order", context=context)
    try:
        had_lock, client = lock_when_added(
            node, lambda n: RclpyActionClient(n, Fibonacci, "fibonacci"))
        late = not had_lock and hasattr(client, "_lock")
        assert late == action_client_lock_late(), (
            f"rclpy {rclpy_version()}: ActionClient makes its lock "
            f"{'late' if late else 'in time, or has none'}: adjust ACTION_CLIENT_LOCK_SINCE")
        client.destroy()
    finally:
        node.destroy_node()


def test_our_action_client_has_its_lock_when_a_spinning_executor_can_see_it(context):
    from test_msgs.action import Fibonacci

    node = rclpy.create_node("lock_first", context=context)
    try:
        had_lock, client = lock_when_added(node, lambda n: ActionClient(n, Fibonacci, "fib"))
        assert had_lock == action_client_lock_late()  # made first wherever rclpy makes one
        client.destroy()
    finally:
        node.destroy_node()


# --- Ctrl-C: rclpy's signal thread (settle_interrupt) --------------------------------------

def test_settle_interrupt_returns_once_the_context_is_shut_down(context):
    threading.Timer(0.2, context.shutdown).start()
    assert settle_interrupt(context) is True
    assert not context.ok()


def test_settle_interrupt_gives_up_when_nothing_shuts_the_context_down(context):
    assert settle_interrupt(context, timeout_s=0.1) is (not SIGNAL_THREAD_RACE.applies())
    assert context.ok()


def test_after_ctrl_c_rclpys_signal_thread_shuts_the_context_down_for_settle_to_see():
    """What settle_interrupt waits for happens on this rclpy: Ctrl-C ends the spin with a
    KeyboardInterrupt, and rclpy's signal thread then shuts the context down."""
    race = [sys.executable, str(REPO / "scripts" / "sigint_race.py"), "--child", "--settle",
            "--executors", "0"]  # the reproduction's child, alone on the machine
    proc = subprocess.Popen(race, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "spinning", proc.stderr.read()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out.strip()) == (0, "settled"), err
