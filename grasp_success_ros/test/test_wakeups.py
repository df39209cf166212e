"""When the node's worker runs (core/wakeups.py), under real threads: at once when asked, once
more for what came during a pass, at a deadline the pass names, and never on its own."""

from __future__ import annotations

import threading
import time

import pytest

from grasp_success_ros.core.wakeups import WorkerWakeups


class Executor:
    """The executor's part: a trigger runs the passes on a thread of its own, as rclpy's
    guard condition hands them to a pool thread."""

    def __init__(self, one_pass) -> None:
        self.triggers = 0
        self.one_pass = one_pass
        self.wakeups = WorkerWakeups(self.trigger)
        self.threads: list[threading.Thread] = []

    def trigger(self) -> None:
        self.triggers += 1
        thread = threading.Thread(target=self.wakeups.run_passes, args=(self.one_pass,))
        self.threads.append(thread)
        thread.start()

    def join(self) -> None:
        for thread in list(self.threads):
            thread.join(timeout=5.0)


@pytest.fixture
def closing():
    made: list[Executor] = []
    yield lambda one_pass: made.append(Executor(one_pass)) or made[-1]
    for executor in made:
        executor.wakeups.close()
        executor.join()


def test_a_request_while_idle_hands_one_pass_to_the_executor(closing):
    passes = []
    executor = closing(lambda: passes.append(1))
    executor.wakeups.request()
    executor.join()
    assert executor.triggers == 1 and len(passes) == 1


def test_requests_during_a_pass_run_one_more_pass_without_waking_the_executor(closing):
    started, release, passes = threading.Event(), threading.Event(), []

    def one_pass():
        passes.append(1)
        if len(passes) == 1:
            started.set()
            release.wait(5.0)

    executor = closing(one_pass)
    executor.wakeups.request()
    assert started.wait(5.0)
    for _ in range(5):  # frames arriving during a forward pass
        executor.wakeups.request()
    release.set()
    executor.join()
    assert executor.triggers == 1 and len(passes) == 2


def test_a_pass_that_leaves_an_event_waiting_runs_again_at_its_deadline(closing):
    times = []

    def one_pass():
        times.append(time.monotonic())
        return 0.2 if len(times) == 1 else None

    executor = closing(one_pass)
    executor.wakeups.request()
    deadline = time.monotonic() + 5.0
    while len(times) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    executor.join()
    assert len(times) == 2 and times[1] - times[0] >= 0.2
    assert executor.triggers == 2


def test_with_nothing_waiting_the_worker_is_never_woken(closing):
    passes = []
    executor = closing(lambda: passes.append(1))
    executor.wakeups.request()
    time.sleep(0.5)
    executor.join()
    assert executor.triggers == 1 and len(passes) == 1


def test_a_later_pass_replaces_the_deadline_an_earlier_one_named(closing):
    passes = []

    def one_pass():  # first: wait 0.1 s; second (asked for at once): nothing waits
        passes.append(1)
        return 0.1 if len(passes) == 1 else None

    executor = closing(one_pass)
    executor.wakeups.request()
    executor.join()
    executor.wakeups.request()
    time.sleep(0.4)
    executor.join()
    assert executor.triggers == 2 and len(passes) == 2


def test_closing_stops_the_deadline_thread(closing):
    executor = closing(lambda: 60.0)
    executor.wakeups.request()
    executor.join()
    timers = [t for t in threading.enumerate() if t.name == "worker-deadlines"]
    assert len(timers) == 1 and timers[0].is_alive()
    executor.wakeups.close()
    assert not timers[0].is_alive()
