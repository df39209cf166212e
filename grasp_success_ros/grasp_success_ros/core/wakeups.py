"""When the node's worker runs: at once when something for it came (a frame, an event) and
at the earliest deadline of the events that still wait, and never on a fixed poll.

Each wake-up of rclpy's executor costs a rebuild of its wait set in Python, twice (the
callback, then its completion): about a millisecond of a core per wake-up on the 2-core
machine of BENCHMARKS.md, taken from a forward pass that runs on both cores. A 20 Hz poll
timer cost the idle node 2.6-4 % of a core; a frame's wake-up while a pass was already under
way cost the same again for nothing. Here a request during a pass only marks the pass to be
run again, and a deadline is kept by a plain thread that sleeps until it is due.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class WorkerWakeups:
    """Requests for a worker pass, the passes themselves, and the next deadline."""

    def __init__(self, trigger: Callable[[], None]) -> None:
        """``trigger`` hands a pass to the executor (the worker's guard condition): it
        must end in a call of :meth:`run_passes` on a thread of the executor's."""
        self._trigger = trigger
        self._cond = threading.Condition()
        self._running = self._again = self._closed = False
        self._due: float | None = None  # time.monotonic() of the next deadline
        self._timer: threading.Thread | None = None

    def request(self) -> None:
        """A pass is wanted: one more after the one under way, else one now."""
        with self._cond:
            if self._running:
                self._again = True
                return
        self._trigger()

    def run_passes(self, one_pass: Callable[[], float | None]) -> None:
        """Run ``one_pass`` until no request came during the last run; it returns the seconds
        until the earliest deadline of the events left waiting (None: none waits), when a
        pass is due even if nothing else asks for one."""
        with self._cond:
            self._running, self._again = True, False
        due: float | None = None
        try:
            while True:
                due = one_pass()
                with self._cond:
                    if not self._again:
                        break
                    self._again = False
        finally:
            with self._cond:
                self._running = False
                self._arm(due)

    def close(self) -> None:
        """Stop the deadline thread (the node is being destroyed)."""
        with self._cond:
            self._closed, self._due = True, None
            self._cond.notify()
        if self._timer is not None:
            self._timer.join(timeout=1.0)

    def _arm(self, delay_s: float | None) -> None:
        """Called with the condition held: the deadline thread sleeps until ``delay_s``."""
        self._due = None if delay_s is None else time.monotonic() + max(0.0, delay_s)
        if self._due is not None and self._timer is None and not self._closed:
            self._timer = threading.Thread(target=self._keep_deadlines, daemon=True,
                                           name="worker-deadlines")
            self._timer.start()
        self._cond.notify()

    def _keep_deadlines(self) -> None:
        with self._cond:
            while not self._closed:
                if self._due is None:
                    self._cond.wait()
                    continue
                left = self._due - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                self._due = None
                if self._running:  # the pass under way re-arms when it ends
                    self._again = True
                    continue
                self._cond.release()
                try:
                    self._trigger()
                finally:
                    self._cond.acquire()
