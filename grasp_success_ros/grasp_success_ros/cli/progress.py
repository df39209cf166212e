"""A console progress bar for commands that work through several inputs (bag-eval's bags)."""

from __future__ import annotations

import sys
import threading
from typing import TextIO


class Progress:
    """A one-line progress bar on stderr (a plain line per step when not a terminal);
    ``step`` may be called from worker threads."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total, self.label, self.done = total, label, 0
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._lock = threading.Lock()

    def step(self, note: str = "") -> None:
        with self._lock:
            self.done += 1
            width = 24
            filled = int(width * self.done / max(self.total, 1))
            bar = "#" * filled + "-" * (width - filled)
            line = f"{self.label} [{bar}] {self.done}/{self.total} {note}"
            if self.tty:
                end = "\n" if self.done == self.total else ""
                self.stream.write("\r" + line[:120].ljust(120) + end)
            else:
                self.stream.write(line + "\n")
            self.stream.flush()
