"""Where the ROS 2 distributions differ for the node, decided in one place, told apart by
their rclpy's version: each rclpy bug the node works around is gated on the releases that
have it, and the Fast DDS profile variable goes by the distribution.

- ros2/rclpy#1209 (:func:`guard_change_state`): rcl's "Transition is not registered" error
  escapes a LifecycleNode's change_state service callback and ends the executor's spin, so
  one request for a transition the current state does not offer kills the node. Fixed
  upstream by ros2/rclpy#1319 (Rolling, August 2024); not backported to Jazzy: rclpy 7.1.x
  up to 7.1.9 has the bug. Kilted's 9.1.2 answers such a request with success=false itself
  (tested). Applies to rclpy < 9.
- ros2/rclpy#1452 (:class:`NodeExecutor`): MultiThreadedExecutor yields every task that has
  not *started* again on the next spin, so a callback queued for the pool but not picked up
  yet is submitted over and over, the spin loop never blocks, and while inference holds the
  cores the duplicates pile up by thousands (measured here: a 100 Hz ``/clock`` replay took
  the node to 110-175 % CPU with 3,700 queued duplicates; frames and events were handled
  seconds late). Fixed upstream by ros2/rclpy#1547, released in 10.0.4 (Rolling); Jazzy's
  7.1.x up to 7.1.9 and Kilted's 9.1.2 have it (tested; 9.1.2's MultiThreadedExecutor has
  the same ``_spin_once_impl``, ``_executor`` and ``_futures`` as 7.1.x). Applies to
  rclpy < 10.0.4.
- ros2/rclpy#1385 (:meth:`NodeExecutor.wait_for_ready_callbacks`): the executor lists a
  node's waitables (an action server, a subscription's QoS event handlers), then enters and
  adds each to the wait set; one that another thread destroys in between is skipped when
  entered but still added, and the RCLError ("Failed to add 'rcl_action_server_t' to wait
  set") or InvalidHandle ends the spin. The node destroys its VerifyGrasp action server at
  cleanup and its subscriptions at deactivate from pool threads, so a lifecycle transition
  could kill it (seen once in a Kilted run; Jazzy's 7.1.x has the same code). Open upstream:
  no release fixes it; applies to every rclpy.
- The action client's lock (:class:`ActionClient`): rclpy 9.x (Kilted) adds an ActionClient
  to its node's waitables before it creates the lock its ``get_num_entities`` takes, so an
  executor spinning that node in another thread meanwhile dies with AttributeError (seen in
  a Kilted run: a test's action client killed its player's spin thread). Jazzy's 7.1.x has
  no such lock. Applies to rclpy >= 9; no release fixes it yet.
- Ctrl-C's signal thread (:func:`settle_interrupt`): rclpy's SIGINT handler chains to
  Python's (a KeyboardInterrupt in the main thread) and wakes rclpy's own signal thread,
  which walks the executors' registered SIGINT guard conditions without a lock, triggering
  each, and then shuts the contexts down. A main thread that shuts its executor down as soon
  as the KeyboardInterrupt arrives unregisters that guard condition meanwhile, which frees
  the list the thread walks, and destroys it: the thread triggers freed memory and the
  process dies of SIGSEGV in ``rcl_trigger_guard_condition`` (the node, three times in a few
  hundred stops on a loaded 2-core machine). ``scripts/sigint_race.py`` reproduces it with
  300 executors registered: 8 of 80 Ctrl-Cs crashed on Jazzy's 7.1.6, 1 of 40 on Kilted's
  9.1.2, none of 100 when the context was shut down first. No rclpy release fixes it;
  applies to every rclpy.
- Fast DDS's profile file (:func:`fast_dds_profile_vars`): Fast DDS 2.x (Jazzy, rclpy 7.x)
  reads ``FASTRTPS_DEFAULT_PROFILES_FILE`` only; 3.x (Kilted, rclpy 9.x) reads
  ``FASTDDS_DEFAULT_PROFILES_FILE``, and Kilted's rmw_fastrtps warns at every participant's
  start that the old name is deprecated when it is set.

The workarounds lean on rclpy's private names. ``test/test_rclpy_compat.py`` (run on Jazzy
by ``make test`` and on Kilted by ``make test-kilted``) fails when a bug is gone from the
installed rclpy while its gate still applies (narrow the gate, or drop the workaround), when
it is there while the gate does not, and when a workaround stops working. An rclpy whose
version no distribution reports gets every workaround.

Not worked around: Humble's rclpy (3.3.x) lacks ``Node.add_post_set_parameters_callback``
(ros2/rclpy#966, rclpy 3.7.0, after Humble branched), on which the node commits a parameter
change only once it is set: the node needs rclpy >= 3.7 (Iron and later; tested on Jazzy
and Kilted; README, "ROS 2 distributions").
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from rclpy.action import ActionClient as RclpyActionClient
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import InvalidHandle
from rclpy.executors import (
    ConditionReachedException,
    ExternalShutdownException,
    MultiThreadedExecutor,
    ShutdownException,
    TimeoutException,
)
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

# Where rclpy's version is registered: ``rclpy`` (an apt install's egg-info, the ROS 2
# wheels' setup.py metadata), then the wheels' own distribution names.
RCLPY_DISTRIBUTIONS = ("rclpy", "ros-rclpy", "ros-jazzy-rclpy", "ros-kilted-rclpy")
# How long the spin loop yields the GIL when the only ready work is already queued.
QUEUED_BACKOFF_S = 0.0005
_NOT_READY = (ConditionReachedException, ExternalShutdownException, ShutdownException,
              TimeoutException)
# How long a wait set may keep failing on a destroyed waitable before the error is let through
# (ActionServer.destroy removes it from the node right after; one still listed after this is
# a bug of its own, not the race).
DESTROYED_GRACE_S = 1.0


def release(text: str) -> tuple[int, ...]:
    """A version string's leading release numbers: "7.1.5" -> (7, 1, 5), "10.0.4.dev0" ->
    (10, 0, 4)."""
    match = re.match(r"\d+(?:\.\d+)*", text.strip())
    if match is None:
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(part) for part in match.group().split("."))


@cache
def rclpy_version() -> tuple[int, ...] | None:
    """The installed rclpy's release numbers; None when no distribution reports them."""
    for name in RCLPY_DISTRIBUTIONS:
        try:
            return release(version(name))
        except (PackageNotFoundError, ValueError):
            continue
    return None


