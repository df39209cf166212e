"""At most one model load in flight, and a bound on how long a caller waits for it.

The node loads a new model inside its parameter callback (so a model that cannot serve is
refused with the reason) and must not hold the parameter and lifecycle services for ever: past
a timeout the set is refused. The load itself cannot be interrupted (a file system that hangs,
a runtime compiling), so its thread runs on; while it does, a second load is refused with the
reason instead of starting another one beside it, and when it ends its model is dropped at
once (its memory goes with the last reference) and the caller is told.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from grasp_success_ros.core.errors import ModelLoadError

T = TypeVar("T")


class OneLoad(Generic[T]):
    """Runs loads one at a time on a thread of their own, each waited for up to a timeout."""

    def __init__(self, on_late: Callable[[str], None] = lambda line: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``on_late(line)``: a load that timed out has ended (its model was dropped)."""
        self._on_late, self._clock = on_late, clock
        self._lock = threading.Lock()
        self._busy: tuple[str, float] | None = None  # (what, started) of the load in flight

    @property
    def busy(self) -> str | None:
        """What is loading now, or None."""
        with self._lock:
            return None if self._busy is None else self._busy[0]

    def run(self, load: Callable[[], T], what: str, timeout_s: float) -> T:
        """``load()``'s result; ModelLoadError when a load is already in flight or this one
        takes over ``timeout_s`` (it then runs on, and its result is dropped); whatever
        ``load`` raises, as is."""
        with self._lock:
            if self._busy is not None:
                name, started = self._busy
                raise ModelLoadError(f"a model load is in flight ({name}, for "
                                     f"{self._clock() - started:.0f} s): try again when it "
                                     f"has ended")
            self._busy = (what, self._clock())
        box: dict[str, object] = {}
        done = threading.Event()
        worker = threading.Thread(target=self._load, args=(load, what, box, done),
                                  name="model-load", daemon=True)
        worker.start()
        if not done.wait(timeout_s):
            with self._lock:  # the load sets ``done`` under this lock: no result is lost
                if not done.is_set():
                    box["abandoned"] = True
                    raise ModelLoadError(f"loading {what} took over {timeout_s:g} s; it runs "
                                         f"on and its model is dropped when it ends")
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box["result"]  # type: ignore[return-value]

    def _load(self, load: Callable[[], T], what: str, box: dict, done: threading.Event
              ) -> None:
        started = self._clock()
        try:
            box["result"] = load()
        except BaseException as exc:  # handed to the waiting caller, or reported late
            box["error"] = exc
        with self._lock:
            self._busy = None
            abandoned = box.get("abandoned", False)
            done.set()
        if abandoned:
            box.clear()  # the model's last reference: its memory is released now
            self._on_late(f"the timed-out load of {what} ended after "
                          f"{self._clock() - started:.1f} s; its model was dropped")