@dataclass(frozen=True)
class Workaround:
    """An rclpy bug worked around here, and the first rclpy release without it (None: no
    release fixes it yet)."""

    issue: str
    fixed_in: tuple[int, ...] | None

    def applies(self, installed: tuple[int, ...] | None = None) -> bool:
        """Whether ``installed`` (default: this rclpy) has the bug; unknown versions do."""
        installed = installed or rclpy_version()
        return installed is None or self.fixed_in is None or installed < self.fixed_in


CHANGE_STATE_ESCAPES = Workaround("ros2/rclpy#1209", fixed_in=(9,))
TASK_RESUBMISSION = Workaround("ros2/rclpy#1452", fixed_in=(10, 0, 4))
WAITABLE_DESTROYED = Workaround("ros2/rclpy#1385", fixed_in=None)
SIGNAL_THREAD_RACE = Workaround("rclpy signal_handler.cpp trigger_guard_conditions",
                                fixed_in=None)
# How long a KeyboardInterrupt waits for rclpy's signal thread to shut the context down: it
# takes milliseconds; where rclpy's handlers are not installed nothing will.
INTERRUPT_SETTLE_S = 2.0
# rclpy 9.x: ActionClient.__init__ calls node.add_waitable(self) before self._lock exists.
ACTION_CLIENT_LOCK_SINCE = (9,)
# The first rclpy of a distribution whose middleware is Fast DDS 3 (Kilted's 9.x).
FAST_DDS_3_RCLPY = (9,)
FAST_DDS_2_PROFILE_VAR = "FASTRTPS_DEFAULT_PROFILES_FILE"
FAST_DDS_3_PROFILE_VAR = "FASTDDS_DEFAULT_PROFILES_FILE"


def fast_dds_profile_vars(installed: tuple[int, ...] | None = None) -> tuple[str, ...]:
    """The variable(s) naming a profile file that this distribution's Fast DDS reads, by
    ``installed`` (default: this rclpy); both where the version is unknown."""
    installed = installed or rclpy_version()
    if installed is None:
        return (FAST_DDS_2_PROFILE_VAR, FAST_DDS_3_PROFILE_VAR)
    return ((FAST_DDS_3_PROFILE_VAR,) if installed >= FAST_DDS_3_RCLPY
            else (FAST_DDS_2_PROFILE_VAR,))


def guard_change_state(node: Any, logger: Any) -> bool:
    """Make ``node`` (a LifecycleNode) refuse a transition its current state does not offer
    with success=false (``logger`` warns), where this rclpy lets the request end the spin
    (ros2/rclpy#1209). rclpy offers no hook, so this wraps the change_state service's
    callback; an rclpy that renamed the two private names it needs fails here, at start-up,
    instead of losing the guard silently. Returns whether the guard was installed."""
    if not CHANGE_STATE_ESCAPES.applies():
        return False
    service = getattr(node, "_service_change_state", None)
    machine = getattr(node, "_state_machine", None)
    if service is None or not hasattr(machine, "available_transitions"):
        raise RuntimeError("rclpy's lifecycle internals changed: review "
                           "rclpy_compat.guard_change_state (ros2/rclpy#1209)")
    unguarded = service.callback

    def change_state(request, response):
        wanted = request.transition
        offered = [(tid, label) for tid, label, *_ in machine.available_transitions]
        if not any(label == wanted.label if wanted.label else tid == wanted.id
                   for tid, label in offered):
            logger.warning(f"refused transition id {wanted.id} label '{wanted.label}' from "
                           f"state {machine.current_state[1]}: offered {offered}")
            response.success = False
            return response
        return unguarded(request, response)

    service.callback = change_state
    return True


def settle_interrupt(context: Any, timeout_s: float = INTERRUPT_SETTLE_S) -> bool:
    """After a KeyboardInterrupt ended a spin, and before any executor is shut down: wait
    until rclpy's signal thread has shut ``context`` down, i.e. has finished triggering the
    executors' SIGINT guard conditions (module doc). Returns whether it had within
    ``timeout_s``."""
    if not SIGNAL_THREAD_RACE.applies():
        return True
    end = time.monotonic() + timeout_s
    while context.ok():
        if time.monotonic() >= end:
            return False
        time.sleep(0.005)
    return True


class ActionClient(RclpyActionClient):
    """rclpy's ActionClient, safe to create on a node that another thread spins: its lock is
    made before rclpy 9.x's ``__init__`` puts the client among the node's waitables (module
    doc). Where rclpy has no such lock, rclpy's own class as it is."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if action_client_lock_late():
            self._lock = threading.Lock()
        super().__init__(*args, **kwargs)


def action_client_lock_late(installed: tuple[int, ...] | None = None) -> bool:
    """Whether this rclpy's ActionClient makes its lock after it joins the node's
    waitables (rclpy >= 9; unknown versions are taken to)."""
    installed = installed or rclpy_version()
    return installed is None or installed >= ACTION_CLIENT_LOCK_SINCE


class InlineCallbackGroup(MutuallyExclusiveCallbackGroup):
    """Callbacks so short (storing a camera frame) that ``NodeExecutor`` runs them on its
    spinning thread: the hand-off to a pool thread cost more than the callback, and every
    30 Hz frame paid it (the node's CPU with a 640x480 camera: 3.4 -> 1.9-2.3 % of a core).
    Under any other executor, and where rclpy has no ros2/rclpy#1452, a mutually exclusive
    group."""


class NodeExecutor(MultiThreadedExecutor):
    """A MultiThreadedExecutor that never queues the same task twice (ros2/rclpy#1452): it
    submits each task once and backs off briefly while the task waits for a pool thread,
    and runs an :class:`InlineCallbackGroup`'s callbacks on the spinning thread. Where this
    rclpy has no #1452 (``submit_once`` false), rclpy's own MultiThreadedExecutor. Either
    way a waitable destroyed while the wait set is built does not end the spin
    (ros2/rclpy#1385)."""

    submit_once = TASK_RESUBMISSION.applies()
    ride_out_destroyed = WAITABLE_DESTROYED.applies()

    def __init__(self, num_threads: int | None = None, *, context=None) -> None:
        super().__init__(num_threads=num_threads, context=context)
        self._queued: set = set()
        self._queued_lock = threading.Lock()
        self._failing_since: float | None = None  # when the wait set last began to fail

    def wait_for_ready_callbacks(self, *args, **kwargs):
        """rclpy's, but a wait set that failed on a waitable another thread destroyed
        meanwhile (ros2/rclpy#1385) ends this wait as a timeout: the next one lists the nodes'
        waitables again, without it. Both spin paths treat a timeout as nothing ready."""
        try:
            ready = super().wait_for_ready_callbacks(*args, **kwargs)
        except (_rclpy.RCLError, InvalidHandle) as exc:
            if not self._destroyed_meanwhile(exc):
                raise
            time.sleep(QUEUED_BACKOFF_S)  # let the destroying thread remove it from the node
            raise TimeoutException() from None
        self._failing_since = None
        return ready

    def _destroyed_meanwhile(self, exc: Exception) -> bool:
        if not self.ride_out_destroyed:
            return False
        if not isinstance(exc, InvalidHandle) and "to wait set" not in str(exc):
            return False  # another rcl failure: not this race
        now = time.monotonic()
        self._failing_since = self._failing_since or now
        return now - self._failing_since < DESTROYED_GRACE_S

    def _spin_once_impl(self, timeout_sec=None, wait_condition=lambda: False) -> None:
        if not self.submit_once:
            super()._spin_once_impl(timeout_sec, wait_condition)
            return
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
